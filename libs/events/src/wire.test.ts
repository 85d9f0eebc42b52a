import { create, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuditEventBatchSchema, AuditEventSchema } from '@bulwark/proto';
import { InputError } from '@bulwark/errors';
import { GENESIS_PREVIOUS_HASH, newEventId, validateEvent, type AuditEvent, type LedgerEvent } from './event.js';
import { decodeEventBatch, encodeEvent, encodeEventBatch, toEventMessage } from './proto.js';
import { writeAuditEvent, writeAuditEventBatch, type BatchWireOptions, type EventWireFields } from './wire.js';

/** What @bufbuild/protobuf writes for the same fields: the reference. */
function referenceMessage(fields: EventWireFields) {
  return create(AuditEventSchema, {
    eventId: fields.eventId,
    timestampMs: BigInt(fields.timestamp),
    agentId: fields.agentId,
    eventType: fields.eventType,
    detailsJson: fields.detailsJcs,
    seq: BigInt(fields.seq ?? 0),
    previousHash: fields.previousHash ?? new Uint8Array(0),
    eventHash: fields.eventHash ?? new Uint8Array(0),
    signature: fields.signature ?? new Uint8Array(0),
    producer: fields.producer ?? '',
  });
}

function reference(fields: EventWireFields): Uint8Array {
  return toBinary(AuditEventSchema, referenceMessage(fields));
}

function referenceBatch(events: readonly EventWireFields[], options: BatchWireOptions = {}): Uint8Array {
  const controlPreviousSeq = options.controlPreviousSeq === undefined ? {} : { controlPreviousSeq: BigInt(options.controlPreviousSeq) };
  return toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { events: events.map(referenceMessage), ...controlPreviousSeq }));
}

/** Compared as Buffers: a mismatch shows the differing bytes in hex. */
const hex = (bytes: Uint8Array): Buffer => Buffer.from(bytes);

// Any code points (multi-byte UTF-8 included), and strings of UTF-16 units with lone surrogates.
const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)), maxLength: 20 }));
const integer = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.maxSafeNat(), fc.constantFrom(127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER));
const bytes = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }));

const producerFields: fc.Arbitrary<EventWireFields> = fc.record({
  eventId: fc.oneof(fc.constant(''), fc.uuid({ version: 7 }), text),
  timestamp: integer,
  agentId: text,
  eventType: text,
  detailsJcs: fc.oneof(text, fc.json(), fc.string({ unit: 'binary', minLength: 100, maxLength: 3000 })),
});

const ledgerFields: fc.Arbitrary<EventWireFields> = fc
  .tuple(producerFields, fc.record({ seq: integer, previousHash: bytes, eventHash: bytes, signature: bytes, producer: text }))
  .map(([fields, chain]) => ({ ...fields, ...chain }));

const anyFields = fc.oneof(producerFields, ledgerFields);

