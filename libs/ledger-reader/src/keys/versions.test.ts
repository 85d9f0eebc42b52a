import { describe, expect, it } from 'vitest';
import { KeyLifecycleError } from './errors.js';
import {
  activeVersion,
  cancelDeletion,
  canVerify,
  destroyVersion,
  disableVersion,
  enableVersion,
  generateKey,
  isFinallyRefused,
  KEY_STATES,
  raiseMinVerifyVersion,
  revokeVersion,
  rotateKey,
  rotateAfter,
  rotationDue,
  scheduleDeletion,
  type KeyState,
  type PrincipalKey,
  type VersionKeys,
} from './versions.js';

const DAY = 24 * 60 * 60 * 1000;
let counter = 0;
/** Distinct, well-formed public keys per call. */
function keys(): VersionKeys {
  counter++;
  const b = (tag: number) => Buffer.alloc(32, 0).fill(tag, 0, 1).fill(counter & 0xff, 1, 2).fill(counter >> 8, 2, 3).toString('base64');
  return { ed25519: b(1), x25519: b(2) };
}

const ID = 'agent.3f2a6c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f';
const T0 = 1_800_000_000_000;

/** A key of two versions whose version 1 is in `state` (version 2 active), or a one-version key for 'active'. */
function withV1In(state: KeyState): PrincipalKey {
  const one = generateKey(ID, keys(), T0);
  if (state === 'active') return one;
  const two = rotateKey(one, keys(), T0 + 1);
  switch (state) {
    case 'verify_only':
      return two;
    case 'disabled':
      return disableVersion(two, 1);
    case 'revoked':
      // Revoking v1 raises the minimum to 2, which leaves v2 verifying.
      return revokeVersion(two, 1, 'superseded', T0 + 2);
    case 'pending_deletion':
      return scheduleDeletion(two, 1, 7, T0 + 2);
    case 'deleted':
      return destroyVersion(scheduleDeletion(two, 1, 7, T0 + 2), 1, T0 + 2 + 7 * DAY);
    default: {
      const never: never = state;
      throw new Error(String(never));
    }
  }
}

type Transition = 'disable' | 'enable' | 'revoke' | 'schedule' | 'cancel' | 'destroy';
const TRANSITIONS: Record<Transition, (k: PrincipalKey) => PrincipalKey> = {
  disable: (k) => disableVersion(k, 1),
  enable: (k) => enableVersion(k, 1),
  revoke: (k) => revokeVersion(k, 1, 'key_compromise', T0 + 10),
  schedule: (k) => scheduleDeletion(k, 1, 10, T0 + 10),
  cancel: (k) => cancelDeletion(k, 1),
  destroy: (k) => destroyVersion(k, 1, T0 + 40 * DAY),
};

/** What version 1 becomes (its new state), or 'refused'. The model's whole transition table. */
const EXPECTED: Record<KeyState, Record<Transition, KeyState | 'refused'>> = {
  active: { disable: 'disabled', enable: 'refused', revoke: 'revoked', schedule: 'refused', cancel: 'refused', destroy: 'refused' },
  verify_only: { disable: 'disabled', enable: 'refused', revoke: 'revoked', schedule: 'pending_deletion', cancel: 'refused', destroy: 'refused' },
  disabled: { disable: 'refused', enable: 'verify_only', revoke: 'revoked', schedule: 'pending_deletion', cancel: 'refused', destroy: 'refused' },
  revoked: { disable: 'refused', enable: 'refused', revoke: 'refused', schedule: 'pending_deletion', cancel: 'refused', destroy: 'refused' },
  pending_deletion: { disable: 'refused', enable: 'refused', revoke: 'revoked', schedule: 'refused', cancel: 'verify_only', destroy: 'deleted' },
  deleted: { disable: 'refused', enable: 'refused', revoke: 'refused', schedule: 'refused', cancel: 'refused', destroy: 'refused' },
};

