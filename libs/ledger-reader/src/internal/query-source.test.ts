import { describe, expect, it } from 'vitest';
import { canonicalDetails, checkSealedEvent, type LedgerEvent } from '@bulwark/events';
import { crypto, MemoryLedger } from './ledger.fixture.js';
import { CONTROL_EVENT_TYPES, ledgerEventOfJson, queryGapSource } from './query-source.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
/** An event as services/audit-ledger's query serves it (protocol.ts EventJson). */
const json = (e: LedgerEvent) => ({
  seq: e.seq,
  eventId: e.eventId,
  timestamp: e.timestamp,
  producer: e.producer,
  agentId: e.agentId,
  eventType: e.eventType,
  details: e.details,
  detailsJcs: canonicalDetails(e.details),
  previousHash: hex(e.previousHash),
  eventHash: hex(e.eventHash),
  signature: hex(e.signature),
});

describe('gap filling from bulwark.audit.query', () => {
  it('turns a served event back into the ledger event that verifies', () => {
    const ledger = new MemoryLedger();
    const sealed = ledger.append('policy.registered', { name: 'p', version: 1, text: 'é', n: 1.5 });
    const back = ledgerEventOfJson(json(sealed));
    expect(back).toMatchObject({ seq: 0, producer: 'svc.policy', eventType: 'policy.registered', details: sealed.details });
    expect(checkSealedEvent(crypto, ledger.keys.publicKey, back)).toBeNull();
  });

  it('hashes the details the reader applies, whatever the reply says in `details`', () => {
    const ledger = new MemoryLedger();
    const sealed = ledger.append('policy.registered', { name: 'p', version: 1 });
    const back = ledgerEventOfJson({ ...json(sealed), details: { name: 'p', version: 2 } });
    expect(back.details).toEqual({ name: 'p', version: 1 });
    const lying = ledgerEventOfJson({ ...json(sealed), detailsJcs: '{"name":"p","version":2}' });
    expect(checkSealedEvent(crypto, ledger.keys.publicKey, lying)).toBe('event_hash mismatch');
  });

  it('refuses replies that are not the protocol: non-canonical text, missing producer, bad hex', () => {
    const ledger = new MemoryLedger();
    const e = json(ledger.append('policy.registered', { name: 'p', version: 1 }));
    expect(() => ledgerEventOfJson({ ...e, detailsJcs: '{"version":1,"name":"p"}' })).toThrow(/not RFC 8785 canonical/);
    expect(() => ledgerEventOfJson({ ...e, producer: undefined })).toThrow(/no producer/);
    expect(() => ledgerEventOfJson({ ...e, signature: 'zz' })).toThrow(/signature is not 64 bytes/);
    expect(() => ledgerEventOfJson({ ...e, seq: -1 })).toThrow(/no valid seq/);
  });

  it('asks for the range, the control types in control mode, and follows cursors', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const bodies: Record<string, unknown>[] = [];
    const source = queryGapSource(async (body) => {
      bodies.push({ ...body });
      const from = Math.max(body['fromSeq'] as number, Number(body['cursor'] ?? 0));
      const page = ledger.events.filter((e) => e.seq >= from && e.seq <= (body['toSeq'] as number)).slice(0, 2);
      return page.length === 2 ? { events: page.map(json), nextCursor: String(page[1]!.seq + 1) } : { events: page.map(json) };
    });
    const seqs: number[] = [];
    for await (const e of source.fetch({ fromSeq: 1, toSeq: 5, control: true })) seqs.push(e.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(bodies[0]).toEqual({ fromSeq: 1, toSeq: 5, eventTypes: CONTROL_EVENT_TYPES, limit: 1000 });
    expect(bodies.slice(1).map((b) => b['cursor'])).toEqual(['3', '5']);
    expect(CONTROL_EVENT_TYPES).toContain('policy.rolledback');
    expect(CONTROL_EVENT_TYPES).not.toContain('policy.decision');
  });
});
