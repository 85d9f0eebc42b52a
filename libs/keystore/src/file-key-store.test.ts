import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { isBulwarkError } from '@bulwark/errors';
import { SoftwareKek, type KeyWrapper } from './kek.js';
import { FileKeyStore, keyFileName } from './file-key-store.js';
import { WRAPPED_KEY_FORMAT, type KeyRef } from './wrapped-key.js';

const provider = createNodeCryptoProvider();
const kek = new SoftwareKek(provider, new Uint8Array(32).fill(1), 'SYMBIONT_KEK');
const otherKek = new SoftwareKek(provider, new Uint8Array(32).fill(2), 'SYMBIONT_KEK');
let dir: string;

beforeEach(() => {
  dir = join(mkdtempSync(join(tmpdir(), 'bulwark-keystore-')), 'keys');
});
afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

const policyEd: KeyRef = { principal: 'svc.policy', kind: 'ed25519', version: 1 };
const policyX: KeyRef = { principal: 'svc.policy', kind: 'x25519', version: 1 };

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isBulwarkError(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('FileKeyStore', () => {
  it('creates the key directory 0700 and writes each key 0600 in the v1 format', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const secret = provider.ed25519.generateKeyPair();
    const info = await store.put(policyEd, secret.secretKey);
    expect(info.publicKey).toEqual(secret.publicKey);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const path = join(dir, 'svc.policy.ed25519.v1.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['format', 'principal', 'kind', 'version', 'created', 'publicKey', 'nonce', 'ciphertext']);
    expect(json).toMatchObject({ format: WRAPPED_KEY_FORMAT, principal: 'svc.policy', kind: 'ed25519', version: 1 });
    expect(Buffer.from(json.ciphertext as string, 'base64')).toHaveLength(48);
    // The private key's bytes appear nowhere in the file, in any encoding.
    const text = readFileSync(path, 'utf8');
    for (const encoding of ['base64', 'hex', 'base64url'] as const) expect(text).not.toContain(Buffer.from(secret.secretKey).toString(encoding));
    expect(readdirSync(dir)).toEqual(['svc.policy.ed25519.v1.json']);
  });

  it('gets back the exact key, lists public data without unwrapping, and answers has', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const ed = provider.ed25519.generateKeyPair();
    const x = provider.x25519.generateKeyPair();
    await store.put(policyX, x.secretKey);
    await store.put(policyEd, ed.secretKey);
    await store.put({ principal: 'root', kind: 'ed25519', version: 1 }, provider.ed25519.generateKeyPair().secretKey);
    expect((await store.get(policyEd)).secretKey).toEqual(ed.secretKey);
    expect((await store.get(policyX)).secretKey).toEqual(x.secretKey);
    const listedWithOtherKek = await (await FileKeyStore.open({ dir, wrapper: otherKek, provider })).list();
    expect(listedWithOtherKek.map((i) => `${i.principal}/${i.kind}/${i.version}`)).toEqual(['root/ed25519/1', 'svc.policy/ed25519/1', 'svc.policy/x25519/1']);
    expect((await store.list('svc.policy')).map((i) => i.publicKey)).toEqual([ed.publicKey, x.publicKey]);
    expect(await store.has(policyEd)).toBe(true);
    expect(await store.has({ ...policyEd, version: 2 })).toBe(false);
  });

  it('never replaces a stored key', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const first = provider.ed25519.generateKeyPair().secretKey;
    await store.put(policyEd, first);
    const error = await rejection(store.put(policyEd, provider.ed25519.generateKeyPair().secretKey));
    expect(error.code).toBe('E_KEY_EXISTS');
    expect((await store.get(policyEd)).secretKey).toEqual(first);
    expect(readdirSync(dir)).toEqual(['svc.policy.ed25519.v1.json']);
  });

  it('fails with E_KEY_UNWRAP naming the file under a wrong KEK', async () => {
    await (await FileKeyStore.open({ dir, wrapper: kek, provider })).put(policyEd, provider.ed25519.generateKeyPair().secretKey);
    const error = await rejection((await FileKeyStore.open({ dir, wrapper: otherKek, provider })).get(policyEd));
    expect(error.code).toBe('E_KEY_UNWRAP');
    expect(error.message).toContain(join(dir, 'svc.policy.ed25519.v1.json'));
    expect(error.message).not.toContain('\n');
  });

  it('refuses a file moved to another principal even with its fields edited to match', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    await store.put(policyX, provider.x25519.generateKeyPair().secretKey);
    const from = join(dir, keyFileName(policyX));
    const to = join(dir, keyFileName({ ...policyX, principal: 'svc.schemapin' }));
    renameSync(from, to);
    // As moved: the name and the content disagree.
    expect((await rejection(store.get({ ...policyX, principal: 'svc.schemapin' }))).code).toBe('E_KEY_FILE');
    // Content edited to the new name: the AES-GCM associated data no longer matches.
    writeFileSync(to, readFileSync(to, 'utf8').replace('"svc.policy"', '"svc.schemapin"'), { mode: 0o600 });
    expect((await rejection(store.get({ ...policyX, principal: 'svc.schemapin' }))).code).toBe('E_KEY_UNWRAP');
  });

  it('refuses a file whose kind, version or public key was changed', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    await store.put(policyX, provider.x25519.generateKeyPair().secretKey);
    const path = join(dir, keyFileName(policyX));
    const original = readFileSync(path, 'utf8');
    const json = JSON.parse(original) as Record<string, unknown>;

    const asEd = join(dir, keyFileName(policyEd));
    writeFileSync(asEd, JSON.stringify({ ...json, kind: 'ed25519' }), { mode: 0o600 });
    expect((await rejection(store.get(policyEd))).code).toBe('E_KEY_UNWRAP');

    const asV2 = join(dir, keyFileName({ ...policyX, version: 2 }));
    writeFileSync(asV2, JSON.stringify({ ...json, version: 2 }), { mode: 0o600 });
    expect((await rejection(store.get({ ...policyX, version: 2 }))).code).toBe('E_KEY_UNWRAP');

    writeFileSync(path, JSON.stringify({ ...json, publicKey: Buffer.from(provider.x25519.generateKeyPair().publicKey).toString('base64') }), { mode: 0o600 });
    expect((await rejection(store.get(policyX))).code).toBe('E_KEY_UNWRAP');

    const flipped = Buffer.from(json.ciphertext as string, 'base64');
    flipped[0]! ^= 1;
    writeFileSync(path, JSON.stringify({ ...json, ciphertext: flipped.toString('base64') }), { mode: 0o600 });
    expect((await rejection(store.get(policyX))).code).toBe('E_KEY_UNWRAP');
  });

  it('names the file and the field of a malformed key file', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const path = join(dir, keyFileName(policyEd));
    for (const [text, why] of [
      ['{', 'not JSON'],
      ['[]', 'not a JSON object'],
      [JSON.stringify({ format: 'other' }), 'format is not'],
      [JSON.stringify({ format: WRAPPED_KEY_FORMAT, principal: 'svc.policy', kind: 'ed25519', version: 1, created: 'yesterday' }), 'created is not'],
    ] as const) {
      writeFileSync(path, text, { mode: 0o600 });
      const error = await rejection(store.get(policyEd));
      expect(error.code).toBe('E_KEY_FILE');
      expect(error.message).toContain(path);
      expect(error.message).toContain(why);
    }
    await expect(store.list()).rejects.toThrow(/not JSON|format|created/);
  });

  it('reports a missing key as E_KEY_NOT_FOUND', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    expect((await rejection(store.get(policyEd))).code).toBe('E_KEY_NOT_FOUND');
  });

  it('refuses a key directory or key file that group or others can reach', async () => {
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const error = await rejection(FileKeyStore.open({ dir, wrapper: kek, provider }));
    expect(error.code).toBe('E_KEY_MODE');
    expect(error.message).toContain('chmod 700');
    chmodSync(dir, 0o700);
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    await store.put(policyEd, provider.ed25519.generateKeyPair().secretKey);
    chmodSync(join(dir, keyFileName(policyEd)), 0o644);
    expect((await rejection(store.get(policyEd))).code).toBe('E_KEY_MODE');
  });

  it('rejects refs outside the principal syntax before touching the disk', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const secret = provider.ed25519.generateKeyPair().secretKey;
    for (const ref of [
      { principal: '../escape', kind: 'ed25519', version: 1 },
      { principal: 'svc.policy', kind: 'rsa', version: 1 },
      { principal: 'svc.policy', kind: 'ed25519', version: 0 },
      { principal: 'svc.policy', kind: 'ed25519', version: 1.5 },
    ] as KeyRef[]) {
      expect((await rejection(store.put(ref, secret))).code).toBe('E_KEY_REF');
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps NATS nkey seeds as their own kinds: one kind never opens as another', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const seed = provider.ed25519.generateKeyPair();
    const user: KeyRef = { principal: 'svc.policy', kind: 'nats-user', version: 1 };
    const info = await store.put(user, seed.secretKey);
    expect(info.publicKey).toEqual(seed.publicKey);
    expect((await store.get(user)).secretKey).toEqual(seed.secretKey);
    expect((await store.list('svc.policy')).map((k) => k.kind)).toEqual(['nats-user']);
    // A user seed renamed (and re-labelled) as the account's signing key fails its tag.
    const path = join(dir, keyFileName(user));
    const account: KeyRef = { principal: 'svc.policy', kind: 'nats-account', version: 1 };
    const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, keyFileName(account)), JSON.stringify({ ...json, kind: 'nats-account' }), { mode: 0o600 });
    expect((await rejection(store.get(account))).code).toBe('E_KEY_UNWRAP');
  });

  it('leaves no temporary file behind when many keys are written at once', async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const refs = Array.from({ length: 20 }, (_, i): KeyRef => ({ principal: 'svc.policy', kind: 'x25519', version: i + 1 }));
    await Promise.all(refs.map((ref) => store.put(ref, provider.x25519.generateKeyPair().secretKey)));
    // Two writers racing for one ref: exactly one wins.
    const race = await Promise.allSettled([1, 2, 3].map(() => store.put({ ...policyEd, version: 7 }, provider.ed25519.generateKeyPair().secretKey)));
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(await store.list()).toHaveLength(21);
  });
});