describe('key versions: the transition table', () => {
  for (const state of KEY_STATES) {
    for (const [name, apply] of Object.entries(TRANSITIONS) as [Transition, (k: PrincipalKey) => PrincipalKey][]) {
      const expected = EXPECTED[state][name];
      it(`${state} --${name}--> ${expected}`, () => {
        const before = withV1In(state);
        expect(before.versions[0]!.state).toBe(state);
        const snapshot = JSON.stringify(before);
        if (expected === 'refused') {
          expect(() => apply(before)).toThrow(KeyLifecycleError);
        } else {
          expect(apply(before).versions[0]!.state).toBe(expected);
        }
        // Immutable: the input is never changed, refused or not.
        expect(JSON.stringify(before)).toBe(snapshot);
      });
    }
  }
});

describe('key versions: rotation', () => {
  it('makes a new active version and leaves the previous one verify-only (old signatures still verify)', () => {
    const k = rotateKey(generateKey(ID, keys(), T0), keys(), T0 + 5);
    expect(k.versions.map((v) => v.state)).toEqual(['verify_only', 'active']);
    expect(activeVersion(k)?.version).toBe(2);
    expect(canVerify(k, 1)).toBe(true);
    expect(canVerify(k, 2)).toBe(true);
    expect(canVerify(k, 3)).toBe(false);
  });

  it('refuses a rotation to public keys an earlier version had', () => {
    const first = keys();
    const k = rotateKey(generateKey(ID, first, T0), keys(), T0);
    expect(() => rotateKey(k, first, T0)).toThrow(/earlier version/);
    expect(() => rotateKey(k, { ed25519: keys().ed25519, x25519: first.x25519 }, T0)).toThrow(/earlier version/);
  });

  it('refuses malformed key material and times', () => {
    expect(() => generateKey(ID, { ed25519: 'AAAA', x25519: keys().x25519 }, T0)).toThrow(/32-byte/);
    expect(() => generateKey(ID, keys(), -1)).toThrow(/Unix millisecond/);
    expect(() => generateKey(ID, keys(), 1.5)).toThrow(/Unix millisecond/);
  });

  it('a version disabled while active comes back verify-only once a newer version exists', () => {
    const disabled = disableVersion(generateKey(ID, keys(), T0), 1);
    expect(activeVersion(disabled)).toBeUndefined();
    expect(enableVersion(disabled, 1).versions[0]!.state).toBe('active');
    const rotated = rotateKey(disabled, keys(), T0 + 1);
    expect(enableVersion(rotated, 1).versions.map((v) => v.state)).toEqual(['verify_only', 'active']);
  });

  it('is due once the active version is older than the interval (default 90 days)', () => {
    const k = generateKey(ID, keys(), T0);
    expect(rotationDue(k, 90, T0 + 89 * DAY)).toBe(false);
    expect(rotationDue(k, 90, T0 + 90 * DAY)).toBe(true);
    expect(rotationDue(disableVersion(k, 1), 90, T0 + 365 * DAY)).toBe(false);
  });

  it("rotateAfter: the active version's creation plus the interval; the new version after a rotation; none without an active version", () => {
    const k = generateKey(ID, keys(), T0);
    expect(rotateAfter(k, 5000)).toBe(T0 + 5000);
    expect(rotateAfter(rotateKey(k, keys(), T0 + 7000), 5000)).toBe(T0 + 12_000);
    expect(rotateAfter(disableVersion(k, 1), 5000)).toBeUndefined();
  });
});

