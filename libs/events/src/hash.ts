/**
 * The event hash (DESIGN §4; byte-by-byte table in README.md):
 *
 *   event_hash = SHA-256( F(tag) F(seq) F(event_id) F(timestamp) F(producer) F(agent_id) F(event_type) F(JCS(details)) F(previous_hash) )
 *   F(x)       = u32 big-endian byte length of x || x
 *
 * Every field, fixed-size ones included, carries its length, so no field can be left
 * out and no bytes can move from one field to its neighbour without changing the input.
 * The tag separates this hash from every other SHA-256 in Bulwark (Merkle leaves, notes);
 * v2 added the producer (DESIGN §3a), so no v1 hash can be mistaken for a v2 one.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { HASH_LENGTH, canonicalDetails, type AuditEvent } from './event.js';

export const EVENT_HASH_DOMAIN = 'bulwark.audit.event.v2';

/** What the hash covers: the producer's event, who delivered it, its position, and the previous link. */
export interface HashedFields {
  readonly seq: number;
  readonly eventId: string;
  readonly timestamp: number;
  /** The authenticated principal that delivered the event to the ledger (ChainFields.producer). */
  readonly producer: string;
  readonly agentId: string;
  readonly eventType: string;
  /** RFC 8785 canonical text of details. */
  readonly detailsJcs: string;
  readonly previousHash: Uint8Array;
}

const utf8 = new TextEncoder();
const DOMAIN = utf8.encode(EVENT_HASH_DOMAIN);
/** Length prefixes (9 × 4), the domain, seq, id, timestamp and previous hash: everything but the four strings. */
const FIXED_BYTES = 9 * 4 + DOMAIN.length + 8 + 16 + 8 + HASH_LENGTH;
/** UTF-8 needs at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units). */
const UTF8_PER_UNIT = 3;

/** Hex digit values by char code, -1 for anything else (lowercase only, as the id rule requires). */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[0x61 + i] = 10 + i;

/**
 * Writes the hash input into one buffer (no per-field arrays: the ledger hashes every event
 * it appends). The buffer is reused by computeEventHash and copied out by eventHashInput.
 */
class InputWriter {
  #buffer = new Uint8Array(1024);
  #view = new DataView(this.#buffer.buffer);
  #at = 0;

  write(fields: HashedFields): Uint8Array {
    if (fields.previousHash.length !== HASH_LENGTH) {
      throw new InputError('E_EVENT_HASH', `event hash: previous_hash is ${fields.previousHash.length} bytes, expected ${HASH_LENGTH}`, { seq: fields.seq });
    }
    const most = FIXED_BYTES + UTF8_PER_UNIT * (fields.producer.length + fields.agentId.length + fields.eventType.length + fields.detailsJcs.length);
    if (most > this.#buffer.length) {
      this.#buffer = new Uint8Array(2 * most);
      this.#view = new DataView(this.#buffer.buffer);
    }
    this.#at = 0;
    this.#bytes(DOMAIN);
    this.#u64(fields.seq, 'seq');
    this.#uuid(fields.eventId);
    this.#u64(fields.timestamp, 'timestamp');
    this.#text(fields.producer);
    this.#text(fields.agentId);
    this.#text(fields.eventType);
    this.#text(fields.detailsJcs);
    this.#bytes(fields.previousHash);
    return this.#buffer.subarray(0, this.#at);
  }

  #length(n: number): void {
    this.#view.setUint32(this.#at, n, false);
    this.#at += 4;
  }

  #bytes(bytes: Uint8Array): void {
    this.#length(bytes.length);
    this.#buffer.set(bytes, this.#at);
    this.#at += bytes.length;
  }

  #u64(value: number, what: string): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new InputError('E_EVENT_HASH', `event hash: ${what} ${value} is not a non-negative safe integer`, { what, value });
    this.#length(8);
    this.#view.setUint32(this.#at, Math.floor(value / 2 ** 32), false);
    this.#view.setUint32(this.#at + 4, value % 2 ** 32, false);
    this.#at += 8;
  }

  /** The 16 bytes of a UUID's canonical text (RFC 9562 §4): 32 lowercase hex digits and 4 dashes. */
  #uuid(id: string): void {
    const bad = (): InputError => new InputError('E_EVENT_HASH', `event hash: event_id ${JSON.stringify(id.slice(0, 64))} is not a lowercase UUID`, { eventId: id });
    if (id.length !== 36) throw bad();
    this.#length(16);
    let digits = 0;
    for (let i = 0; i < 36; i++) {
      const code = id.charCodeAt(i);
      if (code === 0x2d) continue;
      const value = code < 128 ? HEX_VALUE[code]! : -1;
      if (value < 0 || digits === 32) throw bad();
      if (digits % 2 === 0) this.#buffer[this.#at + digits / 2] = value << 4;
      else this.#buffer[this.#at + (digits - 1) / 2]! |= value;
      digits += 1;
    }
    if (digits !== 32) throw bad();
    this.#at += 16;
  }

  /** UTF-8 as TextEncoder writes it (a lone surrogate becomes U+FFFD; events never carry one). */
  #text(text: string): void {
    const { written } = utf8.encodeInto(text, this.#buffer.subarray(this.#at + 4));
    this.#length(written);
    this.#at += written;
  }
}

const writer = new InputWriter();

/** The exact bytes hashed into event_hash (exposed for outside verifiers and tests). */
export function eventHashInput(fields: HashedFields): Uint8Array {
  return writer.write(fields).slice();
}

export function computeEventHash(crypto: Pick<CryptoProvider, 'sha256'>, fields: HashedFields): Uint8Array {
  return crypto.sha256(writer.write(fields));
}

/** The hashed fields of a validated event delivered by `producer`, at a given place in the chain. */
export function hashedFieldsOf(event: AuditEvent, producer: string, seq: number, previousHash: Uint8Array): HashedFields {
  return {
    seq,
    eventId: event.eventId,
    timestamp: event.timestamp,
    producer,
    agentId: event.agentId,
    eventType: event.eventType,
    detailsJcs: canonicalDetails(event.details, event.eventId),
    previousHash,
  };
}
