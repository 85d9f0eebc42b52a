/**
 * What arrives on BULWARK_EVENTS, turned into events the ledger can append. Producers send
 * protobuf `AuditEvent` (one event) or `AuditEventBatch` (several, for throughput); the
 * bus's own rejection reports arrive as JSON (`RejectionEvent`). Everything is validated
 * here, before the ledger sees it: a payload that does not decode is an InputError, and an
 * event the message's producer may not produce (DESIGN §3a) a ForbiddenProducerError. The
 * producer is the envelope-authenticated sender of the frame, given by the caller: a
 * `producer` field in the message (AuditEvent field 10) is skipped like the other chain fields.
 */
import { InputError } from '@bulwark/errors';
import { MAX_TIMESTAMP_MS, type AuditEvent } from '@bulwark/events';
import { ForbiddenProducerError, isForbiddenProducerError } from '../errors.js';
import { prepareEvent, type PreparedEvent } from '../ledger.js';
import { decodeProducerBatch, decodeProducerEvent, type ProducerEvent } from './producer-wire.js';

/** `0x0a 0x24`: field 1 (event_id), length 36: a single AuditEvent starts so, a batch never does (see payloadKind). */
const EVENT_ID_TAG = 0x0a;
const UUID_TEXT_LENGTH = 36;
const JSON_OBJECT = 0x7b; // '{': not a valid first byte of either protobuf message (field 15, start-group)

export type PayloadKind = 'event' | 'batch' | 'json';

/**
 * Both protobuf messages start with field 1 (tag 0x0a). In an AuditEvent it is the event
 * id, always 36 characters; in a batch it is the first embedded event, which holds that id
 * plus an agent and a type, so it is never 36 bytes long. The length byte tells them apart.
 */
export function payloadKind(payload: Uint8Array): PayloadKind {
  if (payload[0] === JSON_OBJECT) return 'json';
  if (payload[0] === EVENT_ID_TAG && payload[1] === UUID_TEXT_LENGTH) return 'event';
  return 'batch';
}

/**
 * The validated events of one bus message delivered by `producer` (InputError if any of them
 * is bad, ForbiddenProducerError if `producer` may not produce one: the message is refused whole).
 */
export function decodePayload(subject: string, payload: Uint8Array, producer: string): PreparedEvent[] {
  const kind = payloadKind(payload);
  switch (kind) {
    case 'event':
      return [prepareMessage(parse(() => decodeProducerEvent(payload), 'AuditEvent', subject), producer)];
    case 'batch': {
      const messages = parse(() => decodeProducerBatch(payload), 'AuditEventBatch', subject);
      return messages.map((message, index) => {
        try {
          return prepareMessage(message, producer);
        } catch (cause) {
          // A forbidden event keeps its type (the service records it as such), with the size of what is refused with it.
          if (isForbiddenProducerError(cause)) throw new ForbiddenProducerError({ ...cause.context, messageEvents: messages.length });
          if (cause instanceof InputError) throw new InputError(cause.code, `batch item ${index}: ${cause.message}`, { ...cause.context, index }, { cause });
          throw cause;
        }
      });
    }
    case 'json':
      return [prepareEvent(fromRejectionReport(subject, payload), producer)];
    default: {
      const never: never = kind;
      throw new Error(`unhandled payload kind ${String(never)}`);
    }
  }
}

function parse<T>(decode: () => T, what: string, subject: string): T {
  try {
    return decode();
  } catch (cause) {
    throw new InputError('E_EVENT_DECODE', `ledger: message on ${subject} is not a valid protobuf ${what} (${(cause as Error).message})`, { subject }, { cause });
  }
}

/**
 * The producer's fields, validated once by prepareEvent (decoding through @bulwark/events
 * would validate and canonicalise a second time). The details text is parsed here and
 * checked there (plain JSON, depth, size), which also keeps the parsed value when the text
 * is already canonical. Chain fields in a producer's message are ignored: the ledger assigns them.
 */
function prepareMessage(message: ProducerEvent, producer: string): PreparedEvent {
  // NaN: a varint beyond 2^53 (a negative int64 is one).
  if (!(message.timestampMs >= 0 && message.timestampMs <= MAX_TIMESTAMP_MS)) {
    const shown = Number.isNaN(message.timestampMs) ? 'beyond 2^53 or negative' : String(message.timestampMs);
    throw new InputError('E_EVENT_DECODE', `event ${message.eventId.slice(0, 64)}: timestamp_ms ${shown} is out of range [0, ${MAX_TIMESTAMP_MS}]`, {});
  }
  let details: unknown;
  try {
    details = JSON.parse(message.detailsJson);
  } catch (cause) {
    throw new InputError('E_EVENT_DETAILS', `event ${message.eventId.slice(0, 64)}: details: not valid JSON (${(cause as Error).message})`, { path: 'details' }, { cause });
  }
  return prepareEvent({ eventId: message.eventId, timestamp: message.timestampMs, agentId: message.agentId, eventType: message.eventType, details }, producer, message.detailsJson);
}

/**
 * `@bulwark/bus`'s rejection reporter publishes `bulwark.evt.bus.rejected` as JSON with
 * snake_case fields, an ISO timestamp and the category (`security_violation`) as its type;
 * it is recorded as the `bus.rejected` event it describes.
 */
function fromRejectionReport(subject: string, payload: Uint8Array): AuditEvent {
  let report: unknown;
  try {
    report = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (cause) {
    throw new InputError('E_EVENT_DECODE', `ledger: JSON payload on ${subject} is not valid UTF-8 JSON`, { subject }, { cause });
  }
  const r = (typeof report === 'object' && report !== null ? report : {}) as Record<string, unknown>;
  const details = r['details'] as Record<string, unknown> | undefined;
  if (subject !== 'bulwark.evt.bus.rejected' || typeof details !== 'object' || details === null || details['kind'] !== 'bus.rejected') {
    throw new InputError('E_EVENT_DECODE', `ledger: JSON payload on ${subject} is not a bus rejection report (events are protobuf AuditEvent or AuditEventBatch)`, { subject });
  }
  const timestamp = typeof r['timestamp'] === 'string' ? Date.parse(r['timestamp']) : Number.NaN;
  return { eventId: r['event_id'], timestamp, agentId: r['agent_id'], eventType: 'bus.rejected', details } as AuditEvent;
}
