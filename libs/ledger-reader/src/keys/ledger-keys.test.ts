import type { Directory, DirectoryEntry } from '@bulwark/envelope';
import { newEvent, type LedgerEvent } from '@bulwark/events';
import { describe, expect, it } from 'vitest';
import { factDetails, type KeyFact } from './facts.js';
import { LedgerKeys } from './ledger-keys.js';
import type { VersionKeys } from './versions.js';

const AGENT = 'agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f';
const SERVICE = 'svc.policy';
const ADMIN = 'analyst.admin';
const TID = 'a'.repeat(32);
const T0 = 1_800_000_000_000;
let n = 0;
function keys(): VersionKeys {
  n++;
  const b = (tag: number) => Buffer.alloc(32, tag).fill(n, 1, 2).toString('base64');
  return { ed25519: b(1), x25519: b(2) };
}

let seq = 0;
/** A fact as the verified reader hands it over: a committed event of svc.key-manager. */
function committed(fact: KeyFact, producer = 'svc.key-manager'): LedgerEvent {
  const event = newEvent({ agentId: fact.principal, eventType: fact.type, details: factDetails(fact), timestamp: T0 });
  return { ...event, producer, seq: seq++, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) };
}

/** The root-signed entry the directory would serve (its signature was checked by the KvDirectory). */
function entryOf(id: string, version: number, k: VersionKeys): DirectoryEntry {
  return { id, ed25519PublicKey: new Uint8Array(Buffer.from(k.ed25519, 'base64')), x25519PublicKey: new Uint8Array(Buffer.from(k.x25519, 'base64')), keyVersion: version, notBefore: 0, notAfter: Number.MAX_SAFE_INTEGER, revoked: false };
}

/** A bucket the operator controls: whatever entry it is given, it serves. */
function bucket(): Directory & { put(entry: DirectoryEntry): void } {
  const entries = new Map<string, DirectoryEntry>();
  return { lookup: (id) => entries.get(id), put: (entry) => void entries.set(entry.id, entry) };
}

/** Invited, enrolled (version 2, its own keys), the reader caught up. */
function enrolled(): { keys: LedgerKeys; boot: VersionKeys; v2: VersionKeys } {
  const k = new LedgerKeys();
  const boot = keys();
  const v2 = keys();
  expect(k.apply(committed({ type: 'keys.invited', principal: AGENT, by: ADMIN, tid: TID, admin: false, iat: T0, exp: T0 + 60_000, keys: boot, natsUser: 'UBOOT' }))?.outcome.kind).toBe('applied');
  expect(k.apply(committed({ type: 'keys.enrolled', principal: AGENT, by: AGENT, tid: TID, keys: v2, at: T0 + 1, natsUser: 'UAGENT' }))?.outcome.kind).toBe('applied');
  k.caughtUp();
  return { keys: k, boot, v2 };
}

