import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { SoftwareKek } from './kek.js';
import { FileKeyStore } from './file-key-store.js';
import { ensureIdentity, ensureRootKey, loadIdentity, loadRootKey } from './identity.js';
import { formatRootPin, parseRootPin, parseRootPublicKey, writeRootPin } from './root-pin.js';

const provider = createNodeCryptoProvider();
const kek = new SoftwareKek(provider, new Uint8Array(32).fill(3), 'SYMBIONT_KEK');
let dir: string;
let store: FileKeyStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-identity-'));
  store = await FileKeyStore.open({ dir, wrapper: kek, provider });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('identities', () => {
  it('creates an Ed25519 and an X25519 key pair at version 1, once', async () => {
    const first = await ensureIdentity(store, provider, 'svc.policy');
    expect(first.created).toEqual(['ed25519', 'x25519']);
    expect(first.identity.version).toBe(1);
    expect(provider.ed25519.publicKey(first.identity.ed25519.secretKey)).toEqual(first.identity.ed25519.publicKey);
    expect(provider.x25519.publicKey(first.identity.x25519.secretKey)).toEqual(first.identity.x25519.publicKey);
    const again = await ensureIdentity(store, provider, 'svc.policy');
    expect(again.created).toEqual([]);
    expect(again.identity).toEqual(first.identity);
    expect(await loadIdentity(store, 'svc.policy')).toEqual(first.identity);
  });

  it('completes a half-written identity without replacing the key it has', async () => {
    const { identity } = await ensureIdentity(store, provider, 'analyst.ana');
    unlinkSync(join(dir, 'analyst.ana.x25519.v1.json'));
    const repaired = await ensureIdentity(store, provider, 'analyst.ana');
    expect(repaired.created).toEqual(['x25519']);
    expect(repaired.identity.ed25519).toEqual(identity.ed25519);
    expect(repaired.identity.x25519.publicKey).not.toEqual(identity.x25519.publicKey);
  });

  it('creates the identity of a principal whose store holds only its NATS user seed', async () => {
    await store.put({ principal: 'svc.policy', kind: 'nats-user', version: 1 }, provider.ed25519.generateKeyPair().secretKey);
    const { identity, created } = await ensureIdentity(store, provider, 'svc.policy');
    expect(created).toEqual(['ed25519', 'x25519']);
    expect(identity.version).toBe(1);
  });

  it('loads the latest complete version', async () => {
    await ensureIdentity(store, provider, 'svc.policy');
    await store.put({ principal: 'svc.policy', kind: 'ed25519', version: 2 }, provider.ed25519.generateKeyPair().secretKey);
    expect((await loadIdentity(store, 'svc.policy')).version).toBe(1);
    await store.put({ principal: 'svc.policy', kind: 'x25519', version: 2 }, provider.x25519.generateKeyPair().secretKey);
    expect((await loadIdentity(store, 'svc.policy')).version).toBe(2);
  });

  it('rejects a bad principal id and reports a missing identity', async () => {
    await expect(ensureIdentity(store, provider, 'svc.Policy')).rejects.toMatchObject({ code: 'E_PRINCIPAL_ID' });
    await expect(loadIdentity(store, 'svc.policy')).rejects.toMatchObject({ code: 'E_KEY_NOT_FOUND' });
  });

  it('creates the root key once and loads it back', async () => {
    await expect(loadRootKey(store)).rejects.toMatchObject({ code: 'E_KEY_NOT_FOUND' });
    const first = await ensureRootKey(store, provider);
    expect(first.created).toBe(true);
    const again = await ensureRootKey(store, provider);
    expect(again.created).toBe(false);
    expect(again.root.keyPair).toEqual(first.root.keyPair);
  });
});

describe('root.pub', () => {
  it('writes both encodings, labelled, and each parses back to the key', async () => {
    const key = provider.ed25519.generateKeyPair().publicKey;
    const path = await writeRootPin(dir, key);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    const text = readFileSync(path, 'utf8');
    expect(text).toBe(formatRootPin(key));
    const b64 = /^base64: (\S+)$/m.exec(text)?.[1];
    const hex = /^hex: (\S+)$/m.exec(text)?.[1];
    expect(parseRootPublicKey(b64!, 'x')).toEqual(key);
    expect(parseRootPublicKey(hex!, 'x')).toEqual(key);
    expect(parseRootPublicKey(hex!.toUpperCase(), 'x')).toEqual(key);
  });

  it('reads the file back as a whole (as `bulwark policy` does), a bare key too; refuses an empty file and lines naming two keys', async () => {
    const key = provider.ed25519.generateKeyPair().publicKey;
    const other = provider.ed25519.generateKeyPair().publicKey;
    expect(parseRootPin(readFileSync(await writeRootPin(dir, key), 'utf8'), 'root.pub')).toEqual(key);
    expect(parseRootPin(`${Buffer.from(key).toString('hex')}\n`, 'root.pub')).toEqual(key);
    expect(() => parseRootPin('# nothing\n\n', 'root.pub')).toThrow(/^root\.pub: holds no root public key$/);
    const mixed = formatRootPin(key).replace(/^hex: .*$/m, `hex: ${Buffer.from(other).toString('hex')}`);
    expect(() => parseRootPin(mixed, 'root.pub')).toThrow(/^root\.pub: its lines name different keys$/);
    expect(() => parseRootPin('base64: nope\n', 'root.pub')).toThrow(/^root\.pub: not a root public key/);
  });

  it('rejects anything but 32 bytes in hex or base64, naming the setting', () => {
    for (const bad of ['', 'abc', '00'.repeat(31), Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64')]) {
      expect(() => parseRootPublicKey(bad, 'SYMBIONT_ROOT_PUBLIC_KEY')).toThrow(/^SYMBIONT_ROOT_PUBLIC_KEY: not a root public key/);
    }
  });
});
