/**
 * `bulwark.events.v1.AuditEventBatch` of stored rows, written by hand: the re-publisher
 * encodes every event the ledger appends, and the reflective encoder of @bufbuild/protobuf
 * cost about 8 µs an event on the ledger's thread. The bytes are exactly what `toBinary`
 * writes (proto3: fields in number order, zero values left out), checked in batch-wire.test.ts.
 * details_json is the stored RFC 8785 text, the very bytes that were hashed, so a reader
 * recomputes event_hash from the message alone: nothing is parsed or re-canonicalised.
 */
import { LedgerError } from '../errors.js';
import type { HashedFields } from '@bulwark/events';
import { bytes, hashedFieldsOfRow, type EventRow } from '../store/rows.js';

/** A stored event as it goes on the wire: what its hash covers (details as the stored RFC 8785 text), its hash and signature. */
export interface WireEvent extends HashedFields {
  readonly eventHash: Uint8Array;
  readonly signature: Uint8Array;
}

export function wireEventOfRow(row: EventRow): WireEvent {
  return { ...hashedFieldsOfRow(row), eventHash: bytes(row.event_hash), signature: bytes(row.signature) };
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

const TAG = {
  batchEvents: tag(1, WIRE_LEN),
  eventId: tag(1, WIRE_LEN),
  timestamp: tag(2, WIRE_VARINT),
  agentId: tag(3, WIRE_LEN),
  eventType: tag(4, WIRE_LEN),
  details: tag(5, WIRE_LEN),
  seq: tag(6, WIRE_VARINT),
  previousHash: tag(7, WIRE_LEN),
  eventHash: tag(8, WIRE_LEN),
  signature: tag(9, WIRE_LEN),
} as const;

/** Bytes of a varint of a non-negative safe integer. */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size += 1;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 128) {
    out[at++] = (value % 128) | 128;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

/** Size of a length-delimited field of `length` bytes (one-byte tag), or 0 when proto3 leaves it out. */
function lenField(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function varintField(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

interface Sized {
  readonly seq: number;
  readonly timestamp: number;
  readonly eventId: number;
  readonly agentId: number;
  readonly eventType: number;
  readonly details: number;
  readonly body: number;
}

export function ledgerBatchOfRows(rows: readonly EventRow[]): Uint8Array {
  return ledgerBatchOf(rows.map(wireEventOfRow));
}

export function ledgerBatchOf(rows: readonly WireEvent[]): Uint8Array {
  const sized: Sized[] = new Array<Sized>(rows.length);
  let total = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const { seq, timestamp } = row;
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(timestamp)) throw new LedgerError('E_LEDGER', `ledger batch: seq ${seq} or timestamp ${timestamp} is not a safe integer`, { seq });
    // The ledger stores neither; a row that has one was not written by it (verify names it), and is not encoded.
    if (seq < 0 || timestamp < 0) throw new LedgerError('E_LEDGER', `ledger batch: stored seq ${seq} or timestamp_ms ${timestamp} is negative`, { seq });
    const eventId = Buffer.byteLength(row.eventId, 'utf8');
    const agentId = Buffer.byteLength(row.agentId, 'utf8');
    const eventType = Buffer.byteLength(row.eventType, 'utf8');
    const details = Buffer.byteLength(row.detailsJcs, 'utf8');
    const body =
      lenField(eventId) +
      varintField(timestamp) +
      lenField(agentId) +
      lenField(eventType) +
      lenField(details) +
      varintField(seq) +
      lenField(row.previousHash.length) +
      lenField(row.eventHash.length) +
      lenField(row.signature.length);
    sized[i] = { seq, timestamp, eventId, agentId, eventType, details, body };
    total += 1 + varintSize(body) + body;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  const text = (fieldTag: number, value: string, length: number): void => {
    if (length === 0) return;
    out[at++] = fieldTag;
    at = writeVarint(out, at, length);
    at += out.write(value, at, length, 'utf8');
  };
  const binary = (fieldTag: number, value: Uint8Array): void => {
    if (value.length === 0) return;
    out[at++] = fieldTag;
    at = writeVarint(out, at, value.length);
    out.set(value, at);
    at += value.length;
  };
  const varint = (fieldTag: number, value: number): void => {
    if (value === 0) return;
    out[at++] = fieldTag;
    at = writeVarint(out, at, value);
  };
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const s = sized[i]!;
    out[at++] = TAG.batchEvents;
    at = writeVarint(out, at, s.body);
    text(TAG.eventId, row.eventId, s.eventId);
    varint(TAG.timestamp, s.timestamp);
    text(TAG.agentId, row.agentId, s.agentId);
    text(TAG.eventType, row.eventType, s.eventType);
    text(TAG.details, row.detailsJcs, s.details);
    varint(TAG.seq, s.seq);
    binary(TAG.previousHash, row.previousHash);
    binary(TAG.eventHash, row.eventHash);
    binary(TAG.signature, row.signature);
  }
  if (at !== total) throw new LedgerError('E_LEDGER', `ledger batch: wrote ${at} bytes, sized ${total}`);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
