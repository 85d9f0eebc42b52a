import { headers as natsHeaders } from '@nats-io/nats-core';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import { describe } from './connect.js';
import { BusPublishError, BusStreamFullError, BusUsageError } from './errors.js';
import { headersCarrier } from './headers.js';
import type { StreamSealer } from './internal/frames.js';
import { injectTrace } from './internal/trace.js';
import { fullLimitOf, isMessageTooLarge } from './stream-limits.js';
import type { StreamKey } from './subjects.js';

export interface PublishAck {
  readonly stream: string;
  readonly seq: number;
  /** True when JetStream already held a message with this id inside its duplicate window. */
  readonly duplicate: boolean;
}

const MSG_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Seals `plaintext` and publishes it to JetStream with `Nats-Msg-Id` = `msgId`. Resolves
 * only once the stream acknowledged the message as persisted in `expectStream`; any other
 * outcome (timeout, no stream, another stream captured the subject) throws
 * `BusPublishError`, and the caller must treat the event as not emitted. A full stream
 * (discard new) is `BusStreamFullError` `E_BUS_STREAM_FULL`; a message over the stream's
 * max_msg_size is `E_BUS_MESSAGE_TOO_LARGE`.
 */
export async function publishSealed(
  bus: Bus,
  sealer: StreamSealer,
  args: { subject: string; msgId: string; plaintext: Uint8Array; expectStream: StreamKey; timeoutMs?: number; headers?: Readonly<Record<string, string>> },
): Promise<PublishAck> {
  if (!MSG_ID.test(args.msgId)) {
    throw new BusUsageError('E_BUS_MSG_ID', `message id "${args.msgId}" for ${args.subject} is invalid: 1-128 of A-Z a-z 0-9 . _ : -`, { subject: args.subject });
  }
  const subject = bus.subject(args.subject);
  const stream = bus.streamName(args.expectStream);
  const frame = await sealer.seal(args.plaintext);
  const carrier = headersCarrier(natsHeaders());
  injectTrace(carrier);
  // Headers travel in the clear beside the frame: only attributes meant for routing (CloudEvents ce-*).
  for (const [name, value] of Object.entries(args.headers ?? {})) carrier.set(name, value);
  try {
    const ack = await natsOf(bus).js.publish(subject, frame, {
      msgID: args.msgId,
      headers: carrier.headers(),
      expect: { streamName: stream },
      timeout: args.timeoutMs ?? 5000,
    });
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
  } catch (cause) {
    const full = fullLimitOf(cause);
    if (full !== undefined) {
      throw new BusStreamFullError(
        'E_BUS_STREAM_FULL',
        `stream ${stream} on ${bus.url} is full (${describe(cause)}): publish of ${args.msgId} to ${subject} refused`,
        { subject, stream, msgId: args.msgId, url: bus.url, limit: full },
        { cause },
      );
    }
    if (isMessageTooLarge(cause)) {
      throw new BusPublishError(
        'E_BUS_MESSAGE_TOO_LARGE',
        `publish of ${args.msgId} to ${subject} refused: ${frame.length} bytes exceed the max message size of stream ${stream} on ${bus.url}`,
        { subject, stream, msgId: args.msgId, url: bus.url, bytes: frame.length },
        { cause },
      );
    }
    throw new BusPublishError(
      'E_BUS_PUBLISH',
      `publish of ${args.msgId} to ${subject} (stream ${stream}) on ${bus.url} not acknowledged: ${describe(cause)}`,
      { subject, stream, msgId: args.msgId, url: bus.url },
      { cause },
    );
  }
}
