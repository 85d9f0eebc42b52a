// Rotating the token's key-encryption key (rotateHsmKek) on SoftHSM2 (a token of this file's own):
// a new AES key made in the token, every key file rewrapped under it, the old key destroyed and
// the new one given its label; the same keys open afterwards. A run interrupted after the rewrap
// or after the old key's destruction is finished by running it again; until then the store's
// opener and provisioning refuse, naming the command that finishes it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '@bulwark/crypto';
import { createSoftHsmToken, type SoftHsmToken } from '@bulwark/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyStore } from '../file-key-store.js';
import { ensureIdentity, loadIdentity } from '../identity.js';
import { HsmKek } from './hsm-kek.js';
import { provisionHsmKeys } from './hsm-root.js';
import { HSM_KEK_ROTATION_FILE, rotateHsmKek, type KekRotationStep } from './kek-rotation.js';
import { openHsmKeyStore } from './open-hsm.js';
import { Pkcs11Token } from './pkcs11-token.js';

const provider = createCryptoProvider();
const labels = { rootLabel: 'bulwark-root', kekLabel: 'bulwark-kek' };
const IDS = ['svc.policy', 'svc.ledger', 'agent.11111111-2222-4333-8444-555555555555'];
let token: SoftHsmToken;
let work: string;
const env = () => ({ SYMBIONT_HSM_PIN: token.pin });
const openToken = () => Pkcs11Token.open({ module: token.module, tokenLabel: token.label, pin: token.pin });

beforeAll(() => {
  token = createSoftHsmToken();
  work = mkdtempSync(join(tmpdir(), 'bulwark-hsm-rekek-'));
  const t = openToken();
  try {
    provisionHsmKeys(t, labels);
  } finally {
    t.close();
  }
});
afterAll(() => {
  token.remove();
  rmSync(work, { recursive: true, force: true });
});

/** A store of three identities under the token's KEK; their public keys. */
async function makeStore(name: string): Promise<{ dir: string; publicKeys: string[] }> {
  const dir = join(work, name);
  const hsm = await openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() });
  try {
    const publicKeys: string[] = [];
    for (const id of IDS) publicKeys.push(Buffer.from((await ensureIdentity(hsm.store, provider, id)).identity.ed25519.publicKey).toString('base64'));
    return { dir, publicKeys };
  } finally {
    hsm.close();
  }
}

/** Every identity of `dir` opened under the token's KEK as the key manager opens it. */
async function openedKeys(dir: string): Promise<string[]> {
  const hsm = await openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() });
  try {
    const out: string[] = [];
    for (const id of IDS) out.push(Buffer.from((await loadIdentity(hsm.store, id)).ed25519.publicKey).toString('base64'));
    return out;
  } finally {
    hsm.close();
  }
}

const rotate = (dir: string, onStep?: (s: KekRotationStep) => void) => rotateHsmKek({ configPath: token.configPath, dir, provider, env: env(), ...(onStep === undefined ? {} : { onStep }) });
const crashAt = (at: KekRotationStep) => (s: KekRotationStep) => {
  if (s === at) throw new Error(`crashed after ${s}`);
};

describe('rotating the HSM key-encryption key', () => {
  it('rewraps every key file under a new key made in the token, destroys the old key, and the same keys open', async () => {
    const { dir, publicKeys } = await makeStore('plain');
    const before = readFileSync(join(dir, 'svc.policy.ed25519.v1.json'), 'utf8');
    const t = openToken();
    const oldKek = HsmKek.open(t, labels.kekLabel, provider);
    const done = await rotate(dir);
    expect(done).toMatchObject({ resumed: false, rewrapped: 6, already: 0, files: 6, label: 'bulwark-kek' });
    expect(readFileSync(join(dir, 'svc.policy.ed25519.v1.json'), 'utf8')).not.toBe(before);
    expect(existsSync(join(dir, HSM_KEK_ROTATION_FILE))).toBe(false);
    expect(await openedKeys(dir)).toEqual(publicKeys);
    try {
      // The old key is gone from the token: its handle opens nothing now, and one key holds the label.
      await expect(FileKeyStore.open({ dir, wrapper: oldKek, provider }).then(async (s) => s.get((await s.list())[0]!))).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
      expect(t.find('secret', 'bulwark-kek.next')).toBeUndefined();
      // The new key is as sealed in the token as the old one was (HsmKek.open refuses one that is not).
      expect(t.protection(t.find('secret', 'bulwark-kek')!)).toMatchObject({ sensitive: true, extractable: false, neverExtractable: true });
    } finally {
      t.close();
    }
  });

  for (const at of ['rewrapped', 'destroyed'] as const) {
    it(`interrupted after the key files were ${at === 'rewrapped' ? 'rewrapped' : 'rewrapped and the old key destroyed'}: the opener and provisioning refuse, and a second run finishes it`, async () => {
      const { dir, publicKeys } = await makeStore(`interrupted-${at}`);
      await expect(rotate(dir, crashAt(at))).rejects.toThrow(`crashed after ${at}`);
      expect(JSON.parse(readFileSync(join(dir, HSM_KEK_ROTATION_FILE), 'utf8'))).toMatchObject({ old_label: 'bulwark-kek', new_label: 'bulwark-kek.next', phase: at === 'rewrapped' ? 'rewrapping' : 'finishing' });
      // The key manager's opener: refused, naming the command that finishes the rotation.
      await expect(openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() })).rejects.toMatchObject({
        code: 'E_HSM_ROTATION',
        message: expect.stringMatching(/a rotation of the token's key-encryption key is unfinished .*finish it with `bulwark keys rekek`/),
      });
      // Provisioning (which knows no key directory): refused on the token's next key, nothing made.
      const t = openToken();
      try {
        expect(() => provisionHsmKeys(t, labels)).toThrow(/holds "bulwark-kek\.next", the new key of an unfinished key-encryption key rotation; finish it with `bulwark keys rekek`/);
        expect(t.find('secret', 'bulwark-kek') === undefined).toBe(at === 'destroyed');
      } finally {
        t.close();
      }
      const finished = await rotate(dir);
      expect(finished).toMatchObject({ resumed: true, files: 6, ...(at === 'rewrapped' ? { rewrapped: 0, already: 6 } : {}) });
      expect(existsSync(join(dir, HSM_KEK_ROTATION_FILE))).toBe(false);
      expect(await openedKeys(dir)).toEqual(publicKeys);
    });
  }

  it('interrupted after the relabelling: the state file alone keeps the opener out, and a second run removes it', async () => {
    const { dir, publicKeys } = await makeStore('interrupted-relabelled');
    await expect(rotate(dir, crashAt('relabelled'))).rejects.toThrow('crashed after relabelled');
    await expect(openHsmKeyStore({ configPath: token.configPath, dir, provider, env: env() })).rejects.toMatchObject({ code: 'E_HSM_ROTATION' });
    expect(await rotate(dir)).toMatchObject({ resumed: true, files: 6 });
    expect(await openedKeys(dir)).toEqual(publicKeys);
  });
});