describe('writeAuditEvent and writeAuditEventBatch', () => {
  it('write exactly the bytes of the reflective protobuf encoder for random events', () => {
    fc.assert(
      fc.property(anyFields, (fields) => {
        expect(hex(writeAuditEvent(fields))).toEqual(hex(reference(fields)));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(anyFields, { maxLength: 12 }), (events) => {
        expect(hex(writeAuditEventBatch(events))).toEqual(hex(referenceBatch(events)));
      }),
      { numRuns: 300 },
    );
    const controlPreviousSeq = fc.oneof(fc.constantFrom(-1, 0, 1, 127, 128, 2 ** 32), fc.maxSafeNat());
    fc.assert(
      fc.property(fc.array(ledgerFields, { maxLength: 6 }), controlPreviousSeq, (events, previous) => {
        expect(hex(writeAuditEventBatch(events, { controlPreviousSeq: previous }))).toEqual(hex(referenceBatch(events, { controlPreviousSeq: previous })));
      }),
      { numRuns: 200 },
    );
  });

  it('write control_previous_seq even when 0 (explicit presence), -1 as ten bytes, and refuse below -1', () => {
    expect(writeAuditEventBatch([], { controlPreviousSeq: 0 })).toEqual(Uint8Array.of(0x10, 0x00));
    expect(writeAuditEventBatch([], { controlPreviousSeq: -1 })).toEqual(Uint8Array.of(0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
    expect(writeAuditEventBatch([], {})).toEqual(new Uint8Array(0));
    expect(() => writeAuditEventBatch([], { controlPreviousSeq: -2 })).toThrow('control_previous_seq -2 is not -1 or a non-negative safe integer');
    expect(() => writeAuditEventBatch([], { controlPreviousSeq: 1.5 })).toThrow(InputError);
  });

  it('leave out empty strings, empty bytes and zero integers as proto3 does', () => {
    const empty: EventWireFields = { eventId: '', timestamp: 0, agentId: '', eventType: '', detailsJcs: '', seq: 0, previousHash: new Uint8Array(0) };
    expect(writeAuditEvent(empty)).toEqual(new Uint8Array(0));
    expect(hex(writeAuditEvent(empty))).toEqual(hex(reference(empty)));
    expect(hex(writeAuditEvent({ ...empty, timestamp: -0, seq: -0 }))).toEqual(hex(reference(empty)));
    // An empty message in a batch is still an item: tag and zero length.
    expect(writeAuditEventBatch([empty, empty])).toEqual(Uint8Array.of(0x0a, 0x00, 0x0a, 0x00));
    expect(writeAuditEventBatch([])).toEqual(new Uint8Array(0));
    const genesis: EventWireFields = { ...empty, eventId: newEventId(), seq: 0, previousHash: GENESIS_PREVIOUS_HASH, eventHash: new Uint8Array(32).fill(7), signature: new Uint8Array(64).fill(9) };
    expect(hex(writeAuditEvent(genesis))).toEqual(hex(reference(genesis)));
  });

  it('write large and multi-byte details (lengths of 2, 3 and 4 varint bytes)', () => {
    const base: EventWireFields = { eventId: newEventId(), timestamp: 1732579200000, agentId: 'agent.ünïcode-✓', eventType: 'policy.decision', detailsJcs: '{}' };
    const events = [200, 70_000, 2_200_000].map((n) => ({ ...base, detailsJcs: `{"s":"${'é😀x\u{10ffff}'.repeat(n / 10)}"}`, seq: n, eventHash: new Uint8Array(32).fill(1) }));
    // Buffer.equals: a deep equality over megabytes takes vitest seconds.
    for (const fields of events) expect(hex(writeAuditEvent(fields)).equals(reference(fields))).toBe(true);
    expect(hex(writeAuditEventBatch(events)).equals(referenceBatch(events))).toBe(true);
  });

  it('refuse a negative or unsafe timestamp or seq with an InputError naming the event', () => {
    const fields: EventWireFields = { eventId: newEventId(), timestamp: 1, agentId: 'svc.policy', eventType: 'policy.decision', detailsJcs: '{}' };
    const cases: [Partial<EventWireFields>, RegExp][] = [
      [{ timestamp: -1 }, /timestamp -1 is negative/],
      [{ seq: -5 }, /seq -5 is negative/],
      [{ timestamp: 1.5 }, /timestamp 1.5 is not a safe integer/],
      [{ timestamp: Number.NaN }, /timestamp NaN is not a safe integer/],
      [{ seq: 2 ** 53 }, /seq 9007199254740992 is not a safe integer/],
      [{ seq: Number.POSITIVE_INFINITY }, /seq Infinity is not a safe integer/],
      [{ timestamp: -(2 ** 60) }, /is not a safe integer/],
    ];
    for (const [change, message] of cases) {
      const bad = { ...fields, ...change };
      expect(() => writeAuditEvent(bad)).toThrow(message);
      expect(() => writeAuditEvent(bad)).toThrow(`event ${fields.eventId}:`);
      const error = catchError(() => writeAuditEventBatch([fields, bad]));
      expect(error).toBeInstanceOf(InputError);
      expect(error).toMatchObject({ code: 'E_EVENT_ENCODE', context: { eventId: fields.eventId, index: 1 } });
      expect(error.message).toMatch(new RegExp(`^audit event message: batch item 1: event ${fields.eventId}: `));
    }
  });
});

function catchError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (error) {
    return error as InputError;
  }
  throw new Error('expected a throw');
}

describe('encodeEvent and encodeEventBatch', () => {
  const producer = (i: number, details: AuditEvent['details']): AuditEvent =>
    validateEvent({ eventId: newEventId(), timestamp: 1732579200000 + i, agentId: `agent.7f3c9a12-${i}`, eventType: 'policy.decision', details });
  const sealed = (event: AuditEvent, seq: number): LedgerEvent => ({
    ...event,
    producer: 'svc.policy',
    seq,
    previousHash: new Uint8Array(32).fill(seq),
    eventHash: new Uint8Array(32).fill(seq + 1),
    signature: new Uint8Array(64).fill(seq + 2),
  });

  it('write what toBinary writes for the event message, producer and ledger events alike', () => {
    const events = [
      producer(0, { decision: 'Deny', reason: 'no rule matched', limits: { cpu: 0.5, memory_mb: 512 } }),
      producer(1, { z: 1, a: ['ü', '😀', null, true], nested: { b: 2, a: 1 } }),
      sealed(producer(2, { decision: 'Allow' }), 0),
      sealed(producer(3, {}), 2 ** 40),
    ];
    for (const event of events) expect(hex(encodeEvent(event))).toEqual(hex(toBinary(AuditEventSchema, toEventMessage(event))));
    const batch = encodeEventBatch(events);
    expect(hex(batch)).toEqual(hex(toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { events: events.map(toEventMessage) }))));
    expect(decodeEventBatch(batch)).toEqual(events);
  });

  it('refuse an unvalidated event whose timestamp the wire cannot carry', () => {
    const event = producer(0, {});
    expect(() => encodeEventBatch([event, { ...event, timestamp: -1 }])).toThrow(/batch item 1: event .*: timestamp -1 is negative/);
  });
});
