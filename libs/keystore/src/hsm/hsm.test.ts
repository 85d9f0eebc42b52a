// The PKCS#11 key store against SoftHSM2 (a token made per file in a temporary directory):
// the root key generated and used inside the token, attacked from outside the store with the
// PIN (read its value, wrap it out), the token KEK wrapping key files, and every way the token
// can fail to open (no module, no token, a wrong PIN, no root) refusing with nothing written.
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Pkcs11Types from 'pkcs11js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '@bulwark/crypto';
import { attackTokenKey, createSoftHsmToken, type SoftHsmToken } from '@bulwark/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyStore } from '../file-key-store.js';
import { generateKey } from '../identity.js';
import { loadHsmConfig } from './hsm-config.js';
import { HsmKek } from './hsm-kek.js';
import { HsmRootSigner, provisionHsmKeys } from './hsm-root.js';
import { openHsmKeyStore } from './open-hsm.js';
import { Pkcs11Token } from './pkcs11-token.js';

const provider = createCryptoProvider();
let token: SoftHsmToken;
let dir: string;
const labels = { rootLabel: 'bulwark-root', kekLabel: 'bulwark-kek' };
const env = () => ({ SYMBIONT_HSM_PIN: token.pin });

beforeAll(() => {
  token = createSoftHsmToken();
  dir = mkdtempSync(join(tmpdir(), 'bulwark-hsm-store-'));
  const t = Pkcs11Token.open({ module: token.module, tokenLabel: token.label, pin: token.pin });
  try {
    expect(provisionHsmKeys(t, labels)).toEqual({ rootCreated: true, kekCreated: true });
    expect(provisionHsmKeys(t, labels)).toEqual({ rootCreated: false, kekCreated: false });
  } finally {
    t.close();
  }
});
afterAll(() => {
  token.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe('HSM key store (SoftHSM2)', () => {
  it('signs with the root key inside the token: Ed25519 signatures that verify under its public key', async () => {
    const hsm = await openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() });
    try {
      const message = new TextEncoder().encode('directory entry bytes');
      const signature = hsm.root.sign(message);
      expect(signature.length).toBe(64);
      expect(provider.ed25519.verify(hsm.root.publicKey, message, signature)).toBe(true);
      expect(provider.ed25519.verify(hsm.root.publicKey, new TextEncoder().encode('other bytes'), signature)).toBe(false);
      expect(hsm.root.location).toBe(`pkcs11:${token.module}#${token.label}/bulwark-root`);
      expect(hsm.token.protection(hsm.token.find('private', 'bulwark-root')!)).toEqual({ sensitive: true, extractable: false, neverExtractable: true, alwaysSensitive: true });
    } finally {
      hsm.close();
    }
  });

  it("refuses to give out the root key: reading its value and wrapping it out of the token both fail", () => {
    const read = attackTokenKey(token, 'bulwark-root', 'read-value');
    expect(read).toMatch(/^REFUSED .*CKR_ATTRIBUTE_SENSITIVE/);
    const wrapped = attackTokenKey(token, 'bulwark-root', 'wrap-out');
    expect(wrapped).toMatch(/^REFUSED .*CKR_KEY_UNEXTRACTABLE/);
  });

  it('refuses a root key pair that could leave the token (made extractable)', () => {
    const t = Pkcs11Token.open({ module: token.module, tokenLabel: token.label, pin: token.pin });
    try {
      const p = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Types;
      // What an operator importing a software key, or generating it carelessly, would leave.
      const lib = new p.PKCS11();
      lib.load(token.module);
      const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label)!;
      const s = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
      lib.C_GenerateKeyPair(
        s,
        { mechanism: 0x1055 },
        [
          { type: p.CKA_TOKEN, value: true },
          { type: p.CKA_LABEL, value: 'weak-root' },
          { type: p.CKA_EC_PARAMS, value: Buffer.from('06032b6570', 'hex') },
        ],
        [
          { type: p.CKA_TOKEN, value: true },
          { type: p.CKA_LABEL, value: 'weak-root' },
          { type: p.CKA_PRIVATE, value: true },
          { type: p.CKA_SENSITIVE, value: false },
          { type: p.CKA_EXTRACTABLE, value: true },
          { type: p.CKA_SIGN, value: true },
        ],
      );
      lib.C_CloseSession(s);
      expect(() => HsmRootSigner.open(t, 'weak-root')).toThrow(/has been extractable or readable/);
    } finally {
      t.close();
    }
  });

  it('wraps key files with the token KEK: they open only under that token key, and a changed byte does not open', async () => {
    const hsm = await openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() });
    try {
      const seed = generateKey(provider, 'nats-account');
      const ref = { principal: 'root', kind: 'nats-account' as const, version: 1 };
      await hsm.store.put(ref, seed);
      expect((await hsm.store.get(ref)).secretKey).toEqual(seed);
      const file = join(dir, 'root.nats-account.v1.json');
      const text = (await import('node:fs')).readFileSync(file, 'utf8');
      expect(text).not.toContain(Buffer.from(seed).toString('base64'));
      // Another token key (a second KEK label) does not open it.
      hsm.token.generateAes256('other-kek');
      const other = await FileKeyStore.open({ dir, wrapper: HsmKek.open(hsm.token, 'other-kek', provider), provider });
      await expect(other.get(ref)).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
      const json = JSON.parse(text) as { ciphertext: string };
      const ct = Buffer.from(json.ciphertext, 'base64');
      ct[3]! ^= 1;
      writeFileSync(file, JSON.stringify({ ...json, ciphertext: ct.toString('base64') }));
      chmodSync(file, 0o600);
      await expect(hsm.store.get(ref)).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
      rmSync(file);
    } finally {
      hsm.close();
    }
  });

  it('refuses to open with a wrong PIN, an unknown token, a missing module or a token without keys, and writes nothing', async () => {
    const before = readdirSync(dir);
    await expect(openHsmKeyStore({ configPath: token.configPath, dir, provider, env: { SYMBIONT_HSM_PIN: 'wrong-pin' } })).rejects.toMatchObject({
      code: 'E_HSM_LOGIN',
      message: expect.stringContaining('the PIN is wrong (CKR_PIN_INCORRECT)') as string,
    });
    const cfg = (body: string): string => {
      const p = join(token.dir, `cfg-${Math.random().toString(36).slice(2)}.toml`);
      writeFileSync(p, body);
      return p;
    };
    await expect(openHsmKeyStore({ configPath: cfg(`module = "${token.module}"\ntoken_label = "nope"\n`), dir, provider, env: env() })).rejects.toMatchObject({
      code: 'E_HSM_TOKEN',
      message: expect.stringContaining(`tokens: "${token.label}"`) as string,
    });
    await expect(openHsmKeyStore({ configPath: cfg(`module = "/nonexistent/libpkcs11.so"\ntoken_label = "${token.label}"\n`), dir, provider, env: env() })).rejects.toMatchObject({ code: 'E_HSM_MODULE' });
    await expect(openHsmKeyStore({ configPath: cfg(`module = "${token.module}"\ntoken_label = "${token.label}"\nroot_label = "absent"\n`), dir, provider, env: env() })).rejects.toMatchObject({ code: 'E_KEY_NOT_FOUND' });
    await expect(openHsmKeyStore({ configPath: cfg(`module = "${token.module}"\ntoken_label = "${token.label}"\nkek_label = "absent"\n`), dir, provider, env: env() })).rejects.toMatchObject({ code: 'E_HSM_KEY' });
    expect(readdirSync(dir)).toEqual(before);
    // After all these failures the token still opens (each failure released the module).
    const hsm = await openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() });
    hsm.close();
  });

  it('reads the configuration strictly: unknown keys, no PIN, two PIN sources, a PIN file others can read', () => {
    const p = join(token.dir, 'strict.toml');
    writeFileSync(p, `module = "${token.module}"\ntoken_label = "x"\npin = "1234"\n`);
    expect(() => loadHsmConfig(p, {})).toThrow(/unknown key "pin"/);
    writeFileSync(p, `module = "${token.module}"\ntoken_label = "x"\n`);
    expect(() => loadHsmConfig(p, {})).toThrow(/no PIN: set SYMBIONT_HSM_PIN or pin_file/);
    const pinFile = join(token.dir, 'pin');
    writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o644 });
    chmodSync(pinFile, 0o644);
    writeFileSync(p, `module = "${token.module}"\ntoken_label = "x"\npin_file = "pin"\n`);
    expect(() => loadHsmConfig(p, {})).toThrow(/permissions 0644 are too open/);
    chmodSync(pinFile, 0o600);
    expect(loadHsmConfig(p, {})).toMatchObject({ pin: token.pin, pinSource: `pin_file ${pinFile}`, rootLabel: 'bulwark-root', kekLabel: 'bulwark-kek' });
    expect(() => loadHsmConfig(p, { SYMBIONT_HSM_PIN: 'x' })).toThrow(/both SYMBIONT_HSM_PIN and pin_file/);
    expect(() => loadHsmConfig(join(token.dir, 'missing.toml'), {})).toThrow(/cannot read it \(ENOENT\)/);
  });
});
