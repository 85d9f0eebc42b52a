/**
 * `bulwark.events.v1.AuditEvent` and `AuditEventBatch` (proto/bulwark/events/v1/event.proto)
 * written by hand. Producers encode every event they publish (the policy service one per
 * decision) and the ledger re-publishes every event it appends. encodeEventBatch of 70
 * policy.decision events with 445-byte details (534 bytes an event on the wire), median of
 * 9 rounds, 3 runs each: 9.0-9.3 µs an event through the reflective encoder of
 * @bufbuild/protobuf (`create` + `toBinary`), 0.54-0.56 µs through this writer, most of it
 * Buffer's UTF-8 copy of the details. The bytes are exactly what `toBinary` writes (proto3: fields in number order,
 * zero values and empty strings or bytes left out), checked in wire.test.ts.
 */
import { allocateUninitialized } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';

/**
 * One AuditEvent message's fields: details as their RFC 8785 text (what is hashed and stored),
 * the chain fields (set by the ledger) absent or zero for a producer's event.
 */
export interface EventWireFields {
  readonly eventId: string;
  /** Unix epoch milliseconds: a non-negative safe integer. */
  readonly timestamp: number;
  readonly agentId: string;
  readonly eventType: string;
  readonly detailsJcs: string;
  /** A non-negative safe integer. */
  readonly seq?: number;
  readonly previousHash?: Uint8Array;
  readonly eventHash?: Uint8Array;
  readonly signature?: Uint8Array;
  /** The authenticated principal that delivered the event to the ledger (a chain field, like seq). */
  readonly producer?: string;
}

