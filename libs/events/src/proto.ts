/**
 * Between the TypeScript event and its wire message (`bulwark.events.v1.AuditEvent` in
 * proto/bulwark/events/v1/event.proto). Encoding goes through the hand-written writer
 * (wire.ts); decoding through @bufbuild/protobuf, and it validates: a message from the bus
 * is untrusted input until it passes the same checks as a producer's event.
 */
import { create, fromBinary } from '@bufbuild/protobuf';
import { AuditEventBatchSchema, AuditEventSchema, type AuditEvent as AuditEventMessage, type AuditEventBatch } from '@bulwark/proto';
import { InputError } from '@bulwark/errors';
import { HASH_LENGTH, MAX_TIMESTAMP_MS, SIGNATURE_LENGTH, canonicalDetails, isPrincipalId, validateEvent, type AuditEvent, type LedgerEvent } from './event.js';
import { parseJson } from './jcs.js';
import { writeAuditEvent, writeAuditEventBatch, type BatchWireOptions, type EventWireFields } from './wire.js';

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
    message.producer = event.producer;
  }
  return message;
}

function decodeError(why: string, context: Record<string, unknown> = {}, cause?: unknown): InputError {
  return new InputError('E_EVENT_DECODE', `audit event message: ${why}`, context, cause === undefined ? undefined : { cause });
}

/**
 * A validated event from its wire message. The chain fields are all present (a ledger
 * event: event_hash 32 bytes, a producer that is a principal id) or all absent (a producer
 * event: seq 0, empty bytes, no producer); anything in between is an error. Hash and
 * signature are not checked here: that needs the ledger key (checkSealedEvent).
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
    if (message.seq !== 0n || message.previousHash.length > 0 || message.signature.length > 0 || message.producer.length > 0) {
      throw decodeError(`event ${event.eventId}: has some chain fields (seq, previous_hash, signature, producer) but no event_hash`, { eventId: event.eventId });
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
  if (!isPrincipalId(message.producer)) {
    throw decodeError(`event ${event.eventId}: producer ${JSON.stringify((message.producer as string).slice(0, 80))} is not a principal id`, { eventId: event.eventId });
  }
  return {
    ...event,
    producer: message.producer,
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
  const { seq, previousHash, eventHash, signature, producer } = event;
  return { eventId, timestamp, agentId, eventType, detailsJcs, seq, previousHash, eventHash, signature, producer };
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

/** `options.controlPreviousSeq` only for the ledger's control batches (see BatchWireOptions). */
export function encodeEventBatch(events: readonly (AuditEvent | LedgerEvent)[], options: BatchWireOptions = {}): Uint8Array {
  return writeAuditEventBatch(events.map(wireFieldsOf), options);
}

function batchMessage(bytes: Uint8Array): AuditEventBatch {
  try {
    return fromBinary(AuditEventBatchSchema, bytes);
  } catch (cause) {
    throw decodeError(`not a valid protobuf AuditEventBatch (${(cause as Error).message})`, { length: bytes.length }, cause);
  }
}

function eventsOf(batch: AuditEventBatch): (AuditEvent | LedgerEvent)[] {
  return batch.events.map((message, index) => {
    try {
      return fromEventMessage(message);
    } catch (cause) {
      if (cause instanceof InputError) throw new InputError(cause.code, `batch item ${index}: ${cause.message}`, { ...cause.context, index }, { cause });
      throw cause;
    }
  });
}

/** Every event of a batch, validated; the first bad one rejects the whole batch (fail secure). */
export function decodeEventBatch(bytes: Uint8Array): (AuditEvent | LedgerEvent)[] {
  return eventsOf(batchMessage(bytes));
}

/** A batch the ledger re-published on BULWARK_LEDGER (`bulwark.ledger.batch` or `bulwark.ledger.control.<principal>`). */
export interface LedgerBatch {
  /** Every event sealed (all chain fields set), in the order sent. */
  readonly events: LedgerEvent[];
  /**
   * On a control batch: the seq of the last control event before `events[0]`, -1 if none
   * (CONTRACTS §3), always below `events[0].seq`. Undefined on a full batch.
   */
  readonly controlPreviousSeq?: number;
}

/**
 * A ledger batch, validated like decodeEventBatch, and also: every event is a ledger event,
 * and control_previous_seq, when present, is -1 or a seq below the first event's. Whether
 * seqs follow and hashes link is the reader's to check (it knows what it applied last).
 * Throws InputError E_EVENT_DECODE.
 */
export function decodeLedgerBatch(bytes: Uint8Array): LedgerBatch {
  const batch = batchMessage(bytes);
  const events = eventsOf(batch).map((event, index) => {
    if (!isLedgerEvent(event)) throw decodeError(`batch item ${index}: event ${event.eventId} has no chain fields: not a ledger event`, { eventId: event.eventId, index });
    return event;
  });
  const raw = batch.controlPreviousSeq;
  if (raw === undefined) return { events };
  const first = events[0]?.seq;
  if (raw < -1n || raw > BigInt(Number.MAX_SAFE_INTEGER) || (first !== undefined && raw >= BigInt(first))) {
    throw decodeError(`control_previous_seq ${raw} is not -1 or a seq below the batch's first (${first ?? 'none'})`, { controlPreviousSeq: String(raw) });
  }
  return { events, controlPreviousSeq: Number(raw) };
}
