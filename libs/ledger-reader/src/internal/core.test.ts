import { describe, expect, it } from 'vitest';
import { toBase64 } from '@bulwark/crypto';
import { sealEvent, newEvent, type LedgerEvent } from '@bulwark/events';
import type { ReaderHaltedError } from '../errors.js';
import type { ReaderMode, ReaderPosition } from './chain.js';
import { ReaderCore, type GapSource } from './core.js';
import { crypto, MemoryLedger, tampered } from './ledger.fixture.js';
import { eventVerifier } from './verify.js';

function reader(ledger: MemoryLedger, mode: ReaderMode, start?: ReaderPosition, source: GapSource = ledger.source()) {
  const applied: LedgerEvent[] = [];
  const halts: ReaderHaltedError[] = [];
  const core = new ReaderCore({
    reader: 'test',
    mode,
    ...(start === undefined ? {} : { start }),
    verify: eventVerifier(crypto, ledger.keys.publicKey),
    source,
    apply: (e) => void applied.push(e),
    onHalt: (h) => void halts.push(h),
    retryDelayMs: 1,
  });
  const seqs = () => applied.map((e) => e.seq);
  return { core, applied, halts, seqs };
}

describe('ledger reader core: control mode', () => {
  it('applies the control batches in ledger order and tracks the last verified event', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3); // control events at 0, 2, 4
    const r = reader(ledger, 'control');
    for (const batch of ledger.controlMessages()) await r.core.handleBatch(batch);
    expect(r.seqs()).toEqual([0, 2, 4]);
    expect(r.core.position.seq).toBe(4);
    expect(r.core.position.eventHash).toEqual(ledger.events[4]!.eventHash);
    expect(r.halts).toEqual([]);
    expect(ledger.queries).toEqual([]);
  });

  it('fills a deleted control message from the ledger before applying the next one', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, , m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m4!); // the message holding seq 2 was deleted: m4 says its predecessor is 2
    expect(r.seqs()).toEqual([0, 2, 4]);
    expect(ledger.queries).toEqual([{ fromSeq: 1, toSeq: 2, control: true }]);
    expect(r.core.metrics()).toMatchObject({ filled: 1, gaps: 1 });
    expect(r.halts).toEqual([]);
  });

  it('skips a late message whose events were already applied (two messages reordered)', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, m2, m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m4!);
    await r.core.handleBatch(m2!); // the late one
    expect(r.seqs()).toEqual([0, 2, 4]);
    expect(r.core.metrics()).toMatchObject({ skipped: 1 });
    expect(r.halts).toEqual([]);
  });

  it('halts when the ledger cannot be asked to fill a gap, and applies nothing after it', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, , m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    ledger.failures = 3;
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m4!);
    expect(r.seqs()).toEqual([0]);
    expect(r.halts).toHaveLength(1);
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_GAP', seq: 1 });
    expect(r.halts[0]!.problem).toMatch(/ledger could not be asked \(3 tries\): ledger unavailable/);
    ledger.failures = 0;
    await r.core.handleBatch(m4!);
    await r.core.sync();
    expect(r.seqs()).toEqual([0]);
  });

  it('retries a failing fill and goes on when the ledger answers', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, , m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    ledger.failures = 2;
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m4!);
    expect(r.seqs()).toEqual([0, 2, 4]);
    expect(r.halts).toEqual([]);
  });

  it('halts when the ledger does not serve exactly the missing events', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, , m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    ledger.serve = () => []; // the query answers, but without seq 2
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m4!);
    expect(r.seqs()).toEqual([0]);
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_GAP', seq: 1 });
  });

  it('halts on a forged event in the fill: every served event is checked like a streamed one', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, , m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    ledger.serve = (events) => events.map((e) => tampered(e, { details: { name: 'p', version: 99 } }));
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m4!);
    expect(r.seqs()).toEqual([0]);
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_SEAL', seq: 2 });
    expect(r.halts[0]!.problem).toMatch(/event_hash mismatch/);
  });

  it('halts on a streamed event with a bad signature, a changed field, or a forbidden producer', async () => {
    for (const [code, forge] of [
      // Signed by another key.
      ['E_READER_SEAL', (e: LedgerEvent) => tampered(e, { signature: crypto.ed25519.sign(crypto.ed25519.generateKeyPair().secretKey, e.eventHash) })],
      ['E_READER_SEAL', (e: LedgerEvent) => tampered(e, { details: { name: 'p', version: 1, text: 'other' } })],
      ['E_READER_SEAL', (e: LedgerEvent) => tampered(e, { producer: 'svc.key-manager' })],
      // Correctly sealed by the ledger, but svc.key-manager may not produce policy events.
      ['E_READER_PRODUCER', (e: LedgerEvent, l: MemoryLedger) => sealEvent(crypto, l.keys.secretKey, newEvent({ agentId: e.agentId, eventType: e.eventType, details: e.details }), 'svc.key-manager', e.seq, e.previousHash)],
    ] as const) {
      const ledger = new MemoryLedger();
      ledger.history(3);
      const [m0, m2, m4] = ledger.controlMessages();
      const r = reader(ledger, 'control');
      await r.core.handleBatch(m0!);
      await r.core.handleBatch({ ...m2!, events: [forge(m2!.events[0]!, ledger)] });
      await r.core.handleBatch(m4!);
      expect(r.seqs(), code).toEqual([0]);
      expect(r.halts[0], code).toMatchObject({ code, seq: 2 });
    }
  });

  it('halts on a control batch without control_previous_seq or with a non-control event', async () => {
    const ledger = new MemoryLedger();
    ledger.history(2);
    const r = reader(ledger, 'control');
    await r.core.handleBatch({ events: [ledger.events[0]!] });
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_MESSAGE' });
    const s = reader(ledger, 'control');
    await s.core.handleBatch({ events: [ledger.events[0]!, ledger.events[1]!], controlPreviousSeq: -1 });
    expect(s.halts[0]).toMatchObject({ code: 'E_READER_MESSAGE', seq: 1 });
    expect(s.seqs()).toEqual([]);
  });

  it('halts on a late message contradicting the order the ledger gave (an event between two applied ones)', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, m2, m4] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    await r.core.handleBatch(m0!);
    // A batch claiming 4 follows 0 directly: the reader fills nothing (the ledger's word) and applies 4...
    await r.core.handleBatch({ events: m4!.events, controlPreviousSeq: 0 });
    // ...then seq 2 arrives: an event the order said does not exist.
    await r.core.handleBatch(m2!);
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_FORK', seq: 2 });
  });

  it('halts when a new control batch names a predecessor behind the last event applied', async () => {
    const ledger = new MemoryLedger();
    ledger.history(4); // control events at 0, 2, 4, 6
    const [m0, m2, m4, m6] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    for (const m of [m0, m2, m4]) await r.core.handleBatch(m!);
    // seq 6 is new, but its batch says the control event before it is seq 2: seq 4 would never have happened.
    await r.core.handleBatch({ events: m6!.events, controlPreviousSeq: 2 });
    expect(r.seqs()).toEqual([0, 2, 4]);
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_FORK', seq: 6 });
  });

  it('resumes after a persisted control position: earlier messages skipped, a different event at that seq halts', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const messages = ledger.controlMessages();
    const r = reader(ledger, 'control', { seq: 2, eventHash: ledger.events[2]!.eventHash });
    for (const m of messages) await r.core.handleBatch(m);
    expect(r.seqs()).toEqual([4]);
    expect(r.halts).toEqual([]);
    const wrong = reader(ledger, 'control', { seq: 2, eventHash: ledger.events[0]!.eventHash });
    for (const m of messages) await wrong.core.handleBatch(m);
    expect(wrong.seqs()).toEqual([]);
    expect(wrong.halts[0]).toMatchObject({ code: 'E_READER_FORK', seq: 2 });
  });

  it('fills a deleted tail on sync: no later message would reveal it', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const [m0, m2] = ledger.controlMessages();
    const r = reader(ledger, 'control');
    await r.core.handleBatch(m0!);
    await r.core.handleBatch(m2!);
    await r.core.sync(); // the last message (seq 4) was deleted from the stream
    expect(r.seqs()).toEqual([0, 2, 4]);
    expect(ledger.queries.at(-1)).toEqual({ fromSeq: 3, control: true });
  });
});

