import type { MsgHdrs } from '@nats-io/nats-core';
import type { HeaderCarrier } from '@bulwark/telemetry';

/** Header names the bus sets. Only routing, dedupe and trace context travel in clear. */
export const Headers = {
  /** JetStream dedupe key: the event id. */
  msgId: 'Nats-Msg-Id',
  /** `handshake` or `request`: how a command's responder should read the frame. */
  kind: 'Bulwark-Kind',
  /** A handshake init's admission tag (internal/handshake-admission.ts): a MAC, no secret in clear. */
  admission: 'Bulwark-Admission',
} as const;

/**
 * Adapts NATS message headers to a trace-context carrier. NATS returns "" for a
 * missing header; propagators expect undefined.
 */
export function headersCarrier(headers: MsgHdrs | undefined): HeaderCarrier & { headers(): MsgHdrs | undefined } {
  return {
    get(key) {
      if (headers === undefined || !headers.has(key)) return undefined;
      return headers.get(key);
    },
    set(key, value) {
      headers?.set(key, value);
    },
    headers: () => headers,
  };
}
