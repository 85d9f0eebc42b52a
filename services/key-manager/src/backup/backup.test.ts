import { createNodeCryptoProvider } from '@bulwark/crypto';
import { describe, expect, it } from 'vitest';
import { backupHash, createBackup, restoreBackup, type BackupManifest } from './backup.js';

const provider = createNodeCryptoProvider();
const root = provider.ed25519.generateKeyPair();
const rootSigner = { sign: (message: Uint8Array) => provider.ed25519.sign(root.secretKey, message) };
const holders = ['analyst.a', 'analyst.b', 'analyst.c'].map((id) => ({ id, keys: provider.x25519.generateKeyPair() }));
const files = [
  { name: 'root.ed25519.v1.json', bytes: new TextEncoder().encode('{"wrapped":"root"}') },
  { name: 'svc.policy.x25519.v1.json', bytes: new TextEncoder().encode('{"wrapped":"x"}') },
];

async function backup(): Promise<BackupManifest> {
  return createBackup({ provider, files, holders: holders.map((h) => ({ id: h.id, x25519PublicKey: h.keys.publicKey })), threshold: 2, root: rootSigner });
}
const present = (...ids: string[]) => holders.filter((h) => ids.includes(h.id)).map((h) => ({ id: h.id, x25519SecretKey: h.keys.secretKey }));
const code = async (p: Promise<unknown>) => p.then(() => 'restored', (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`);

describe('key store backup (Shamir k of n, shares sealed to recovery holders)', () => {
  it('restores from any k shares, and its hash is stable', async () => {
    const m = await backup();
    expect(await restoreBackup({ provider, manifest: m, rootPublicKey: root.publicKey, holders: present('analyst.a', 'analyst.c') })).toEqual(files);
    expect(await restoreBackup({ provider, manifest: m, rootPublicKey: root.publicKey, holders: present('analyst.b', 'analyst.c', 'analyst.a') })).toEqual(files);
    expect(backupHash(provider, m)).toBe(backupHash(provider, JSON.parse(JSON.stringify(m)) as BackupManifest));
  });

  it('says so with too few shares', async () => {
    expect(await code(restoreBackup({ provider, manifest: await backup(), rootPublicKey: root.publicKey, holders: present('analyst.b') }))).toMatch(/^E_BACKUP_SHARES: .*needs 2 shares, 1 given/);
  });

  it('names the share that was tampered with', async () => {
    const m = await backup();
    const sealed = Buffer.from(m.shares[1]!.sealed, 'base64');
    sealed[3]! ^= 1;
    // The manifest is signed: editing a share breaks the signature first...
    const edited = { ...m, shares: m.shares.map((s, i) => (i === 1 ? { ...s, sealed: sealed.toString('base64') } : s)) };
    expect(await code(restoreBackup({ provider, manifest: edited, rootPublicKey: root.publicKey, holders: present('analyst.a', 'analyst.b') }))).toMatch(/^E_BACKUP_SIGNATURE/);
    // ...and re-signed by the root (a holder's own copy cannot be), the bad share is named.
    const { signature: _s, ...unsigned } = edited;
    const canonical = (v: unknown): string => (Array.isArray(v) ? `[${v.map(canonical).join(',')}]` : v !== null && typeof v === 'object' ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}` : JSON.stringify(v));
    const resigned = { ...edited, signature: Buffer.from(provider.ed25519.sign(root.secretKey, new TextEncoder().encode(canonical(unsigned)))).toString('base64') };
    expect(await code(restoreBackup({ provider, manifest: resigned, rootPublicKey: root.publicKey, holders: present('analyst.a', 'analyst.b') }))).toMatch(/^E_BACKUP_SHARE: restore: share 1 \(holder analyst.b\) does not open/);
  });

  it('names the holder whose key is wrong', async () => {
    const m = await backup();
    const wrong = [{ id: 'analyst.a', x25519SecretKey: holders[0]!.keys.secretKey }, { id: 'analyst.c', x25519SecretKey: provider.x25519.generateKeyPair().secretKey }];
    expect(await code(restoreBackup({ provider, manifest: m, rootPublicKey: root.publicKey, holders: wrong }))).toMatch(/^E_BACKUP_SHARE: restore: share 2 \(holder analyst.c\)/);
  });

  it("refuses another deployment's backup, and an edited payload", async () => {
    const m = await backup();
    expect(await code(restoreBackup({ provider, manifest: m, rootPublicKey: provider.ed25519.generateKeyPair().publicKey, holders: present('analyst.a', 'analyst.b') }))).toMatch(/^E_BACKUP_SIGNATURE/);
    const ct = Buffer.from(m.ciphertext, 'base64');
    ct[0]! ^= 1;
    expect(await code(restoreBackup({ provider, manifest: { ...m, ciphertext: ct.toString('base64') }, rootPublicKey: root.publicKey, holders: present('analyst.a', 'analyst.b') }))).toMatch(/^E_BACKUP_SIGNATURE/);
  });

  it('refuses impossible holder counts', async () => {
    await expect(createBackup({ provider, files, holders: [{ id: 'analyst.a', x25519PublicKey: holders[0]!.keys.publicKey }], threshold: 2, root: rootSigner })).rejects.toThrow(/2-of-1 is not possible/);
  });
});
