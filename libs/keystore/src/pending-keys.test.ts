import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { FileKeyStore, PENDING_DIR } from './file-key-store.js';
import { loadIdentity, ensureIdentity } from './identity.js';
import { SoftwareKek } from './kek.js';
import { pendingRotationSlot, type PendingRotation } from './pending-keys.js';

const provider = defaultCryptoProvider();
const kek = (byte: number) => new SoftwareKek(provider, new Uint8Array(32).fill(byte), 'test');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function store(byte = 1, dir = mkdtempSync(join(tmpdir(), 'pending-keys-'))) {
  dirs.push(dir);
  return FileKeyStore.open({ dir, wrapper: kek(byte), provider });
}

const rotation = (version: number): PendingRotation => ({ version, ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair(), natsRaw: provider.ed25519.generateKeyPair().secretKey });

describe('the pending slot of a file key store', () => {
  it('keeps a rotation staged under the KEK, invisible as an identity until stored, and drops it', async () => {
    const s = await store();
    await ensureIdentity(s, provider, 'svc.policy');
    const slot = pendingRotationSlot(s, 'svc.policy');
    expect(await slot.load()).toBeUndefined();
    expect(readdirSync(s.dir)).not.toContain(PENDING_DIR); // reading does not create the slot
    const staged = rotation(2);
    await slot.stage(staged);
    const loaded = await slot.load();
    expect(loaded?.version).toBe(2);
    expect(loaded?.ed25519.secretKey).toEqual(staged.ed25519.secretKey);
    expect(loaded?.x25519.publicKey).toEqual(staged.x25519.publicKey);
    expect(loaded?.natsRaw).toEqual(staged.natsRaw);
    // Not a version of the principal: the store's list and loadIdentity still see version 1 only.
    expect((await s.list('svc.policy')).map((i) => i.version)).toEqual([1, 1]);
    expect((await loadIdentity(s, 'svc.policy')).version).toBe(1);
    // Wrapped: no secret in clear in the slot's files.
    const files = readdirSync(join(s.dir, PENDING_DIR));
    expect(files).toHaveLength(3);
    const text = files.map((f) => readFileSync(join(s.dir, PENDING_DIR, f), 'utf8')).join('\n');
    expect(text).not.toContain(Buffer.from(staged.ed25519.secretKey).toString('base64'));
    expect(text).not.toContain(Buffer.from(staged.natsRaw).toString('base64'));
    await slot.drop();
    expect(await slot.load()).toBeUndefined();
  });

  it('holds one rotation per principal: staging again replaces the earlier one; another principal keeps its own', async () => {
    const s = await store();
    await pendingRotationSlot(s, 'svc.policy').stage(rotation(2));
    const other = rotation(5);
    await pendingRotationSlot(s, 'agent.6f1d2c3a-1b2c-4d5e-8f90-123456789abc').stage(other);
    const again = rotation(3);
    await pendingRotationSlot(s, 'svc.policy').stage(again);
    expect((await pendingRotationSlot(s, 'svc.policy').load())?.ed25519.publicKey).toEqual(again.ed25519.publicKey);
    expect((await pendingRotationSlot(s, 'agent.6f1d2c3a-1b2c-4d5e-8f90-123456789abc').load())?.version).toBe(5);
  });

  it('does not open under another KEK, and is rewrapped with the store at a KEK rotation', async () => {
    const s = await store(1);
    const staged = rotation(2);
    await pendingRotationSlot(s, 'svc.policy').stage(staged);
    const wrong = await FileKeyStore.open({ dir: s.dir, wrapper: kek(2), provider });
    await expect(pendingRotationSlot(wrong, 'svc.policy').load()).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
    const result = await s.rewrapAll(kek(2));
    expect(result.rewrapped).toBe(3);
    expect((await pendingRotationSlot(wrong, 'svc.policy').load())?.natsRaw).toEqual(staged.natsRaw);
  });
});
