/**
 * Between stored rows and the event and tree types. Rows are untrusted on the way out:
 * `verify` is what proves them, so conversion here only reshapes.
 */
import type { Selectable } from 'kysely';
import type { HashedFields, LedgerEvent } from '@bulwark/events';
import type { EventType } from '@bulwark/events';
import { LedgerError } from '../errors.js';
import type { NodeId } from '../merkle/compact-range.js';
import type { EventsTable } from './schema.js';
import { MERKLE_HASH_LENGTH } from '../merkle/hash.js';

export type EventRow = Selectable<EventsTable>;

/** pg returns Buffers for bytea; everything downstream wants plain Uint8Arrays. */
export function bytes(value: Uint8Array): Uint8Array {
  return value instanceof Uint8Array && value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

export function toNumber(value: bigint | number, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new LedgerError('E_LEDGER', `${what} ${String(value)} is beyond 2^53 - 1`, { what });
  return n;
}

/** The hashed fields exactly as stored (details as the stored canonical text). */
export function hashedFieldsOfRow(row: EventRow): HashedFields {
  return {
    seq: toNumber(row.seq, 'seq'),
    eventId: row.event_id,
    timestamp: toNumber(row.timestamp_ms, 'timestamp_ms'),
    producer: row.producer,
    agentId: row.agent_id,
    eventType: row.event_type,
    detailsJcs: row.details,
    previousHash: bytes(row.previous_hash),
  };
}

/** A row's details (stored as its canonical text); a row that is not JSON names its seq. */
function parseDetails(row: EventRow): LedgerEvent['details'] {
  try {
    return JSON.parse(row.details) as LedgerEvent['details'];
  } catch (cause) {
    throw new LedgerError('E_LEDGER', `seq ${String(row.seq)}: stored details are not JSON (${cause instanceof Error ? cause.message : String(cause)}): the row was altered outside the ledger; run bulwark audit verify`, { seq: String(row.seq) }, { cause });
  }
}

export function ledgerEventOfRow(row: EventRow): LedgerEvent {
  return {
    seq: toNumber(row.seq, 'seq'),
    eventId: row.event_id,
    timestamp: toNumber(row.timestamp_ms, 'timestamp_ms'),
    producer: row.producer,
    agentId: row.agent_id,
    eventType: row.event_type as EventType,
    details: parseDetails(row),
    previousHash: bytes(row.previous_hash),
    eventHash: bytes(row.event_hash),
    signature: bytes(row.signature),
  };
}

export function splitEdge(edge: Uint8Array): Uint8Array[] {
  if (edge.length % MERKLE_HASH_LENGTH !== 0) throw new LedgerError('E_LEDGER', `ledger_head.edge is ${edge.length} bytes, not a multiple of ${MERKLE_HASH_LENGTH}`);
  const out: Uint8Array[] = [];
  for (let at = 0; at < edge.length; at += MERKLE_HASH_LENGTH) out.push(Uint8Array.from(edge.subarray(at, at + MERKLE_HASH_LENGTH)));
  return out;
}

export function joinEdge(edge: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(edge.length * MERKLE_HASH_LENGTH);
  edge.forEach((hash, i) => out.set(hash, i * MERKLE_HASH_LENGTH));
  return out;
}

export function nodeKey(id: NodeId): string {
  return `${id.level}/${id.index}`;
}
