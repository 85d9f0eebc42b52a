import { describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import type { Directory, DirectoryEntry } from '@bulwark/envelope';
import type { KeyView, KeyVersionView } from './keys.js';
import { settleRotation, type StagedRotation } from './rotation-settle.js';

const provider = defaultCryptoProvider();
const ID = 'svc.policy';
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const staged: StagedRotation = { version: 3, ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair(), natsRaw: new Uint8Array(32) };
const other = { ed25519: provider.ed25519.generateKeyPair().publicKey, x25519: provider.x25519.generateKeyPair().publicKey };

const entry = (version: number, keys: { ed25519: Uint8Array; x25519: Uint8Array }): DirectoryEntry => ({ id: ID, ed25519PublicKey: keys.ed25519, x25519PublicKey: keys.x25519, keyVersion: version, notBefore: 0, notAfter: Date.now() + 3_600_000, revoked: false });
const dir = (current: () => DirectoryEntry | undefined): Directory => ({ lookup: (id) => (id === ID ? current() : undefined) }) as Directory;
const version = (v: number, keys: { ed25519: Uint8Array; x25519: Uint8Array }): KeyVersionView => ({ version: v, state: 'active', verifies: true, created: '', ed25519: b64(keys.ed25519), x25519: b64(keys.x25519), revocation: null, deleteAfter: null });
const view = (...versions: KeyVersionView[]): KeyView => ({ principal: ID, minVerifyVersion: 1, activeVersion: versions.length, rotateAfter: null, rotationDue: false, rotationOverdue: false, rotationRequested: null, versions });
const mine = { ed25519: staged.ed25519.publicKey, x25519: staged.x25519.publicKey };
const v1 = version(1, other);
const v2 = version(2, other);
const never = async (): Promise<KeyView> => {
  throw new Error('the key manager was asked although the directory had settled it');
};

describe('settling a staged rotation with the key manager', () => {
  it('adopts when the directory serves the staged version with exactly the staged keys (the reply was lost)', async () => {
    const s = await settleRotation({ principal: ID, staged, directory: dir(() => entry(3, mine)), keyView: never });
    expect(s.kind).toBe('adopt');
  });

  it('reports a conflict, never adopts, when the directory serves the staged version with other keys, or a later version', async () => {
    for (const e of [entry(3, other), entry(3, { ed25519: mine.ed25519, x25519: other.x25519 }), entry(4, mine)]) {
      const s = await settleRotation({ principal: ID, staged, directory: dir(() => e), keyView: never });
      expect(s.kind).toBe('conflict');
    }
  });

  it('sends again when the key manager holds no such version (or the principal is not in its book)', async () => {
    expect((await settleRotation({ principal: ID, staged, directory: dir(() => entry(2, other)), keyView: async () => view(v1, v2) })).kind).toBe('absent');
    expect((await settleRotation({ principal: ID, staged, directory: dir(() => entry(1, other)), keyView: async () => undefined })).kind).toBe('absent');
  });

  it('reports a conflict when the key manager holds the version with other keys', async () => {
    const s = await settleRotation({ principal: ID, staged, directory: dir(() => entry(2, other)), keyView: async () => view(v1, v2, version(3, other)) });
    expect(s).toMatchObject({ kind: 'conflict', reason: expect.stringMatching(/key manager's version 3 carries other keys/) });
  });

  it('adopts a version the key manager holds with the staged keys only once the root-signed entry is served, else stays unsettled', async () => {
    let served = entry(2, other);
    setTimeout(() => (served = entry(3, mine)), 100);
    const s = await settleRotation({ principal: ID, staged, directory: dir(() => served), keyView: async () => view(v1, v2, version(3, mine)), entryWaitMs: 2000 });
    expect(s.kind).toBe('adopt');
    const stuck = settleRotation({ principal: ID, staged, directory: dir(() => entry(2, other)), keyView: async () => view(v1, v2, version(3, mine)), entryWaitMs: 100 });
    await expect(stuck).rejects.toMatchObject({ code: 'E_ROTATION_UNSETTLED' });
  });

  it('leaves it staged (throws) when the key manager cannot be asked', async () => {
    const s = settleRotation({ principal: ID, staged, directory: dir(() => entry(2, other)), keyView: async () => Promise.reject(new Error('E_BUS_TIMEOUT')) });
    await expect(s).rejects.toThrow('E_BUS_TIMEOUT');
  });
});
