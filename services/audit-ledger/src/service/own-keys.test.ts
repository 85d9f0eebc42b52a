import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { ensureIdentity, FileKeyStore, pendingRotationSlot, SoftwareKek } from '@bulwark/keystore';
import { storeOwnKeys } from './own-keys.js';

const crypto = createCryptoProvider('node');
const LEDGER = 'svc.audit-ledger';
const dirs: string[] = [];

async function store(): Promise<FileKeyStore> {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-own-keys-'));
  dirs.push(dir);
  return FileKeyStore.open({ dir, wrapper: new SoftwareKek(crypto, randomBytes(32), 'test'), provider: crypto });
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the ledger's own signing keys", () => {
  it('starts from its version-1 key and finds a key staged or stored after it opened (read live), never one it does not hold', async () => {
    const s = await store();
    const { identity } = await ensureIdentity(s, crypto, LEDGER);
    const keys = await storeOwnKeys({ crypto, origin: 'o', store: s, principal: LEDGER, pinned: identity.ed25519.publicKey });
    expect(keys.genesis).toEqual(identity.ed25519.publicKey);
    expect(keys.held(identity.ed25519.publicKey)?.publicKey).toEqual(identity.ed25519.publicKey);

    // Staged by its rotation after the ledger opened its keys: found (and then held), as the pending slot holds it.
    const staged = { version: 2, ed25519: crypto.ed25519.generateKeyPair(), x25519: crypto.x25519.generateKeyPair(), natsRaw: crypto.ed25519.generateKeyPair().secretKey };
    expect(keys.held(staged.ed25519.publicKey)).toBeUndefined();
    await pendingRotationSlot(s, LEDGER).stage(staged);
    expect(await keys.find(staged.ed25519.publicKey)).toBe(true);
    expect(keys.held(staged.ed25519.publicKey)?.secretKey).toEqual(staged.ed25519.secretKey);

    // Stored as a version (the rotation kept) and the slot dropped: found too.
    const third = crypto.ed25519.generateKeyPair();
    await s.put({ principal: LEDGER, kind: 'ed25519', version: 3 }, third.secretKey);
    expect(await keys.find(third.publicKey)).toBe(true);

    const stranger = crypto.ed25519.generateKeyPair();
    expect(await keys.find(stranger.publicKey)).toBe(false);
    expect(keys.held(stranger.publicKey)).toBeUndefined();
    // The violation-id secret is the genesis secret: the same whatever the ledger rotated to.
    expect(keys.stableSecret).toEqual(identity.ed25519.secretKey);
  });

  it('holds a key staged before it opened (a rotation the key manager may have committed while it was stopped)', async () => {
    const s = await store();
    await ensureIdentity(s, crypto, LEDGER);
    const staged = { version: 2, ed25519: crypto.ed25519.generateKeyPair(), x25519: crypto.x25519.generateKeyPair(), natsRaw: crypto.ed25519.generateKeyPair().secretKey };
    await pendingRotationSlot(s, LEDGER).stage(staged);
    const keys = await storeOwnKeys({ crypto, origin: 'o', store: s, principal: LEDGER });
    expect(keys.held(staged.ed25519.publicKey)?.publicKey).toEqual(staged.ed25519.publicKey);
  });

  it('refuses a pin that is not its version 1, and a store without version 1', async () => {
    const s = await store();
    await ensureIdentity(s, crypto, LEDGER);
    const other = crypto.ed25519.generateKeyPair().publicKey;
    await expect(storeOwnKeys({ crypto, origin: 'o', store: s, principal: LEDGER, pinned: other })).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/BULWARK_LEDGER_PUBLIC_KEY is not svc\.audit-ledger's version-1 key/) });
    const empty = await store();
    await expect(storeOwnKeys({ crypto, origin: 'o', store: empty, principal: LEDGER })).rejects.toMatchObject({ code: 'E_KEY' });
  });
});