describe('the ledger key state and its directory guard', () => {
  it('accepts nobody until the reader caught up; once it halted, what it knew still judges', () => {
    const k = new LedgerKeys();
    const kv = bucket();
    const guard = k.guard(kv);
    kv.put(entryOf(SERVICE, 1, keys()));
    // Replaying: a revocation may be further on in the ledger, so the bucket alone is not enough.
    expect(k.state).toBe('replaying');
    expect(guard.lookup(SERVICE)).toBeUndefined();
    k.caughtUp();
    // A principal the key manager never saw (made by `bulwark init`) stands on its entry.
    expect(guard.lookup(SERVICE)).toBe(kv.lookup(SERVICE));
    k.halt();
    k.caughtUp();
    expect(k.state).toBe('halted');
    expect(guard.lookup(SERVICE)).toBe(kv.lookup(SERVICE));
    expect(guard.lookup('svc.nobody')).toBeUndefined();
  });

  it('keeps a revoked key refused after the reader halted (forcing a halt brings nothing back)', () => {
    const { keys: k, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    kv.put(entryOf(AGENT, 2, v2));
    k.apply(committed({ type: 'keys.revoked', principal: AGENT, by: ADMIN, version: 2, reason: 'key_compromise', at: T0 + 2 }));
    k.halt();
    expect(guard.lookup(AGENT)).toBeUndefined();
  });

  it('refuses a revoked key whatever the bucket serves: the unrevoked entry put back, the bootstrap entry, an older version', () => {
    const { keys: k, boot, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    const live = entryOf(AGENT, 2, v2);
    kv.put(live);
    expect(guard.lookup(AGENT)).toBe(live);
    // The same entry object, asked again per frame after the revocation applied: refused at the next frame.
    k.apply(committed({ type: 'keys.revoked', principal: AGENT, by: ADMIN, version: 2, reason: 'key_compromise', at: T0 + 2 }));
    expect(guard.lookup(AGENT)).toBeUndefined();
    kv.put(entryOf(AGENT, 2, v2));
    expect(guard.lookup(AGENT)).toBeUndefined();
    // The bootstrap version was revoked (superseded) by the enrolment.
    kv.put(entryOf(AGENT, 1, boot));
    expect(guard.lookup(AGENT)).toBeUndefined();
    // A later fact cannot bring it back.
    expect(k.apply(committed({ type: 'keys.enabled', principal: AGENT, by: ADMIN, version: 2 }))?.outcome.kind).toBe('refused');
    kv.put(entryOf(AGENT, 2, v2));
    expect(guard.lookup(AGENT)).toBeUndefined();
  });

  it('refuses an entry whose keys are not the ones certified for its version, and a version the ledger never certified', () => {
    const { keys: k, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    kv.put(entryOf(AGENT, 2, keys()));
    expect(guard.lookup(AGENT)).toBeUndefined();
    kv.put(entryOf(AGENT, 2, { ed25519: v2.ed25519, x25519: keys().x25519 }));
    expect(guard.lookup(AGENT)).toBeUndefined();
    kv.put(entryOf(AGENT, 3, keys()));
    expect(guard.lookup(AGENT)).toBeUndefined();
    kv.put(entryOf(AGENT, 2, v2));
    expect(guard.lookup(AGENT)).toBeDefined();
  });

  it('keeps the version a routine rotation left usable (its sessions carry the reply), not after a compromise rotation', () => {
    const { keys: k, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    const v3 = keys();
    k.apply(committed({ type: 'keys.rotated', principal: AGENT, by: AGENT, version: 3, keys: v3, at: T0 + 3, trigger: 'on_demand', natsUser: 'UAGENT3' }));
    kv.put(entryOf(AGENT, 2, v2));
    expect(guard.lookup(AGENT)).toBeDefined();
    kv.put(entryOf(AGENT, 3, v3));
    expect(guard.lookup(AGENT)).toBeDefined();
    const v4 = keys();
    k.apply(committed({ type: 'keys.rotated', principal: AGENT, by: AGENT, version: 4, keys: v4, at: T0 + 4, trigger: 'compromise', natsUser: 'UAGENT4' }));
    for (const [v, ks] of [[2, v2], [3, v3]] as const) {
      kv.put(entryOf(AGENT, v, ks));
      expect(guard.lookup(AGENT), `version ${v}`).toBeUndefined();
    }
    kv.put(entryOf(AGENT, 4, v4));
    expect(guard.lookup(AGENT)).toBeDefined();
  });

  it('follows disable and enable, and refuses below a raised minimum and after deletion is scheduled', () => {
    const { keys: k, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    kv.put(entryOf(AGENT, 2, v2));
    k.apply(committed({ type: 'keys.disabled', principal: AGENT, by: ADMIN, version: 2 }));
    expect(guard.lookup(AGENT)).toBeUndefined();
    k.apply(committed({ type: 'keys.enabled', principal: AGENT, by: ADMIN, version: 2 }));
    expect(guard.lookup(AGENT)).toBeDefined();
    const v3 = keys();
    k.apply(committed({ type: 'keys.rotated', principal: AGENT, by: AGENT, version: 3, keys: v3, at: T0 + 3, trigger: 'interval', natsUser: 'UAGENT3' }));
    k.apply(committed({ type: 'keys.deletion_scheduled', principal: AGENT, by: ADMIN, version: 2, days: 7, at: T0 + 4 }));
    expect(guard.lookup(AGENT)).toBeUndefined();
    k.apply(committed({ type: 'keys.deletion_cancelled', principal: AGENT, by: ADMIN, version: 2 }));
    expect(guard.lookup(AGENT)).toBeDefined();
    k.apply(committed({ type: 'keys.min_version_raised', principal: AGENT, by: ADMIN, min: 3 }));
    expect(guard.lookup(AGENT)).toBeUndefined();
    kv.put(entryOf(AGENT, 3, v3));
    expect(guard.lookup(AGENT)).toBeDefined();
  });

  it('holds the replaced version open for the certifying reply only while asked, and never one revoked for another reason', () => {
    const { keys: k, boot, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    // The enrolment revoked the bootstrap version (superseded): held open for the reply, with its certified keys only.
    kv.put(entryOf(AGENT, 1, boot));
    const release = k.holdOpen(AGENT, 1);
    expect(guard.lookup(AGENT)).toBeDefined();
    kv.put(entryOf(AGENT, 1, keys()));
    expect(guard.lookup(AGENT)).toBeUndefined();
    kv.put(entryOf(AGENT, 1, boot));
    release();
    expect(guard.lookup(AGENT)).toBeUndefined();
    // A compromise rotation leaves version 2 under the minimum: held open; once revoked as compromised, no longer.
    const v3 = keys();
    k.apply(committed({ type: 'keys.rotated', principal: AGENT, by: AGENT, version: 3, keys: v3, at: T0 + 3, trigger: 'compromise', natsUser: 'UAGENT3' }));
    kv.put(entryOf(AGENT, 2, v2));
    expect(guard.lookup(AGENT)).toBeUndefined();
    k.holdOpen(AGENT, 2);
    expect(guard.lookup(AGENT)).toBeDefined();
    k.apply(committed({ type: 'keys.revoked', principal: AGENT, by: ADMIN, version: 2, reason: 'key_compromise', at: T0 + 4 }));
    expect(guard.lookup(AGENT)).toBeUndefined();
  });

  it('counts only what svc.key-manager committed, decoded strictly', () => {
    const { keys: k, v2 } = enrolled();
    const kv = bucket();
    const guard = k.guard(kv);
    kv.put(entryOf(AGENT, 2, v2));
    // A key fact under another producer (the reader's producer check would halt on it first) changes nothing.
    const forged = k.apply(committed({ type: 'keys.disabled', principal: AGENT, by: ADMIN, version: 2 }, 'svc.policy'));
    expect(forged?.outcome).toMatchObject({ kind: 'refused', code: 'E_KEY_FACT' });
    expect(guard.lookup(AGENT)).toBeDefined();
    const malformed = k.apply({ ...committed({ type: 'keys.disabled', principal: AGENT, by: ADMIN, version: 2 }), details: { principal: AGENT, by: ADMIN, version: '2' } });
    expect(malformed?.outcome).toMatchObject({ kind: 'refused', code: 'E_KEY_FACT' });
    expect(guard.lookup(AGENT)).toBeDefined();
    // Events that are not key facts are not this state's.
    expect(k.apply({ ...committed({ type: 'keys.disabled', principal: AGENT, by: ADMIN, version: 2 }), eventType: 'policy.registered', details: {} })).toBeUndefined();
  });
});
