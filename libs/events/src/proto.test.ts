import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { AuditEventBatchSchema, AuditEventSchema } from '@bulwark/proto';
import { createCryptoProvider } from '@bulwark/crypto';
import { GENESIS_PREVIOUS_HASH, newEventId, validateEvent, type LedgerEvent } from './event.js';
import { decodeEvent, decodeEventBatch, decodeLedgerBatch, encodeEvent, encodeEventBatch, isLedgerEvent, toEventMessage } from './proto.js';
import { checkSealedEvent, sealEvent } from './seal.js';

const crypto = createCryptoProvider('node');
const ledgerKey = crypto.ed25519.generateKeyPair();

const event = validateEvent({
  eventId: newEventId(),
  timestamp: 1732579200000,
  agentId: 'svc.policy',
  eventType: 'policy.decision',
  details: { decision: 'Deny', reason: 'no rule matched', limits: { cpu: 0.5, memory_mb: 512 } },
});

describe('wire encoding', () => {
  it('round-trips a producer event', () => {
    const decoded = decodeEvent(encodeEvent(event));
    expect(isLedgerEvent(decoded)).toBe(false);
    expect(decoded).toEqual(event);
  });

  it('round-trips a sealed ledger event, seq 0 included, and the seal still checks', () => {
    const sealed = sealEvent(crypto, ledgerKey.secretKey, event, 'svc.policy', 0, GENESIS_PREVIOUS_HASH);
    const decoded = decodeEvent(encodeEvent(sealed));
    expect(isLedgerEvent(decoded)).toBe(true);
    expect(decoded).toEqual(sealed);
    expect((decoded as LedgerEvent).producer).toBe('svc.policy');
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, decoded as LedgerEvent, GENESIS_PREVIOUS_HASH)).toBeNull();
  });

  it('round-trips a batch', () => {
    const second = validateEvent({ ...event, eventId: newEventId(), eventType: 'bus.rejected', details: { reason: 'replay' } });
    expect(decodeEventBatch(encodeEventBatch([event, second]))).toEqual([event, second]);
  });

  it('rejects garbage bytes and a message with invalid fields', () => {
    expect(() => decodeEvent(Uint8Array.of(0xff, 0xff, 0xff))).toThrow(/^audit event message: not a valid protobuf AuditEvent/);
    const bad = toBinary(AuditEventSchema, create(AuditEventSchema, { eventId: event.eventId, timestampMs: 1n, agentId: 'svc.policy', eventType: 'policy.decision', detailsJson: '{"x":NaN}' }));
    expect(() => decodeEvent(bad)).toThrow('details: not valid JSON');
    const wrongType = create(AuditEventSchema, { eventId: event.eventId, timestampMs: 1n, agentId: 'svc.policy', eventType: 'nope', detailsJson: '{}' });
    const batch = toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { events: [toEventMessage(event), wrongType] }));
    expect(() => decodeEventBatch(batch)).toThrow(/^batch item 1: event .*eventType "nope"/);
  });

  it('rejects half-sealed messages and chain fields of the wrong length', () => {
    const base = { eventId: event.eventId, timestampMs: 1n, agentId: 'svc.policy', eventType: 'policy.decision', detailsJson: '{}' };
    const halfSealed = toBinary(AuditEventSchema, create(AuditEventSchema, { ...base, seq: 3n }));
    expect(() => decodeEvent(halfSealed)).toThrow('has some chain fields');
    const producerOnly = toBinary(AuditEventSchema, create(AuditEventSchema, { ...base, producer: 'svc.policy' }));
    expect(() => decodeEvent(producerOnly)).toThrow('has some chain fields');
    const chain = { eventHash: new Uint8Array(32), previousHash: new Uint8Array(32), signature: new Uint8Array(64) };
    for (const producer of ['', 'nobody', 'svc.', 'agent.a b']) {
      const bad = toBinary(AuditEventSchema, create(AuditEventSchema, { ...base, ...chain, producer }));
      expect(() => decodeEvent(bad)).toThrow('is not a principal id');
    }
    const shortSignature = toBinary(AuditEventSchema, create(AuditEventSchema, { ...base, eventHash: new Uint8Array(32), previousHash: new Uint8Array(32), signature: new Uint8Array(10) }));
    expect(() => decodeEvent(shortSignature)).toThrow('chain fields have wrong lengths');
  });
});

describe('ledger batches', () => {
  const sealedAt = (seq: number, previous = GENESIS_PREVIOUS_HASH): LedgerEvent =>
    sealEvent(crypto, ledgerKey.secretKey, { ...event, eventId: newEventId() }, 'svc.policy', seq, previous);

  it('carry control_previous_seq on control batches, 0 and -1 included, and not on full ones', () => {
    const events = [sealedAt(4), sealedAt(9)];
    expect(decodeLedgerBatch(encodeEventBatch(events))).toEqual({ events });
    for (const controlPreviousSeq of [-1, 0, 3]) {
      expect(decodeLedgerBatch(encodeEventBatch(events, { controlPreviousSeq }))).toEqual({ events, controlPreviousSeq });
    }
    // decodeEventBatch reads the same bytes, ignoring the field.
    expect(decodeEventBatch(encodeEventBatch(events, { controlPreviousSeq: 3 }))).toEqual(events);
  });

  it('refuse a control_previous_seq at or after the first event, below -1, and unsealed events', () => {
    const events = [sealedAt(4)];
    expect(() => decodeLedgerBatch(encodeEventBatch(events, { controlPreviousSeq: 4 }))).toThrow('control_previous_seq 4 is not -1 or a seq below the batch');
    const belowMinusOne = toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { events: events.map(toEventMessage), controlPreviousSeq: -2n }));
    expect(() => decodeLedgerBatch(belowMinusOne)).toThrow('control_previous_seq -2');
    expect(() => decodeLedgerBatch(encodeEventBatch([sealedAt(1), event]))).toThrow(/^audit event message: batch item 1: .* not a ledger event/);
  });
});

describe('sealed events', () => {
  it('names the first thing wrong with a sealed event', () => {
    const sealed = sealEvent(crypto, ledgerKey.secretKey, event, 'svc.policy', 5, crypto.sha256(Uint8Array.of(1)));
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, sealed)).toBeNull();
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, { ...sealed, producer: 'agent.7f3c9a12' })).toBe('event_hash mismatch');
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, { ...sealed, seq: 6 })).toBe('event_hash mismatch');
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, { ...sealed, details: { decision: 'Allow' } })).toBe('event_hash mismatch');
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, sealed, GENESIS_PREVIOUS_HASH)).toBe('previous_hash does not link');
    const forged = Uint8Array.from(sealed.signature);
    forged[0]! ^= 1;
    expect(checkSealedEvent(crypto, ledgerKey.publicKey, { ...sealed, signature: forged })).toBe('signature invalid');
    expect(checkSealedEvent(crypto, crypto.ed25519.generateKeyPair().publicKey, sealed)).toBe('signature invalid');
  });
});
