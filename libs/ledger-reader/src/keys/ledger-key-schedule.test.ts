import { describe, expect, it } from 'vitest';
import { crypto, MemoryLedger } from '../internal/ledger.fixture.js';
import { scheduleOfChanges } from './ledger-key-schedule.js';

describe('scheduleOfChanges: the ledger keys from its key changes alone', () => {
  it('names the key of every seq from the first key and the changes, each sealed by the key before it', () => {
    const ledger = new MemoryLedger();
    ledger.history(2);
    const first = ledger.rotate(2);
    const second = ledger.signing;
    ledger.history(1);
    const next = ledger.rotate(3);
    const schedule = scheduleOfChanges(crypto, ledger.keys.publicKey, [first, next]);
    if (typeof schedule === 'string') throw new Error(schedule);
    expect(schedule.keyFor(first.seq)).toEqual(ledger.keys.publicKey);
    expect(schedule.keyFor(first.seq + 1)).toEqual(second.publicKey);
    expect(schedule.keyFor(next.seq + 1)).toEqual(ledger.signing.publicKey);
    expect(schedule.current.version).toBe(3);
  });

  it('refuses a change sealed by another key, one out of order, and an event that is not a change', () => {
    const ledger = new MemoryLedger();
    const first = ledger.rotate(2);
    const next = ledger.rotate(3);
    const resealed = { ...next, signature: crypto.ed25519.sign(ledger.keys.secretKey, next.eventHash) };
    expect(scheduleOfChanges(crypto, ledger.keys.publicKey, [first, resealed])).toMatch(/seq 1: signature invalid/);
    expect(scheduleOfChanges(crypto, ledger.keys.publicKey, [next])).toMatch(/seq 1: signature invalid/);
    const decision = ledger.append('policy.decision', { decision: 'Allow' });
    expect(scheduleOfChanges(crypto, ledger.keys.publicKey, [first, next, decision])).toMatch(/is not a ledger key change/);
  });
});