describe('ledger reader core: full mode', () => {
  /** The ledger's query, held until `release()`: a tail check whose answer is slow to come (or lost until its timeout). */
  function heldSource(ledger: MemoryLedger) {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const inner = ledger.source();
    const source: GapSource = {
      async *fetch(range) {
        await held;
        yield* inner.fetch(range);
      },
    };
    return { source, release: () => release() };
  }
  const settledWithin = (work: Promise<unknown>, ms: number) => Promise.race([work.then(() => 'settled'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), ms))]);

  it('applies a live message while a tail check waits for the ledger; the answer then skips what it applied', async () => {
    const ledger = new MemoryLedger();
    ledger.history(4); // seqs 0..7
    const query = heldSource(ledger);
    const r = reader(ledger, 'full', undefined, query.source);
    await r.core.handleBatch(ledger.full(0, 1));
    const tail = r.core.sync(); // asks for seq 2 onwards; the answer is held
    expect(await settledWithin(r.core.handleBatch(ledger.full(2, 5)), 1000)).toBe('settled');
    expect(r.seqs()).toEqual([0, 1, 2, 3, 4, 5]);
    query.release();
    await tail;
    // 2..5 came back in the answer (checked, skipped); 6..7 only the ledger had.
    expect(r.seqs()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(r.core.metrics()).toMatchObject({ applied: 8, skipped: 4, filled: 2 });
    expect(r.halts).toEqual([]);
  });

  it('halts when the answer of a tail check contradicts what the stream applied meanwhile', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3); // seqs 0..5
    const query = heldSource(ledger);
    const r = reader(ledger, 'full', undefined, query.source);
    await r.core.handleBatch(ledger.full(0, 1));
    const tail = r.core.sync();
    await r.core.handleBatch(ledger.full(2, 5));
    ledger.serve = (events) => events.map((e) => (e.seq === 3 ? tampered(e, { details: { decision: 'Deny' } }) : e));
    query.release();
    await tail;
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_SEAL', seq: 3 });
  });
  it('applies consecutive batches and fills a deleted one by seq', async () => {
    const ledger = new MemoryLedger();
    ledger.history(4); // seqs 0..7
    const r = reader(ledger, 'full');
    await r.core.handleBatch(ledger.full(0, 1));
    await r.core.handleBatch(ledger.full(4, 7)); // 2..3 deleted
    expect(r.seqs()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(ledger.queries).toEqual([{ fromSeq: 2, toSeq: 3, control: false }]);
  });

  it('halts when previous_hash does not link to the last event applied', async () => {
    const ledger = new MemoryLedger();
    ledger.history(2);
    const other = new MemoryLedger(ledger.keys);
    other.history(2); // the same key, another chain: each event seals, but seq 1 does not link to this seq 0
    const r = reader(ledger, 'full');
    await r.core.handleBatch(ledger.full(0, 0));
    await r.core.handleBatch(other.full(1, 3));
    expect(r.seqs()).toEqual([0]);
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_LINK', seq: 1 });
  });

  it('halts on a batch that is not a chain, and on a fill with a hole', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const r = reader(ledger, 'full');
    await r.core.handleBatch({ events: [ledger.events[0]!, ledger.events[2]!] });
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_LINK', seq: 2 });
    const s = reader(ledger, 'full');
    ledger.serve = (events) => events.filter((e) => e.seq !== 2);
    await s.core.handleBatch(ledger.full(0, 0));
    await s.core.handleBatch(ledger.full(4, 5));
    expect(s.seqs()).toEqual([0, 1]);
    expect(s.halts[0]).toMatchObject({ code: 'E_READER_LINK', seq: 3 });
  });

  it('resumes from a persisted position, not from what the stream says: earlier events skipped, the next must link', async () => {
    const ledger = new MemoryLedger();
    ledger.history(3);
    const at = { seq: 2, eventHash: ledger.events[2]!.eventHash };
    const r = reader(ledger, 'full', at);
    await r.core.handleBatch(ledger.full(0, 3));
    await r.core.handleBatch(ledger.full(4, 5));
    expect(r.seqs()).toEqual([3, 4, 5]);
    const wrong = reader(ledger, 'full', { seq: 2, eventHash: ledger.events[1]!.eventHash });
    await wrong.core.handleBatch(ledger.full(3, 5));
    expect(wrong.seqs()).toEqual([]);
    expect(wrong.halts[0]).toMatchObject({ code: 'E_READER_LINK', seq: 3 });
  });

  it('halts when a late copy of an applied seq is a different event (a fork)', async () => {
    const ledger = new MemoryLedger();
    ledger.history(2);
    const r = reader(ledger, 'full');
    await r.core.handleBatch(ledger.full(0, 3));
    const fork = sealEvent(crypto, ledger.keys.secretKey, newEvent({ agentId: 'analyst.admin', eventType: 'policy.registered', details: { name: 'q', version: 1 } }), 'svc.policy', 2, ledger.events[1]!.eventHash);
    await r.core.handleBatch({ events: [fork] });
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_FORK', seq: 2 });
  });

  it('halts when the projection throws: its state is no longer a function of the ledger', async () => {
    const ledger = new MemoryLedger();
    ledger.history(1);
    const halts: ReaderHaltedError[] = [];
    const core = new ReaderCore({ reader: 't', mode: 'full', verify: eventVerifier(crypto, ledger.keys.publicKey), source: ledger.source(), apply: () => { throw new Error('boom'); }, onHalt: (h) => void halts.push(h) });
    await core.handleBatch(ledger.full(0, 1));
    expect(halts[0]).toMatchObject({ code: 'E_READER_APPLY', seq: 0 });
    expect(core.position.seq).toBe(-1);
  });
});