describe('FileKeyStore.rewrapAll (KEK rotation)', () => {
  const thirdKek = new SoftwareKek(provider, new Uint8Array(32).fill(3), 'SYMBIONT_KEK_FILE /third');
  const seed = async () => {
    const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
    const ed = provider.ed25519.generateKeyPair().secretKey;
    const x = provider.x25519.generateKeyPair().secretKey;
    await store.put(policyEd, ed);
    await store.put(policyX, x);
    return { store, ed, x };
  };

  it('rewraps every key under the new KEK: the same keys open under it, none under the old one', async () => {
    const { store, ed, x } = await seed();
    const before = readFileSync(join(dir, keyFileName(policyEd)), 'utf8');
    expect(await store.rewrapAll(otherKek)).toEqual({ rewrapped: 2, already: 0 });
    expect(readFileSync(join(dir, keyFileName(policyEd)), 'utf8')).not.toBe(before);
    const rotated = await FileKeyStore.open({ dir, wrapper: otherKek, provider });
    expect((await rotated.get(policyEd)).secretKey).toEqual(ed);
    expect((await rotated.get(policyX)).secretKey).toEqual(x);
    expect((await rejection((await FileKeyStore.open({ dir, wrapper: kek, provider })).get(policyEd))).code).toBe('E_KEY_UNWRAP');
    expect(statSync(join(dir, keyFileName(policyEd))).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('finishes an interrupted rotation when run again with the same two KEKs', async () => {
    const { store, ed, x } = await seed();
    const xFile = join(dir, keyFileName(policyX));
    const xUnderOld = readFileSync(xFile, 'utf8');
    await store.rewrapAll(otherKek);
    // As if the run had stopped after the first file: policyEd under the new KEK, policyX still under the old.
    writeFileSync(xFile, xUnderOld, { mode: 0o600 });
    expect(await store.rewrapAll(otherKek)).toEqual({ rewrapped: 1, already: 1 });
    const rotated = await FileKeyStore.open({ dir, wrapper: otherKek, provider });
    expect((await rotated.get(policyEd)).secretKey).toEqual(ed);
    expect((await rotated.get(policyX)).secretKey).toEqual(x);
  });

  it('writes nothing when a file opens under neither KEK', async () => {
    const { store } = await seed();
    await (await FileKeyStore.open({ dir, wrapper: thirdKek, provider })).put({ principal: 'svc.zeta', kind: 'ed25519', version: 1 }, provider.ed25519.generateKeyPair().secretKey);
    const files = () => readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n), 'utf8')]);
    const before = files();
    const error = await rejection(store.rewrapAll(otherKek));
    expect(error.code).toBe('E_KEY_UNWRAP');
    expect(error.message).toMatch(/svc\.zeta\.ed25519\.v1\.json opens under neither the current KEK \(SYMBIONT_KEK\) nor the new one/);
    expect(files()).toEqual(before);
  });

  it('never writes a wrap that does not open back under the new KEK (a faulty token returning a corrupted ciphertext)', async () => {
    const { store, ed } = await seed();
    // The new KEK's wrap flips a byte of its output: what it writes would open under nothing.
    const faulty: KeyWrapper = {
      source: 'faulty token',
      wrap: async (plaintext, ad) => {
        const out = await otherKek.wrap(plaintext, ad);
        out.ciphertext[0]! ^= 1;
        return out;
      },
      unwrap: (nonce, ciphertext, ad) => otherKek.unwrap(nonce, ciphertext, ad),
    };
    const files = () => readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n), 'utf8')]);
    const before = files();
    expect((await rejection(store.rewrapAll(faulty))).code).toBe('E_KEY_UNWRAP');
    expect(files()).toEqual(before);
    expect((await (await FileKeyStore.open({ dir, wrapper: kek, provider })).get(policyEd)).secretKey).toEqual(ed);
  });
});
