import { newEvent } from '@bulwark/events';
import { describe, expect, it } from 'vitest';
import type { VersionKeys } from './versions.js';
import { factDetails, parseFact, type KeyFact } from './facts.js';
import { KeyBook } from './key-book.js';

const AGENT = 'agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f';
const ADMIN = 'analyst.admin';
const T0 = 1_800_000_000_000;
let n = 0;
function keys(): VersionKeys {
  n++;
  const b = (tag: number) => Buffer.alloc(32, tag).fill(n, 1, 2).toString('base64');
  return { ed25519: b(1), x25519: b(2) };
}

/** A fact as it comes back from the ledger: through the event's details and the strict decoder. */
function viaLedger(fact: KeyFact): KeyFact {
  const event = newEvent({ agentId: fact.principal, eventType: fact.type, details: factDetails(fact), timestamp: T0 });
  const parsed = parseFact(event.eventType, event.agentId, event.details);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

function bookWithEnrolledAgent(): { book: KeyBook; v1: VersionKeys } {
  const book = new KeyBook();
  const v1 = keys();
  expect(book.apply(viaLedger({ type: 'keys.invited', principal: AGENT, by: ADMIN, tid: 'a'.repeat(32), admin: false, iat: T0, exp: T0 + 60_000, keys: keys(), natsUser: 'UBOOT' })).kind).toBe('applied');
  expect(book.apply(viaLedger({ type: 'keys.enrolled', principal: AGENT, by: AGENT, tid: 'a'.repeat(32), keys: v1, at: T0 + 1, natsUser: 'UAGENTV1' })).kind).toBe('applied');
  return { book, v1 };
}

describe('the key book (state rebuilt from key facts)', () => {
  it('enrolls a principal once per token: a used, unknown, expired or misdirected token is refused', () => {
    const { book } = bookWithEnrolledAgent();
    // Version 1 is the token's bootstrap identity, revoked by the enrolment; the agent's own keys are version 2.
    expect(book.active(AGENT)?.version).toBe(2);
    expect(book.key(AGENT)?.versions[0]).toMatchObject({ state: 'revoked', revocation: { reason: 'superseded' } });
    expect(book.usedBy('a'.repeat(32))).toBe(AGENT);
    const again = book.apply(viaLedger({ type: 'keys.enrolled', principal: AGENT, by: AGENT, tid: 'a'.repeat(32), keys: keys(), at: T0 + 2, natsUser: 'UX' }));
    expect(again).toMatchObject({ kind: 'refused', code: 'E_TOKEN_USED' });
    expect(book.apply(viaLedger({ type: 'keys.enrolled', principal: AGENT, by: AGENT, tid: 'b'.repeat(32), keys: keys(), at: T0, natsUser: 'UX' }))).toMatchObject({ code: 'E_TOKEN_UNKNOWN' });
    const other = 'agent.00000000-0000-4000-8000-000000000001';
    book.apply(viaLedger({ type: 'keys.invited', principal: other, by: ADMIN, tid: 'c'.repeat(32), admin: false, iat: T0, exp: T0 + 10, keys: keys(), natsUser: 'UBOOT2' }));
    expect(book.apply(viaLedger({ type: 'keys.enrolled', principal: other, by: other, tid: 'c'.repeat(32), keys: keys(), at: T0 + 10, natsUser: 'UX' }))).toMatchObject({ code: 'E_TOKEN_EXPIRED' });
    expect(book.apply(viaLedger({ type: 'keys.enrolled', principal: other, by: other, tid: 'a'.repeat(32), keys: keys(), at: T0, natsUser: 'UX' }))).toMatchObject({ code: 'E_TOKEN_PRINCIPAL' });
    expect(book.key(other)?.versions.length).toBe(1);
    expect(book.expiredInvites(T0 + 10).map((i) => i.principal)).toEqual([other]);
  });

  it('keeps a revoked version refused: a later fact cannot bring it back, and an old entry does not match', () => {
    const { book, v1 } = bookWithEnrolledAgent();
    const v2 = keys();
    book.apply(viaLedger({ type: 'keys.rotated', principal: AGENT, by: ADMIN, version: 3, keys: v2, at: T0 + 5, trigger: 'on_demand', natsUser: 'UAGENTV2' }));
    expect(book.accepts(AGENT, 2, v1.ed25519, v1.x25519)).toBe(true);
    book.apply(viaLedger({ type: 'keys.revoked', principal: AGENT, by: ADMIN, version: 3, reason: 'key_compromise', at: T0 + 6 }));
    expect(book.accepts(AGENT, 3, v2.ed25519, v2.x25519)).toBe(false);
    // The older version 2 (the "old directory entry put back") is below the minimum now.
    expect(book.accepts(AGENT, 2, v1.ed25519, v1.x25519)).toBe(false);
    expect(book.apply(viaLedger({ type: 'keys.enabled', principal: AGENT, by: ADMIN, version: 3 })).kind).toBe('refused');
    expect(book.apply(viaLedger({ type: 'keys.min_version_raised', principal: AGENT, by: ADMIN, min: 1 })).kind).toBe('refused');
    expect(book.revoked().map((r) => [r.version, r.natsUser])).toEqual([
      [1, 'UBOOT'],
      [2, 'UAGENTV1'],
      [3, 'UAGENTV2'],
    ]);
  });

  it('a rotation on a compromise signal raises the minimum at once', () => {
    const { book, v1 } = bookWithEnrolledAgent();
    const v2 = keys();
    book.apply(viaLedger({ type: 'keys.rotated', principal: AGENT, by: 'svc.incident-response', version: 3, keys: v2, at: T0 + 5, trigger: 'compromise', natsUser: 'UAGENTV2' }));
    expect(book.key(AGENT)?.minVerifyVersion).toBe(3);
    expect(book.accepts(AGENT, 2, v1.ed25519, v1.x25519)).toBe(false);
    expect(book.accepts(AGENT, 3, v2.ed25519, v2.x25519)).toBe(true);
  });

  it('a rotation request is outstanding until a newer version is active; a duplicate is refused, an escalation to compromise is not', () => {
    const { book } = bookWithEnrolledAgent();
    const asked = (reason: 'on_demand' | 'compromise', at: number, version = 2) => book.apply(viaLedger({ type: 'keys.rotation_requested', principal: AGENT, by: ADMIN, version, reason, at }));
    expect(book.rotationRequest(AGENT)).toBeUndefined();
    expect(asked('on_demand', T0 + 2).kind).toBe('applied');
    expect(book.rotationRequest(AGENT)).toEqual({ version: 2, reason: 'on_demand', at: T0 + 2, by: ADMIN });
    expect(asked('on_demand', T0 + 3)).toMatchObject({ kind: 'refused', code: 'E_KEY_DUPLICATE' });
    // Asked of a version that is not the active one (a stale request racing a rotation).
    expect(asked('compromise', T0 + 3, 1)).toMatchObject({ kind: 'refused', code: 'E_KEY_TRANSITION' });
    expect(asked('compromise', T0 + 4).kind).toBe('applied');
    expect(book.rotationRequest(AGENT)?.reason).toBe('compromise');
    expect(asked('on_demand', T0 + 5)).toMatchObject({ kind: 'refused', code: 'E_KEY_DUPLICATE' });
    // Nothing to raise before the holder rotated: the old version is the only one it has.
    expect(book.compromiseRaiseDue(AGENT)).toBeUndefined();
    book.apply(viaLedger({ type: 'keys.rotated', principal: AGENT, by: AGENT, version: 3, keys: keys(), at: T0 + 6, trigger: 'on_demand', natsUser: 'UAGENTV3' }));
    expect(book.rotationRequest(AGENT)).toBeUndefined();
    // The compromised version 2 is verify-only after the routine rotation, until the minimum passes it.
    expect(book.compromiseRaiseDue(AGENT)).toBe(3);
    // A later on_demand request (for version 3) does not hide the compromise still to be acted on.
    expect(asked('on_demand', T0 + 7, 3).kind).toBe('applied');
    expect(book.compromiseRaiseDue(AGENT)).toBe(3);
    book.apply(viaLedger({ type: 'keys.min_version_raised', principal: AGENT, by: 'svc.key-manager', min: 3 }));
    expect(book.compromiseRaiseDue(AGENT)).toBeUndefined();
    expect(book.rotationRequest(AGENT)?.version).toBe(3);
  });

  it('refuses a rotation request for nobody, for a principal without an active version, and for a bootstrap identity', () => {
    const book = new KeyBook();
    expect(book.apply(viaLedger({ type: 'keys.rotation_requested', principal: AGENT, by: ADMIN, version: 1, reason: 'on_demand', at: T0 }))).toMatchObject({ code: 'E_KEY_UNKNOWN' });
    book.apply(viaLedger({ type: 'keys.invited', principal: AGENT, by: ADMIN, tid: 'd'.repeat(32), admin: false, iat: T0, exp: T0 + 60_000, keys: keys(), natsUser: 'UBOOT' }));
    expect(book.apply(viaLedger({ type: 'keys.rotation_requested', principal: AGENT, by: ADMIN, version: 1, reason: 'on_demand', at: T0 }))).toMatchObject({ code: 'E_KEY_TRANSITION' });
    const { book: enrolled } = bookWithEnrolledAgent();
    enrolled.apply(viaLedger({ type: 'keys.revoked', principal: AGENT, by: ADMIN, version: 2, reason: 'key_compromise', at: T0 + 2 }));
    expect(enrolled.apply(viaLedger({ type: 'keys.rotation_requested', principal: AGENT, by: ADMIN, version: 2, reason: 'compromise', at: T0 + 3 }))).toMatchObject({ code: 'E_KEY_TRANSITION' });
  });

  it('refuses a rotation that skips or repeats a version number, and facts about nobody', () => {
    const { book } = bookWithEnrolledAgent();
    expect(book.apply(viaLedger({ type: 'keys.rotated', principal: AGENT, by: ADMIN, version: 4, keys: keys(), at: T0, trigger: 'on_demand', natsUser: null }))).toMatchObject({ code: 'E_KEY_TRANSITION' });
    expect(book.apply(viaLedger({ type: 'keys.revoked', principal: 'analyst.nobody', by: ADMIN, version: 1, reason: 'superseded', at: T0 }))).toMatchObject({ code: 'E_KEY_UNKNOWN' });
    expect(book.apply(viaLedger({ type: 'keys.generated', principal: AGENT, by: ADMIN, keys: keys(), at: T0, natsUser: null }))).toMatchObject({ code: 'E_KEY_EXISTS' });
  });

  it('check() runs the rules without changing the state', () => {
    const { book } = bookWithEnrolledAgent();
    const before = book.applied;
    expect(book.check({ type: 'keys.disabled', principal: AGENT, by: ADMIN, version: 2 })?.versions[1]?.state).toBe('disabled');
    expect(book.key(AGENT)?.versions[1]?.state).toBe('active');
    expect(book.applied).toBe(before);
  });
});

describe('key facts on the wire', () => {
  it('decode strictly: extra or missing fields, wrong types, a principal that is not the agent_id', () => {
    const base = { principal: AGENT, by: ADMIN, version: 1, reason: 'superseded', at: T0 };
    expect(typeof parseFact('keys.revoked', AGENT, base)).toBe('object');
    expect(parseFact('keys.revoked', AGENT, { ...base, extra: 1 })).toMatch(/fields/);
    expect(parseFact('keys.revoked', AGENT, { ...base, reason: 'bored' })).toMatch(/revocation reason/);
    expect(parseFact('keys.revoked', AGENT, { ...base, version: '1' })).toMatch(/version/);
    expect(parseFact('keys.revoked', 'agent.00000000-0000-4000-8000-000000000001', base)).toMatch(/agent_id/);
    expect(parseFact('policy.updated', AGENT, base)).toMatch(/not a key fact/);
    expect(parseFact('keys.rotated', AGENT, { principal: AGENT, by: ADMIN, version: 2, ...keys(), at: T0, trigger: 'whim', natsUser: null })).toMatch(/trigger/);
    const request = { principal: AGENT, by: ADMIN, version: 2, reason: 'compromise', at: T0 };
    expect(parseFact('keys.rotation_requested', AGENT, request)).toMatchObject({ type: 'keys.rotation_requested', reason: 'compromise' });
    expect(parseFact('keys.rotation_requested', AGENT, { ...request, reason: 'interval' })).toMatch(/reason is not one of on_demand, compromise/);
    expect(parseFact('keys.rotation_requested', AGENT, { ...request, trigger: 'x' })).toMatch(/fields/);
  });
});