describe('ledger reader core: the ledger rotates its own key', () => {
  it('follows the chain from the first key across two rotations, in full and control mode and through a fill', async () => {
    const ledger = new MemoryLedger();
    ledger.history(2);
    ledger.rotate(2);
    ledger.history(2);
    ledger.rotate(3);
    ledger.history(1);
    const full = reader(ledger, 'full');
    // The middle batch (the second rotation among it) is missing: the fill verifies it under the keys it learns.
    await full.core.handleBatch(ledger.full(0, 5));
    await full.core.handleBatch(ledger.full(11, ledger.events.length - 1));
    expect(full.halts).toEqual([]);
    expect(full.seqs()).toEqual(ledger.events.map((e) => e.seq));
    const control = reader(ledger, 'control');
    for (const batch of ledger.controlMessages()) await control.core.handleBatch(batch);
    expect(control.halts).toEqual([]);
    expect(control.core.position.seq).toBe(ledger.events.at(-1)!.seq - 1);
  });

  it('refuses an event signed with the retired key after the change (a thief of the old key), and a late copy of an old event under the new key', async () => {
    const ledger = new MemoryLedger();
    ledger.history(1);
    const old = ledger.signing;
    ledger.rotate(2);
    const r = reader(ledger, 'full');
    await r.core.handleBatch(ledger.full(0, 2));
    expect(r.halts).toEqual([]);
    const forged = sealEvent(crypto, old.secretKey, newEvent({ agentId: 'analyst.admin', eventType: 'policy.updated', details: { name: 'p', version: 9 } }), 'svc.policy', 3, ledger.events[2]!.eventHash);
    await r.core.handleBatch({ events: [forged] });
    expect(r.halts[0]).toMatchObject({ code: 'E_READER_SEAL', seq: 3 });
    expect(r.seqs()).toEqual([0, 1, 2]);

    const again = reader(ledger, 'full');
    await again.core.handleBatch(ledger.full(0, 2));
    const resigned = sealEvent(crypto, ledger.signing.secretKey, newEvent({ agentId: 'analyst.admin', eventType: 'policy.decision', details: { decision: 'Allow' } }), 'svc.policy', 1, ledger.events[0]!.eventHash);
    await again.core.handleBatch({ events: [resigned] });
    expect(again.halts[0]).toMatchObject({ seq: 1 });
  });

  it('refuses a change to an older version, back to a retired key, or one that does not parse', async () => {
    const back = new MemoryLedger();
    const first = back.keys;
    back.rotate(2);
    back.rotate(3, first);
    const r1 = reader(back, 'full');
    await r1.core.handleBatch(back.full(0, 1));
    expect(r1.halts[0]).toMatchObject({ code: 'E_READER_LEDGER_KEY', seq: 1 });
    expect(r1.halts[0]!.problem).toContain('returns to a key the ledger used before');

    const lower = new MemoryLedger();
    lower.rotate(3);
    lower.rotate(2);
    const r2 = reader(lower, 'full');
    await r2.core.handleBatch(lower.full(0, 1));
    expect(r2.halts[0]).toMatchObject({ code: 'E_READER_LEDGER_KEY', seq: 1 });

    const malformed = new MemoryLedger();
    malformed.append('keys.rotated', { principal: 'svc.audit-ledger', by: 'analyst.admin', version: 2, ed25519: 'zz', x25519: 'zz', at: 1, trigger: 'on_demand', natsUser: null }, 'svc.key-manager', 'svc.audit-ledger');
    const r3 = reader(malformed, 'full');
    await r3.core.handleBatch(malformed.full(0, 0));
    expect(r3.halts[0]).toMatchObject({ code: 'E_READER_LEDGER_KEY', seq: 0 });
  });

  it('a keys.rotated about another principal, or for the ledger from another producer, moves nothing', async () => {
    const ledger = new MemoryLedger();
    ledger.append('keys.rotated', { principal: 'svc.policy', by: 'analyst.admin', version: 2, ed25519: toBase64(crypto.ed25519.generateKeyPair().publicKey), x25519: toBase64(crypto.ed25519.generateKeyPair().publicKey), at: 1, trigger: 'on_demand', natsUser: null }, 'svc.key-manager', 'svc.policy');
    ledger.history(1);
    const r = reader(ledger, 'full');
    await r.core.handleBatch(ledger.full(0, 2));
    expect(r.halts).toEqual([]);
    const forged = new MemoryLedger();
    forged.append('keys.rotated', { principal: 'svc.audit-ledger', by: 'analyst.admin', version: 2, ed25519: toBase64(crypto.ed25519.generateKeyPair().publicKey), x25519: toBase64(crypto.ed25519.generateKeyPair().publicKey), at: 1, trigger: 'on_demand', natsUser: null }, 'svc.policy', 'svc.audit-ledger');
    const r2 = reader(forged, 'full');
    await r2.core.handleBatch(forged.full(0, 0));
    expect(r2.halts[0]).toMatchObject({ code: 'E_READER_PRODUCER', seq: 0 });
  });
});
