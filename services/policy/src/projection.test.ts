import { describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { GENESIS_PREVIOUS_HASH, newEvent, sealEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { PolicyProjection } from './projection.js';

const provider = createCryptoProvider('node');
const key = provider.ed25519.generateKeyPair();
let seq = 0;
const committed = (eventType: EventType, details: Record<string, string | number>): LedgerEvent =>
  sealEvent(provider, key.secretKey, newEvent({ agentId: 'analyst.a', eventType, details }), 'svc.policy', seq++, GENESIS_PREVIOUS_HASH);
const text = (n: number) => `policy p { allow: read(r${n}) }`;

describe('PolicyProjection', () => {
  it('applies register, update and rollback, and names the set by the last applied sequence', () => {
    const p = new PolicyProjection();
    expect(p.apply(committed('policy.registered', { name: 'p', version: 1, text: text(1) }))).toMatchObject({ kind: 'applied' });
    expect(p.apply(committed('policy.updated', { name: 'p', version: 2, text: text(2) }))).toMatchObject({ kind: 'applied', version: 2 });
    const back = committed('policy.rolledback', { name: 'p', version: 1, text: text(1) });
    expect(p.apply(back)).toMatchObject({ kind: 'applied', version: 1 });
    expect(p.describe('p')).toEqual({ active: 1, max: 2, versions: [1, 2] });
    const set = p.build();
    expect(set.version).toBe(`ledger-${back.seq}`);
    expect(set.evaluate({ action: 'read', resource: 'r1' }).decision).toBe('Allow');
    expect(set.evaluate({ action: 'read', resource: 'r2' }).decision).toBe('Deny');
    // After a rollback the next update is still max + 1.
    expect(p.apply(committed('policy.updated', { name: 'p', version: 2, text: text(3) }))).toMatchObject({ kind: 'skipped' });
    expect(p.apply(committed('policy.updated', { name: 'p', version: 3, text: text(3) }))).toMatchObject({ kind: 'applied' });
  });

  it('skips events that break the rules, changing nothing', () => {
    const p = new PolicyProjection();
    const skips = [
      committed('policy.updated', { name: 'p', version: 1, text: text(1) }),
      committed('policy.rolledback', { name: 'p', version: 1, text: text(1) }),
      committed('policy.registered', { name: 'p', version: 2, text: text(1) }),
      committed('policy.registered', { name: 'q', version: 1, text: text(1) }),
      committed('policy.registered', { name: 'p', version: 1, text: 'policy p { allow: }' }),
      committed('policy.registered', { name: 'p', version: 1, text: `${text(1)} policy z { allow: any }` }),
      committed('policy.registered', { name: 'p', version: 1, text: 'policy p { allow: read(r) if u.level >= "secrett" }' }),
      committed('policy.decision', { name: 'p', version: 1 }),
    ];
    for (const e of skips) expect(p.apply(e)).toMatchObject({ kind: 'skipped' });
    expect(p.names()).toEqual([]);
    expect(p.seq).toBe(-1);
    p.apply(committed('policy.registered', { name: 'p', version: 1, text: text(1) }));
    expect(p.apply(committed('policy.registered', { name: 'p', version: 1, text: text(2) }))).toMatchObject({ kind: 'skipped' });
    expect(p.apply(committed('policy.rolledback', { name: 'p', version: 5, text: text(1) }))).toMatchObject({ kind: 'skipped' });
  });
});
