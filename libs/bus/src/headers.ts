import type { MsgHdrs } from '@nats-io/nats-core';
import type { HeaderCarrier } from '@bulwark/telemetry';

/** Header names the bus sets. Only routing, dedupe and trace context travel in clear. */
export const Headers = {
  /** JetStream dedupe key: the event id. */
  msgId: 'Nats-Msg-Id',
  /** `handshake` or `request`: how a command's responder should read the frame. */
  kind: 'Bulwark-Kind',
} as const;

/**
 * Adapts NATS message headers to a trace-context carrier. NATS returns "" for a
 * missing header; propagators expect undefined.
 */
export function headersCarrier(headers: MsgHdrs | undefined, create?: () => MsgHdrs): HeaderCarrier & { headers(): MsgHdrs | undefined } {
  let h = headers;
  return {
    get(key) {
      if (h === undefined || !h.has(key)) return undefined;
      return h.get(key);
    },
    set(key, value) {
      if (h === undefined) {
        if (create === undefined) return;
        h = create();
      }
      h.set(key, value);
    },
    headers: () => h,
  };
}