describe('key versions: revocation and the minimum verify version', () => {
  it('revoking a version raises the minimum past it: every older version stops verifying', () => {
    let k = generateKey(ID, keys(), T0);
    k = rotateKey(k, keys(), T0 + 1);
    k = rotateKey(k, keys(), T0 + 2);
    const r = revokeVersion(k, 2, 'key_compromise', T0 + 3);
    expect(r.minVerifyVersion).toBe(3);
    expect(r.versions[1]!.revocation).toEqual({ reason: 'key_compromise', at: T0 + 3 });
    expect([1, 2, 3].map((v) => canVerify(r, v))).toEqual([false, false, true]);
    expect(isFinallyRefused(r, 1)).toBe(true);
    expect(activeVersion(r)?.version).toBe(3);
  });

  it('revoking the active version leaves no usable version until a rotation', () => {
    const r = revokeVersion(generateKey(ID, keys(), T0), 1, 'key_compromise', T0 + 1);
    expect(activeVersion(r)).toBeUndefined();
    expect(r.minVerifyVersion).toBe(2);
    const next = rotateKey(r, keys(), T0 + 2);
    expect(activeVersion(next)?.version).toBe(2);
    expect(canVerify(next, 1)).toBe(false);
  });

  it('a revocation is never undone: not by enable, cancel, disable, nor a second revoke with another reason', () => {
    const r = withV1In('revoked');
    expect(() => enableVersion(r, 1)).toThrow(KeyLifecycleError);
    expect(() => disableVersion(r, 1)).toThrow(KeyLifecycleError);
    expect(() => revokeVersion(r, 1, 'superseded', T0 + 9)).toThrow(/already revoked/);
    const back = cancelDeletion(scheduleDeletion(r, 1, 7, T0 + 5), 1);
    expect(back.versions[0]!.state).toBe('revoked');
    expect(back.versions[0]!.revocation?.reason).toBe('superseded');
    expect(canVerify(back, 1)).toBe(false);
  });

  it('a version below the minimum cannot be enabled', () => {
    let k = rotateKey(generateKey(ID, keys(), T0), keys(), T0 + 1);
    k = disableVersion(k, 1);
    k = raiseMinVerifyVersion(k, 2);
    expect(() => enableVersion(k, 1)).toThrow(/below the minimum/);
  });

  it('the minimum only rises, and at most to latest + 1', () => {
    const k = raiseMinVerifyVersion(rotateKey(generateKey(ID, keys(), T0), keys(), T0 + 1), 2);
    expect(() => raiseMinVerifyVersion(k, 1)).toThrow(/never goes down/);
    expect(() => raiseMinVerifyVersion(k, 4)).toThrow(/between/);
    expect(raiseMinVerifyVersion(k, 3).minVerifyVersion).toBe(3);
  });

  it('refuses a reason that is not one of the four', () => {
    expect(() => revokeVersion(generateKey(ID, keys(), T0), 1, 'because' as never, T0)).toThrow(/not a revocation reason/);
  });

  it('a revoked pending deletion is revoked, and its deletion schedule is dropped', () => {
    const r = revokeVersion(withV1In('pending_deletion'), 1, 'privilege_withdrawn', T0 + 3);
    expect(r.versions[0]!.state).toBe('revoked');
    expect(r.versions[0]!.deleteAfter).toBeUndefined();
  });
});

describe('key versions: deletion', () => {
  it('takes a window of 7 to 30 days', () => {
    const k = withV1In('verify_only');
    expect(() => scheduleDeletion(k, 1, 6, T0)).toThrow(/7 to 30 days/);
    expect(() => scheduleDeletion(k, 1, 31, T0)).toThrow(/7 to 30 days/);
    expect(scheduleDeletion(k, 1, 30, T0).versions[0]!.deleteAfter).toBe(T0 + 30 * DAY);
  });

  it('never schedules the active version (rotate first), nor one disabled while active', () => {
    expect(() => scheduleDeletion(generateKey(ID, keys(), T0), 1, 7, T0)).toThrow(/rotate first/);
    expect(() => scheduleDeletion(disableVersion(generateKey(ID, keys(), T0), 1), 1, 7, T0)).toThrow(/rotate first/);
  });

  it('destroys only after the window, and a cancelled disabled version is disabled again', () => {
    const p = scheduleDeletion(withV1In('disabled'), 1, 7, T0);
    expect(() => destroyVersion(p, 1, T0 + 7 * DAY - 1)).toThrow(/window ends/);
    expect(destroyVersion(p, 1, T0 + 7 * DAY).versions[0]!.state).toBe('deleted');
    const back = cancelDeletion(p, 1);
    expect(back.versions[0]!.state).toBe('disabled');
    expect(enableVersion(back, 1).versions[0]!.state).toBe('verify_only');
  });

  it('a pending deletion does not verify', () => {
    expect(canVerify(withV1In('pending_deletion'), 1)).toBe(false);
    expect(canVerify(withV1In('disabled'), 1)).toBe(false);
    expect(isFinallyRefused(withV1In('disabled'), 1)).toBe(false);
    expect(isFinallyRefused(withV1In('deleted'), 1)).toBe(true);
  });

  it('names an unknown version', () => {
    expect(() => disableVersion(generateKey(ID, keys(), T0), 2)).toThrow(/has no key version 2/);
    expect(() => disableVersion(generateKey(ID, keys(), T0), Number.NaN)).toThrow(/has no key version/);
  });
});
