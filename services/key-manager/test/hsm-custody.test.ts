// The key manager on an HSM (SYMBIONT_KEY_STORE_TYPE=hsm, SoftHSM2): the store opener finds the
// root generated in the token and checks it against the pin; the process refuses to start on a
// wrong PIN, an unreachable module, an unknown token, or a root that is not the pinned one, with
// one clear line, and the key directory is left as it was; and in the middle of a rotation of the
// token's KEK (`bulwark keys rekek`), naming the command that finishes it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createCryptoProvider } from '@bulwark/crypto';
import { ensureIdentity, Pkcs11Token, provisionHsmKeys, openHsmKeyStore, rotateHsmKek } from '@bulwark/keystore';
import { createSoftHsmToken, type SoftHsmToken } from '@bulwark/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openKeyManagerStore } from '../src/index.js';

const provider = createCryptoProvider();
const MAIN = resolve(import.meta.dirname, '../dist/main.js');
let token: SoftHsmToken;
let dir: string;
let rootHex: string;

beforeAll(async () => {
  token = createSoftHsmToken();
  dir = mkdtempSync(join(tmpdir(), 'bulwark-km-hsm-'));
  const t = Pkcs11Token.open({ module: token.module, tokenLabel: token.label, pin: token.pin });
  try {
    provisionHsmKeys(t, { rootLabel: 'bulwark-root', kekLabel: 'bulwark-kek' });
  } finally {
    t.close();
  }
  const hsm = await openHsmKeyStore({ configPath: token.configPath, dir: join(dir, 'keys'), provider, env: { SYMBIONT_HSM_PIN: token.pin } });
  try {
    rootHex = Buffer.from(hsm.root.publicKey).toString('hex');
    await ensureIdentity(hsm.store, provider, 'svc.key-manager');
  } finally {
    hsm.close();
  }
});
afterAll(() => {
  token.remove();
  rmSync(dir, { recursive: true, force: true });
});

const config = (pin: string) => ({ keys: { dir: join(dir, 'keys'), root_public_key: pin }, security: { hsm_enabled: true, hsm_config_path: token.configPath } });
const snapshot = () => readdirSync(join(dir, 'keys')).map((f) => [f, readFileSync(join(dir, 'keys', f), 'utf8')]);

function runMain(env: Record<string, string>): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 20_000,
    env: {
      PATH: process.env['PATH'] ?? '',
      SOFTHSM2_CONF: process.env['SOFTHSM2_CONF'] ?? '',
      // Nothing listens here: a process that got past custody fails later, differently.
      NATS_URL: 'nats://127.0.0.1:1',
      SYMBIONT_KEY_DIR: join(dir, 'keys'),
      SYMBIONT_KEY_STORE_TYPE: 'hsm',
      SYMBIONT_HSM_CONFIG_PATH: token.configPath,
      SYMBIONT_ROOT_PUBLIC_KEY: rootHex,
      SYMBIONT_HSM_PIN: token.pin,
      ...env,
    },
  });
  return { status: r.status, stderr: r.stderr };
}

describe('key manager custody on an HSM (SoftHSM2)', () => {
  it('opens the token root and checks it against the pin', async () => {
    const opened = await openKeyManagerStore(config(rootHex), provider, { SYMBIONT_HSM_PIN: token.pin });
    try {
      expect(opened.kind).toBe('hsm');
      expect(Buffer.from(opened.root.publicKey).toString('hex')).toBe(rootHex);
      expect(opened.root.location).toContain(`#${token.label}/bulwark-root`);
      const msg = new Uint8Array([1, 2, 3]);
      expect(provider.ed25519.verify(opened.rootPublicKey, msg, opened.root.sign(msg))).toBe(true);
    } finally {
      opened.close();
    }
    await expect(openKeyManagerStore(config('00'.repeat(32)), provider, { SYMBIONT_HSM_PIN: token.pin })).rejects.toThrow(/is not the pinned keys.root_public_key/);
    await expect(openKeyManagerStore({ ...config(rootHex), security: { hsm_enabled: true } }, provider, {})).rejects.toThrow(/needs security.hsm_config_path/);
  });

  it('the process refuses to start on a wrong PIN, an unreachable module, an unknown token or a foreign root, and writes nothing', () => {
    const before = snapshot();
    const wrongPin = runMain({ SYMBIONT_HSM_PIN: 'not-the-pin' });
    expect(wrongPin.status).not.toBe(0);
    expect(wrongPin.stderr).toMatch(/^bulwark-key-manager: HSM: token "bulwark": the PIN is wrong \(CKR_PIN_INCORRECT\)\n$/);
    const unreachable = join(dir, 'unreachable.toml');
    writeFileSync(unreachable, `module = "${join(dir, 'no-such-libpkcs11.so')}"\ntoken_label = "bulwark"\n`);
    const noModule = runMain({ SYMBIONT_HSM_CONFIG_PATH: unreachable });
    expect(noModule.status).not.toBe(0);
    expect(noModule.stderr).toMatch(/^bulwark-key-manager: HSM: cannot load the PKCS#11 module .*no-such-libpkcs11\.so/);
    const otherToken = join(dir, 'other.toml');
    writeFileSync(otherToken, `module = "${token.module}"\ntoken_label = "elsewhere"\n`);
    expect(runMain({ SYMBIONT_HSM_CONFIG_PATH: otherToken }).stderr).toMatch(/no token labelled "elsewhere"/);
    const foreign = runMain({ SYMBIONT_ROOT_PUBLIC_KEY: '11'.repeat(32) });
    expect(foreign.status).toBe(2);
    expect(foreign.stderr).toMatch(/the root key in pkcs11:.* is not the pinned keys.root_public_key/);
    // With the right PIN the process gets past custody (and stops at the bus nobody answers on).
    const right = runMain({});
    expect(right.status).not.toBe(0);
    expect(right.stderr).not.toMatch(/HSM|root key/);
    expect(snapshot()).toEqual(before);
  });

  it('refuses to start in the middle of a rotation of the token KEK, naming the command that finishes it', async () => {
    const crash = (step: string) => {
      if (step === 'rewrapped') throw new Error('crashed');
    };
    await expect(rotateHsmKek({ configPath: token.configPath, dir: join(dir, 'keys'), provider, env: { SYMBIONT_HSM_PIN: token.pin }, onStep: crash })).rejects.toThrow('crashed');
    const refused = runMain({});
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/^bulwark-key-manager: HSM: key directory .*: a rotation of the token's key-encryption key is unfinished \(.*hsm-kek-rotation\.json: old key "bulwark-kek", new key "bulwark-kek\.next", phase rewrapping\); finish it with `bulwark keys rekek`/);
    await expect(openKeyManagerStore(config(rootHex), provider, { SYMBIONT_HSM_PIN: token.pin })).rejects.toMatchObject({ code: 'E_HSM_ROTATION' });
    // Finished: the key manager gets past custody again, its identity under the new key.
    expect(await rotateHsmKek({ configPath: token.configPath, dir: join(dir, 'keys'), provider, env: { SYMBIONT_HSM_PIN: token.pin } })).toMatchObject({ resumed: true });
    expect(runMain({}).stderr).not.toMatch(/HSM|root key/);
  });
});
