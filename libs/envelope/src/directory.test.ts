import { describe, expect, it } from 'vitest';
import {
  TrustedDirectory,
  decodeDirectoryEntry,
  decodeSignedDirectoryEntry,
  encodeDirectoryEntry,
  encodeSignedDirectoryEntry,
  signDirectoryEntry,
  verifyDirectoryEntry,
} from './directory.js';
import { entryFor, principal, providers, ROOT_SEED, T0, TestClock } from './test-support/fixtures.js';

describe.each(providers.map((p) => [p.name, p] as const))('directory entries (%s provider)', (_name, provider) => {
  const root = provider.ed25519.publicKey(ROOT_SEED);
  const alice = principal(provider, 'analyst.alice', 1);
  const entry = entryFor(alice);

  it('encodes canonically and decodes back to the same entry', () => {
    const bytes = encodeDirectoryEntry(entry);
    const decoded = decodeDirectoryEntry(bytes);
    expect(decoded).toEqual(entry);
    expect(encodeDirectoryEntry(decoded)).toEqual(bytes);
    const signed = signDirectoryEntry(provider, ROOT_SEED, entry);
    expect(decodeSignedDirectoryEntry(encodeSignedDirectoryEntry(signed))).toEqual(signed);
  });

  it('refuses trailing bytes, bad flags and bad lengths when decoding', () => {
    const bytes = encodeDirectoryEntry(entry);
    expect(() => decodeDirectoryEntry(Uint8Array.from([...bytes, 0]))).toThrow(/does not fit/);
    const flag = bytes.slice();
    flag[flag.length - 1] = 2;
    expect(() => decodeDirectoryEntry(flag)).toThrow(/revoked flag/);
    expect(() => decodeDirectoryEntry(bytes.subarray(0, 10))).toThrow();
  });

  it('accepts an entry signed by the pinned root and valid now', () => {
    const verdict = verifyDirectoryEntry(provider, root, signDirectoryEntry(provider, ROOT_SEED, entry), T0);
    expect(verdict.ok).toBe(true);
  });

  it('refuses an unsigned entry and one signed by another key', () => {
    expect(verifyDirectoryEntry(provider, root, { entry, signature: new Uint8Array(64) }, T0)).toMatchObject({ ok: false, reason: 'E_ENTRY_SIGNATURE' });
    const other = signDirectoryEntry(provider, new Uint8Array(32).fill(8), entry);
    expect(verifyDirectoryEntry(provider, root, other, T0)).toMatchObject({ ok: false, reason: 'E_ENTRY_SIGNATURE' });
  });

  it('refuses an entry altered after signing, field by field', () => {
    const signed = signDirectoryEntry(provider, ROOT_SEED, entry);
    const x = entry.x25519PublicKey.slice();
    x[0]! ^= 1;
    for (const altered of [
      { ...entry, id: 'analyst.mallory' },
      { ...entry, x25519PublicKey: x },
      { ...entry, keyVersion: 2 },
      { ...entry, notAfter: entry.notAfter + 1 },
      { ...entry, notBefore: entry.notBefore - 1 },
      { ...entry, revoked: true },
    ]) {
      expect(verifyDirectoryEntry(provider, root, { entry: altered, signature: signed.signature }, T0)).toMatchObject({ ok: false, reason: 'E_ENTRY_SIGNATURE' });
    }
  });

  it('refuses entries not yet valid, expired or revoked', () => {
    const check = (e: typeof entry, now: number) => verifyDirectoryEntry(provider, root, signDirectoryEntry(provider, ROOT_SEED, e), now);
    expect(check(entry, entry.notBefore - 1)).toMatchObject({ ok: false, reason: 'E_ENTRY_NOT_YET_VALID' });
    expect(check(entry, entry.notAfter)).toMatchObject({ ok: false, reason: 'E_ENTRY_EXPIRED' });
    expect(check({ ...entry, revoked: true }, T0)).toMatchObject({ ok: false, reason: 'E_ENTRY_REVOKED' });
  });

  it('serves only valid entries, and revocation takes effect at once', () => {
    const clock = new TestClock();
    const directory = new TrustedDirectory({ provider, rootPublicKey: root, clock: clock.read });
    expect(directory.put(encodeSignedDirectoryEntry(signDirectoryEntry(provider, ROOT_SEED, entry))).ok).toBe(true);
    expect(directory.lookup('analyst.alice')?.x25519PublicKey).toEqual(alice.x25519.publicKey);
    expect(directory.lookup('analyst.bob')).toBeUndefined();
    expect(directory.put(signDirectoryEntry(provider, ROOT_SEED, { ...entry, revoked: true })).ok).toBe(true);
    expect(directory.lookup('analyst.alice')).toBeUndefined();
    expect(directory.explain('analyst.alice')).toMatch(/revoked/);
    // Un-revoking the same version, or going back a version, is a rollback.
    expect(directory.put(signDirectoryEntry(provider, ROOT_SEED, entry))).toMatchObject({ ok: false, reason: 'E_ENTRY_ROLLBACK' });
    const rotated = { ...entryFor(principal(provider, 'analyst.alice', 2)), keyVersion: 2 };
    expect(directory.put(signDirectoryEntry(provider, ROOT_SEED, rotated)).ok).toBe(true);
    expect(directory.lookup('analyst.alice')?.keyVersion).toBe(2);
    expect(directory.put(signDirectoryEntry(provider, ROOT_SEED, { ...entry, revoked: false }))).toMatchObject({ ok: false, reason: 'E_ENTRY_ROLLBACK' });
    clock.now = rotated.notAfter;
    expect(directory.lookup('analyst.alice')).toBeUndefined();
  });

  it('refuses unsigned and malformed entries on the way in', () => {
    const directory = new TrustedDirectory({ provider, rootPublicKey: root });
    expect(directory.put({ entry, signature: new Uint8Array(64) })).toMatchObject({ ok: false, reason: 'E_ENTRY_SIGNATURE' });
    expect(directory.put(new Uint8Array(5))).toMatchObject({ ok: false, reason: 'E_ENTRY_SHAPE' });
    const wire = encodeSignedDirectoryEntry(signDirectoryEntry(provider, ROOT_SEED, entry));
    wire[wire.length - 1]! ^= 0x80;
    expect(directory.put(wire)).toMatchObject({ ok: false, reason: 'E_ENTRY_SIGNATURE' });
    expect(directory.lookup('analyst.alice')).toBeUndefined();
  });
});
