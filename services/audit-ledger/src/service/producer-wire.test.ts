import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { AuditEventBatchSchema, AuditEventSchema } from '@bulwark/proto';
import { decodeProducerBatch, decodeProducerEvent, WireError } from './producer-wire.js';

const utf8 = new TextEncoder();

function message(i: number, extra: { timestampMs?: bigint; detailsJson?: string; seq?: bigint; previousHash?: Uint8Array; eventHash?: Uint8Array; signature?: Uint8Array; producer?: string } = {}) {
  return create(AuditEventSchema, {
    eventId: `0192f5a0-1c00-7abc-8def-${String(i).padStart(12, '0')}`,
    timestampMs: BigInt(1732579200000 + i * 977),
    agentId: `agent.ünï-${i}`,
    eventType: 'policy.decision',
    detailsJson: JSON.stringify({ i, s: '😀é'.repeat(i % 7), deep: { a: [i, null] } }),
    ...extra,
  });
}

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 128; n = Math.floor(n / 128)) out.push((n % 128) | 128);
  return [...out, n];
}

/** What the reflective decoder reads, in the producer fields. */
function reference(bytes: Uint8Array) {
  return fromBinary(AuditEventBatchSchema, bytes).events.map((m) => ({ eventId: m.eventId, timestampMs: Number(m.timestampMs), agentId: m.agentId, eventType: m.eventType, detailsJson: m.detailsJson }));
}

describe('producer wire decoding', () => {
  it('reads batches and single events as the reflective decoder does, skipping chain and unknown fields', () => {
    const messages = Array.from({ length: 40 }, (_, i) => message(i, i % 3 === 0 ? { seq: BigInt(i), previousHash: new Uint8Array(32).fill(i), eventHash: new Uint8Array(32), signature: new Uint8Array(64).fill(1), producer: 'svc.policy' } : {}));
    messages.push(message(99, { timestampMs: 0n, detailsJson: '' }), message(100, { timestampMs: BigInt(Number.MAX_SAFE_INTEGER) }));
    const batch = toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { events: messages }));
    expect(decodeProducerBatch(batch)).toEqual(reference(batch));
    // A producer field (10) set by the sender is not read: the ledger takes the producer from the envelope.
    expect(decodeProducerBatch(batch)[0]).not.toHaveProperty('producer');
    // Unknown fields of every wire type, in the batch and inside an event, and a repeated scalar (the last wins).
    const single = toBinary(AuditEventSchema, messages[5]!);
    const unknown = Uint8Array.from([0x70, 0x96, 0x01, 0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x62, 0x02, 0x68, 0x69, 0x6d, 1, 2, 3, 4]);
    const again = Uint8Array.from([0x22, 0x04, ...utf8.encode('x.yz')]);
    const event = Uint8Array.from([...single, ...unknown, ...again]);
    const wrapped = Uint8Array.from([0x0a, ...varint(event.length), ...event, ...unknown]);
    expect(decodeProducerBatch(wrapped)).toEqual(reference(wrapped));
    expect(decodeProducerBatch(wrapped)[0]!.eventType).toBe('x.yz');
    expect(decodeProducerEvent(single)).toEqual(reference(Uint8Array.from([0x0a, ...varint(single.length), ...single]))[0]);
    expect(decodeProducerBatch(new Uint8Array(0))).toEqual([]);
  });

  it('gives NaN for a timestamp beyond 2^53, as a negative int64 is, so the range check refuses it', () => {
    const negative = toBinary(AuditEventSchema, message(1, { timestampMs: -5n }));
    expect(decodeProducerEvent(negative).timestampMs).toBeNaN();
    expect(decodeProducerEvent(toBinary(AuditEventSchema, message(1, { timestampMs: 2n ** 60n }))).timestampMs).toBeNaN();
  });

  it('refuses malformed input as the reflective decoder does', () => {
    const good = toBinary(AuditEventSchema, message(3));
    const cases: Uint8Array[] = [
      good.subarray(0, good.length - 3), // truncated string
      Uint8Array.from([0x0a, 0x03, 0x61, 0xff, 0x62]), // event_id not UTF-8
      Uint8Array.from([0x10, 0x80, 0x80]), // truncated varint
      Uint8Array.from([0x10, ...new Array<number>(11).fill(0x80), 0x01]), // varint over 10 bytes
      Uint8Array.from([0x0d, 1, 2, 3, 4]), // event_id with a fixed32 wire type
      Uint8Array.from([0x59, 1, 2]), // truncated fixed64
      Uint8Array.from([0x00, 0x01]), // field number 0
    ];
    for (const bytes of cases) {
      expect(() => fromBinary(AuditEventSchema, bytes), `reference accepts ${Buffer.from(bytes).toString('hex')}`).toThrow();
      expect(() => decodeProducerEvent(bytes), Buffer.from(bytes).toString('hex')).toThrow(WireError);
    }
    expect(() => decodeProducerBatch(Uint8Array.from([0x0a, 0x05, 0x0a, 0x03, 0x61]))).toThrow(WireError);
    expect(() => decodeProducerBatch(Uint8Array.from([0x08, 0x01]))).toThrow(WireError);
    expect(() => fromBinary(AuditEventBatchSchema, Uint8Array.from([0x08, 0x01]))).toThrow();
  });
});
