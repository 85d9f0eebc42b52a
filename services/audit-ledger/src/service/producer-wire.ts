/**
 * Decoding what producers send (`bulwark.events.v1.AuditEvent` / `AuditEventBatch`) by hand,
 * into the five producer fields only: the reflective decoder of @bufbuild/protobuf built a
 * full message per event (three empty byte arrays for the chain fields included), a large
 * share of the ledger thread's work and garbage. Same wire rules as that decoder for what
 * producers send: fields in any order, the last of a repeated scalar wins, unknown fields
 * skipped, strings strictly UTF-8; chain fields (6-10: seq, hashes, signature, producer) skipped,
 * since the ledger assigns them (the producer from the envelope's authenticated sender, DESIGN §3a).
 * Anything malformed throws a WireError; decode.ts turns it into an InputError.
 */
import { isUtf8 } from 'node:buffer';

export class WireError extends Error {}

/** A producer's event as it came: checked by prepareEvent, not here. */
export interface ProducerEvent {
  readonly eventId: string;
  /** Unix ms; NaN when the varint is beyond 2^53 (a negative int64 is), which the range check refuses. */
  readonly timestampMs: number;
  readonly agentId: string;
  readonly eventType: string;
  readonly detailsJson: string;
}

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

class Reader {
  readonly #bytes: Buffer;
  pos: number;
  readonly end: number;

  constructor(bytes: Buffer, pos: number, end: number) {
    this.#bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  /** A varint as a number; NaN beyond 2^53 (still consumed whole, at most 10 bytes). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('premature end of a varint');
      const byte = this.#bytes[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value > Number.MAX_SAFE_INTEGER ? Number.NaN : value;
      scale *= 128;
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** The bounds of a length-delimited field's bytes, consumed. */
  delimited(): [number, number] {
    const length = this.varint();
    if (!(length <= this.end - this.pos)) throw new WireError('length-delimited field runs past the end');
    const start = this.pos;
    this.pos += length;
    return [start, this.pos];
  }

  string(): string {
    const [start, end] = this.delimited();
    const bytes = this.#bytes.subarray(start, end);
    if (!isUtf8(bytes)) throw new WireError('string field is not valid UTF-8');
    return bytes.toString('utf8');
  }

  skip(wire: number): void {
    switch (wire) {
      case VARINT:
        this.varint();
        return;
      case FIXED64:
        this.#advance(8);
        return;
      case LEN:
        this.delimited();
        return;
      case FIXED32:
        this.#advance(4);
        return;
      default:
        // Groups (3, 4) are proto2; no producer writes them.
        throw new WireError(`unsupported wire type ${wire}`);
    }
  }

  #advance(n: number): void {
    if (this.end - this.pos < n) throw new WireError('fixed-size field runs past the end');
    this.pos += n;
  }

  /** The next field's number and wire type. */
  tag(): [number, number] {
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    if (!(field >= 1)) throw new WireError(`invalid field number in tag ${tag}`);
    return [field, tag % 8];
  }
}

function expectWire(field: number, wire: number, expected: number): void {
  if (wire !== expected) throw new WireError(`field ${field} has wire type ${wire}, expected ${expected}`);
}

function readEvent(reader: Reader): ProducerEvent {
  let eventId = '';
  let timestampMs = 0;
  let agentId = '';
  let eventType = '';
  let detailsJson = '';
  while (reader.pos < reader.end) {
    const [field, wire] = reader.tag();
    switch (field) {
      case 1:
        expectWire(field, wire, LEN);
        eventId = reader.string();
        break;
      case 2:
        expectWire(field, wire, VARINT);
        timestampMs = reader.varint();
        break;
      case 3:
        expectWire(field, wire, LEN);
        agentId = reader.string();
        break;
      case 4:
        expectWire(field, wire, LEN);
        eventType = reader.string();
        break;
      case 5:
        expectWire(field, wire, LEN);
        detailsJson = reader.string();
        break;
      default:
        reader.skip(wire);
    }
  }
  return { eventId, timestampMs, agentId, eventType, detailsJson };
}

function bufferOf(payload: Uint8Array): Buffer {
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

export function decodeProducerEvent(payload: Uint8Array): ProducerEvent {
  return readEvent(new Reader(bufferOf(payload), 0, payload.length));
}

export function decodeProducerBatch(payload: Uint8Array): ProducerEvent[] {
  const bytes = bufferOf(payload);
  const reader = new Reader(bytes, 0, bytes.length);
  const events: ProducerEvent[] = [];
  while (reader.pos < reader.end) {
    const [field, wire] = reader.tag();
    if (field !== 1) {
      reader.skip(wire);
      continue;
    }
    expectWire(field, wire, LEN);
    const [start, end] = reader.delimited();
    events.push(readEvent(new Reader(bytes, start, end)));
  }
  return events;
}
