/**
 * The event hash (DESIGN §4; byte-by-byte table in README.md):
 *
 *   event_hash = SHA-256( F(tag) F(seq) F(event_id) F(timestamp) F(agent_id) F(event_type) F(JCS(details)) F(previous_hash) )
 *   F(x)       = u32 big-endian byte length of x || x
 *
 * Every field, fixed-size ones included, carries its length, so no field can be left
 * out and no bytes can move from one field to its neighbour without changing the input.
 * The tag separates this hash from every other SHA-256 in Bulwark (Merkle leaves, notes).
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { HASH_LENGTH, canonicalDetails, type AuditEvent } from './event.js';

export const EVENT_HASH_DOMAIN = 'bulwark.audit.event.v1';

/** What the hash covers: the producer's event, its position, and the previous link. */
export interface HashedFields {
  readonly seq: number;
  readonly eventId: string;
  readonly timestamp: number;
  readonly agentId: string;
  readonly eventType: string;
  /** RFC 8785 canonical text of details. */
  readonly detailsJcs: string;
  readonly previousHash: Uint8Array;
}

const utf8 = new TextEncoder();

function u64(value: number, what: string): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new InputError('E_EVENT_HASH', `event hash: ${what} ${value} is not a non-negative safe integer`, { what, value });
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value), false);
  return out;
}

/** The 16 bytes of a UUID's canonical text (RFC 9562 §4). */
function uuidBytes(id: string): Uint8Array {
  const hex = id.replaceAll('-', '');
  if (!/^[0-9a-f]{32}$/.test(hex) || id.length !== 36) throw new InputError('E_EVENT_HASH', `event hash: event_id ${JSON.stringify(id.slice(0, 64))} is not a lowercase UUID`, { eventId: id });
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function field(bytes: Uint8Array): Uint8Array[] {
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, bytes.length, false);
  return [length, bytes];
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The exact bytes hashed into event_hash (exposed for outside verifiers and tests). */
export function eventHashInput(fields: HashedFields): Uint8Array {
  if (fields.previousHash.length !== HASH_LENGTH) {
    throw new InputError('E_EVENT_HASH', `event hash: previous_hash is ${fields.previousHash.length} bytes, expected ${HASH_LENGTH}`, { seq: fields.seq });
  }
  return concat([
    ...field(utf8.encode(EVENT_HASH_DOMAIN)),
    ...field(u64(fields.seq, 'seq')),
    ...field(uuidBytes(fields.eventId)),
    ...field(u64(fields.timestamp, 'timestamp')),
    ...field(utf8.encode(fields.agentId)),
    ...field(utf8.encode(fields.eventType)),
    ...field(utf8.encode(fields.detailsJcs)),
    ...field(fields.previousHash),
  ]);
}

export function computeEventHash(crypto: Pick<CryptoProvider, 'sha256'>, fields: HashedFields): Uint8Array {
  return crypto.sha256(eventHashInput(fields));
}

/** The hashed fields of a validated event at a given place in the chain. */
export function hashedFieldsOf(event: AuditEvent, seq: number, previousHash: Uint8Array): HashedFields {
  return {
    seq,
    eventId: event.eventId,
    timestamp: event.timestamp,
    agentId: event.agentId,
    eventType: event.eventType,
    detailsJcs: canonicalDetails(event.details, event.eventId),
    previousHash,
  };
}