/** What a batch carries beside its events. */
export interface BatchWireOptions {
  /**
   * `control_previous_seq` (field 2, explicit presence) of a `bulwark.ledger.control.<principal>`
   * batch: the seq of the last control event before the batch's first, -1 if none. Undefined:
   * left out (a full `bulwark.ledger.batch` batch, or a producer's).
   */
  readonly controlPreviousSeq?: number;
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** Every field number is below 16, so every tag is one byte. */
function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

const TAG = {
  batchEvents: tag(1, WIRE_LEN),
  batchControlPreviousSeq: tag(2, WIRE_VARINT),
  eventId: tag(1, WIRE_LEN),
  timestamp: tag(2, WIRE_VARINT),
  agentId: tag(3, WIRE_LEN),
  eventType: tag(4, WIRE_LEN),
  details: tag(5, WIRE_LEN),
  seq: tag(6, WIRE_VARINT),
  previousHash: tag(7, WIRE_LEN),
  eventHash: tag(8, WIRE_LEN),
  signature: tag(9, WIRE_LEN),
  producer: tag(10, WIRE_LEN),
} as const;

const EMPTY = new Uint8Array(0);

/** Bytes of the varint of a non-negative safe integer (division, not shifts: values reach 2^53). */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size += 1;
  }
  return size;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 128) {
    out[at++] = (value % 128) | 128;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

/** Size of a length-delimited field of `length` bytes, or 0 when proto3 leaves it out. */
function lenFieldSize(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function varintFieldSize(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

/** The wire has no negative uint64 and readers refuse a negative timestamp: such an event is refused here, not encoded wrongly. */
function checkInteger(fields: EventWireFields, name: 'timestamp' | 'seq', value: number, index: number | undefined): number {
  if (Number.isSafeInteger(value) && value >= 0) return value;
  const eventId = String(fields.eventId).slice(0, 64);
  const where = index === undefined ? '' : `batch item ${index}: `;
  const why = Number.isSafeInteger(value) ? 'is negative' : 'is not a safe integer';
  throw new InputError(
    'E_EVENT_ENCODE',
    `audit event message: ${where}event ${eventId}: ${name} ${String(value)} ${why} (the wire needs an integer in [0, 2^53 - 1])`,
    { eventId, field: name, value, ...(index === undefined ? {} : { index }) },
  );
}

/** Per event, kept between sizing and writing: the UTF-8 byte lengths of its five strings and the size of its message body. */
const SLOTS = 6;
const BODY = 5;

function sizeEvent(lengths: Float64Array, fields: EventWireFields, slot: number, index: number | undefined): number {
  const timestamp = checkInteger(fields, 'timestamp', fields.timestamp, index);
  const seq = checkInteger(fields, 'seq', fields.seq ?? 0, index);
  const eventId = Buffer.byteLength(fields.eventId, 'utf8');
  const agentId = Buffer.byteLength(fields.agentId, 'utf8');
  const eventType = Buffer.byteLength(fields.eventType, 'utf8');
  const details = Buffer.byteLength(fields.detailsJcs, 'utf8');
  const producer = fields.producer === undefined ? 0 : Buffer.byteLength(fields.producer, 'utf8');
  const body =
    lenFieldSize(eventId) +
    varintFieldSize(timestamp) +
    lenFieldSize(agentId) +
    lenFieldSize(eventType) +
    lenFieldSize(details) +
    varintFieldSize(seq) +
    lenFieldSize((fields.previousHash ?? EMPTY).length) +
    lenFieldSize((fields.eventHash ?? EMPTY).length) +
    lenFieldSize((fields.signature ?? EMPTY).length) +
    lenFieldSize(producer);
  const at = slot * SLOTS;
  lengths[at] = eventId;
  lengths[at + 1] = agentId;
  lengths[at + 2] = eventType;
  lengths[at + 3] = details;
  lengths[at + 4] = producer;
  lengths[at + BODY] = body;
  return body;
}

/** Below this many characters an ASCII string is copied unit by unit: cheaper than a call into Buffer's UTF-8 writer. */
const SHORT_ASCII = 64;

function writeText(out: Buffer, at: number, fieldTag: number, value: string, length: number): number {
  if (length === 0) return at;
  out[at++] = fieldTag;
  at = writeVarint(out, at, length);
  // As many UTF-8 bytes as UTF-16 units: every unit is ASCII (anything else takes 2 or 3 bytes).
  if (length === value.length && length < SHORT_ASCII) {
    for (let i = 0; i < length; i++) out[at + i] = value.charCodeAt(i);
    return at + length;
  }
  // No length argument: the output is sized to fit, and Buffer's argument handling for it costs more than the copy of a short string.
  return at + out.write(value, at, 'utf8');
}

function writeBytes(out: Buffer, at: number, fieldTag: number, value: Uint8Array | undefined): number {
  if (value === undefined || value.length === 0) return at;
  out[at++] = fieldTag;
  at = writeVarint(out, at, value.length);
  out.set(value, at);
  return at + value.length;
}

function writeVarintField(out: Buffer, at: number, fieldTag: number, value: number): number {
  if (value === 0) return at;
  out[at++] = fieldTag;
  return writeVarint(out, at, value);
}

/** Writes the body of a message sized by sizeEvent into `slot` of `lengths`. */
function writeEvent(out: Buffer, at: number, lengths: Float64Array, fields: EventWireFields, slot: number): number {
  const s = slot * SLOTS;
  at = writeText(out, at, TAG.eventId, fields.eventId, lengths[s]!);
  at = writeVarintField(out, at, TAG.timestamp, fields.timestamp);
  at = writeText(out, at, TAG.agentId, fields.agentId, lengths[s + 1]!);
  at = writeText(out, at, TAG.eventType, fields.eventType, lengths[s + 2]!);
  at = writeText(out, at, TAG.details, fields.detailsJcs, lengths[s + 3]!);
  at = writeVarintField(out, at, TAG.seq, fields.seq ?? 0);
  at = writeBytes(out, at, TAG.previousHash, fields.previousHash);
  at = writeBytes(out, at, TAG.eventHash, fields.eventHash);
  at = writeBytes(out, at, TAG.signature, fields.signature);
  return writeText(out, at, TAG.producer, fields.producer ?? '', lengths[s + 4]!);
}

/** An uninitialised array of `length` bytes and a Buffer over the same bytes (for its UTF-8 writer). */
function output(length: number): { bytes: Uint8Array; out: Buffer } {
  const bytes = allocateUninitialized(length);
  return { bytes, out: Buffer.from(bytes.buffer, bytes.byteOffset, length) };
}

function checkWritten(at: number, total: number): void {
  // A mismatch means a sizing bug here, never bad input: the bytes would be a corrupt message.
  if (at !== total) throw new Error(`audit event message: wrote ${at} bytes, sized ${total}`);
}

/** One AuditEvent message. Throws InputError E_EVENT_ENCODE for a negative or unsafe timestamp or seq. */
export function writeAuditEvent(fields: EventWireFields): Uint8Array {
  const lengths = new Float64Array(SLOTS);
  const total = sizeEvent(lengths, fields, 0, undefined);
  const { bytes, out } = output(total);
  checkWritten(writeEvent(out, 0, lengths, fields, 0), total);
  return bytes;
}

/**
 * The varint of an int64 (two's complement: a negative value takes 10 bytes, as protobuf
 * writes it). Only control_previous_seq is signed, once per batch: BigInt is fine here.
 */
function int64Varint(value: number): Uint8Array {
  let rest = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (rest >= 128n) {
    out.push(Number(rest & 127n) | 128);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return Uint8Array.from(out);
}

function controlPreviousSeqBytes(value: number | undefined): Uint8Array {
  if (value === undefined) return EMPTY;
  if (!Number.isSafeInteger(value) || value < -1) {
    throw new InputError('E_EVENT_ENCODE', `audit event batch: control_previous_seq ${String(value)} is not -1 or a non-negative safe integer`, { value });
  }
  // Explicit presence: written even when 0 (seq 0 can be a control event).
  const varint = int64Varint(value);
  const field = new Uint8Array(1 + varint.length);
  field[0] = TAG.batchControlPreviousSeq;
  field.set(varint, 1);
  return field;
}

/** An AuditEventBatch message of these events, in order. Throws like writeAuditEvent, naming the batch item. */
export function writeAuditEventBatch(events: readonly EventWireFields[], options: BatchWireOptions = {}): Uint8Array {
  const lengths = new Float64Array(SLOTS * events.length);
  const trailer = controlPreviousSeqBytes(options.controlPreviousSeq);
  let total = trailer.length;
  for (let i = 0; i < events.length; i++) {
    const body = sizeEvent(lengths, events[i]!, i, i);
    total += 1 + varintSize(body) + body;
  }
  const { bytes, out } = output(total);
  let at = 0;
  for (let i = 0; i < events.length; i++) {
    out[at++] = TAG.batchEvents;
    at = writeVarint(out, at, lengths[i * SLOTS + BODY]!);
    at = writeEvent(out, at, lengths, events[i]!, i);
  }
  // Field 2 after field 1, as toBinary writes fields in number order.
  out.set(trailer, at);
  at += trailer.length;
  checkWritten(at, total);
  return bytes;
}
