/**
 * Between the TypeScript event and its wire message (`bulwark.events.v1.AuditEvent` in
 * proto/bulwark/events/v1/event.proto). Encoding goes through the hand-written writer
 * (wire.ts); decoding through @bufbuild/protobuf, and it validates: a message from the bus
 * is untrusted input until it passes the same checks as a producer's event.
 */
import { create, fromBinary } from '@bufbuild/protobuf';
import { AuditEventBatchSchema, AuditEventSchema, type AuditEvent as AuditEventMessage } from '@bulwark/proto';
import { InputError } from '@bulwark/errors';
import { HASH_LENGTH, MAX_TIMESTAMP_MS, SIGNATURE_LENGTH, canonicalDetails, validateEvent, type AuditEvent, type LedgerEvent } from './event.js';
import { parseJson } from './jcs.js';
import { writeAuditEvent, writeAuditEventBatch, type EventWireFields } from './wire.js';

export function isLedgerEvent(event: AuditEvent | LedgerEvent): event is LedgerEvent {
  return 'eventHash' in event;
}

export function toEventMessage(event: AuditEvent | LedgerEvent): AuditEventMessage {
  const message = create(AuditEventSchema, {
    eventId: event.eventId,
    timestampMs: BigInt(event.timestamp),
    agentId: event.agentId,
    eventType: event.eventType,
    detailsJson: canonicalDetails(event.details, event.eventId),
  });
  if (isLedgerEvent(event)) {
    message.seq = BigInt(event.seq);
    message.previousHash = event.previousHash;
    message.eventHash = event.eventHash;
    message.signature = event.signature;
  }
  return message;
}

function decodeError(why: string, context: Record<string, unknown> = {}, cause?: unknown): InputError {
  return new InputError('E_EVENT_DECODE', `audit event message: ${why}`, context, cause === undefined ? undefined : { cause });
}

/**
 * A validated event from its wire message. The chain fields are all present (a ledger
 * event: event_hash 32 bytes) or all absent (a producer event: seq 0, empty bytes);
 * anything in between is an error. Hash and signature are not checked here: that needs
 * the ledger key (verifyLedgerEvent).
 */
export function fromEventMessage(message: AuditEventMessage): AuditEvent | LedgerEvent {
  const id = message.eventId;
  if (message.timestampMs < 0n || message.timestampMs > BigInt(MAX_TIMESTAMP_MS)) {
    throw decodeError(`event ${id.slice(0, 64)}: timestamp_ms ${message.timestampMs} is out of range [0, ${MAX_TIMESTAMP_MS}]`, { eventId: id });
  }
  const event = validateEvent({
    eventId: id,
    timestamp: Number(message.timestampMs),
    agentId: message.agentId,
    eventType: message.eventType,
    details: parseJson(message.detailsJson, 'details'),
  });

  const chained = message.eventHash.length > 0;
  if (!chained) {
    if (message.seq !== 0n || message.previousHash.length > 0 || message.signature.length > 0) {
      throw decodeError(`event ${event.eventId}: has some chain fields (seq, previous_hash, signature) but no event_hash`, { eventId: event.eventId });
    }
    return event;
  }
  if (message.eventHash.length !== HASH_LENGTH || message.previousHash.length !== HASH_LENGTH || message.signature.length !== SIGNATURE_LENGTH) {
    throw decodeError(
      `event ${event.eventId}: chain fields have wrong lengths (event_hash ${message.eventHash.length}, previous_hash ${message.previousHash.length}, signature ${message.signature.length}; expected ${HASH_LENGTH}, ${HASH_LENGTH}, ${SIGNATURE_LENGTH})`,
      { eventId: event.eventId },
    );
  }
  if (message.seq > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw decodeError(`event ${event.eventId}: seq ${message.seq} is beyond 2^53 - 1`, { eventId: event.eventId });
  }
  return {
    ...event,
    seq: Number(message.seq),
    previousHash: Uint8Array.from(message.previousHash),
    eventHash: Uint8Array.from(message.eventHash),
    signature: Uint8Array.from(message.signature),
  };
}

/** The wire fields of an event: details as their canonical text, chain fields only for a ledger event. */
function wireFieldsOf(event: AuditEvent | LedgerEvent): EventWireFields {
  const detailsJcs = canonicalDetails(event.details, event.eventId);
  const { eventId, timestamp, agentId, eventType } = event;
  if (!isLedgerEvent(event)) return { eventId, timestamp, agentId, eventType, detailsJcs };
  const { seq, previousHash, eventHash, signature } = event;
  return { eventId, timestamp, agentId, eventType, detailsJcs, seq, previousHash, eventHash, signature };
}

/** Throws InputError (E_EVENT_DETAILS, E_EVENT_ENCODE) for details or integers the wire cannot carry. */
export function encodeEvent(event: AuditEvent | LedgerEvent): Uint8Array {
  return writeAuditEvent(wireFieldsOf(event));
}

export function decodeEvent(bytes: Uint8Array): AuditEvent | LedgerEvent {
  let message: AuditEventMessage;
  try {
    message = fromBinary(AuditEventSchema, bytes);
  } catch (cause) {
    throw decodeError(`not a valid protobuf AuditEvent (${(cause as Error).message})`, { length: bytes.length }, cause);
  }
  return fromEventMessage(message);
}

export function encodeEventBatch(events: readonly (AuditEvent | LedgerEvent)[]): Uint8Array {
  return writeAuditEventBatch(events.map(wireFieldsOf));
}

/** Every event of a batch, validated; the first bad one rejects the whole batch (fail secure). */
export function decodeEventBatch(bytes: Uint8Array): (AuditEvent | LedgerEvent)[] {
  let messages: AuditEventMessage[];
  try {
    messages = fromBinary(AuditEventBatchSchema, bytes).events;
  } catch (cause) {
    throw decodeError(`not a valid protobuf AuditEventBatch (${(cause as Error).message})`, { length: bytes.length }, cause);
  }
  return messages.map((message, index) => {
    try {
      return fromEventMessage(message);
    } catch (cause) {
      if (cause instanceof InputError) throw new InputError(cause.code, `batch item ${index}: ${cause.message}`, { ...cause.context, index }, { cause });
      throw cause;
    }
  });
}
