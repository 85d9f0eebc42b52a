// The query-fed reader (query-reader.ts) against the in-memory ledger: only the types asked for,
// each event checked as a fill, and a halt on anything else.
import { describe, expect, it } from 'vitest';
import type { ReaderHaltedError } from './errors.js';
import { crypto, MemoryLedger, tampered } from './internal/ledger.fixture.js';
import { startQueryReader } from './query-reader.js';

const TYPES = ['keys.channel_epoch', 'keys.rotated'];

function reader(ledger: MemoryLedger) {
  const applied: number[] = [];
  const halts: ReaderHaltedError[] = [];
  const r = startQueryReader({ provider: crypto, ledgerPublicKey: ledger.keys.publicKey, reader: 'analyst.ann/channel-epochs', eventTypes: TYPES, gapSource: ledger.source(), onEvent: (e) => void applied.push(e.seq), onHalt: (h) => void halts.push(h), syncIntervalMs: 0 });
  return { r, applied, halts };
}

function history(ledger: MemoryLedger): void {
  ledger.history(1); // 0, 1: policy
  ledger.append('keys.channel_epoch', { n: 1 }); // 2
  ledger.append('policy.updated', { name: 'p', version: 2 }); // 3: a control event of another type
  ledger.append('keys.channel_epoch', { n: 2 }); // 4
  ledger.append('keys.channel_epoch', { n: 3 }); // 5
}

describe('ledger query reader', () => {
  it('asks for its types only, applies them in order, and asks again from its position on refresh', async () => {
    const ledger = new MemoryLedger();
    history(ledger);
    const { r, applied, halts } = reader(ledger);
    await r.refresh();
    expect(applied).toEqual([2, 4, 5]);
    ledger.append('keys.rotated', { version: 2 }); // 6
    await r.refresh();
    expect(applied).toEqual([2, 4, 5, 6]);
    expect(ledger.queries.map((q) => [q.fromSeq, q.eventTypes])).toEqual([
      [0, TYPES],
      [6, TYPES],
    ]);
    expect(halts).toEqual([]);
  });

  it('halts on a served event of another type, a mis-signed event, or adjacent events that do not link', async () => {
    const other = new MemoryLedger();
    history(other);
    other.serve = (events) => [...events.slice(0, 1), other.events[3]!, ...events.slice(1)];
    const a = reader(other);
    await a.r.refresh();
    expect(a.applied).toEqual([2]);
    expect(a.halts.map((h) => [h.code, h.seq])).toEqual([['E_READER_GAP', 3]]);

    const forged = new MemoryLedger();
    history(forged);
    forged.serve = (events) => events.map((e) => (e.seq === 4 ? tampered(e, { signature: crypto.ed25519.sign(crypto.ed25519.generateKeyPair().secretKey, e.eventHash) }) : e));
    const b = reader(forged);
    await b.r.refresh();
    expect(b.applied).toEqual([2]);
    expect(b.halts.map((h) => [h.code, h.seq])).toEqual([['E_READER_SEAL', 4]]);
    await b.r.refresh();
    expect(b.applied).toEqual([2]);

    const unlinked = new MemoryLedger();
    history(unlinked);
    unlinked.serve = (events) => events.map((e) => (e.seq === 5 ? tampered(e, { previousHash: new Uint8Array(32) }) : e));
    const c = reader(unlinked);
    await c.r.refresh();
    expect(c.halts.map((h) => [h.code, h.seq])).toEqual([['E_READER_LINK', 5]]);
    expect(c.applied).toEqual([2, 4]);
  });
});
