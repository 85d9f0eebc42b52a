import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { FileKeyStore, loadKek } from '@bulwark/keystore';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CommandIO } from '../io.js';
import { run } from '../main.js';

const provider = createNodeCryptoProvider();
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-rekek-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const kekFile = (name: string, mode = 0o600): string => {
  const path = join(dir, name);
  writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode });
  return path;
};

async function bulwark(argv: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env, cwd: dir };
  return { code: await run(argv, io), stdout, stderr };
}

describe('bulwark keys rekek', () => {
  it('rewraps the store under the new KEK (the old one opens nothing), is a no-op the second time, and refuses the KEK in use or a readable KEK file, writing nothing', async () => {
    const oldKek = kekFile('old.kek');
    const newKek = kekFile('new.kek');
    const keysDir = join(dir, 'keys');
    const env = { SYMBIONT_KEK_FILE: oldKek, SYMBIONT_KEY_DIR: keysDir };
    const store = await FileKeyStore.open({ dir: keysDir, wrapper: loadKek({ provider, env }), provider });
    const secret = provider.ed25519.generateKeyPair().secretKey;
    await store.put({ principal: 'root', kind: 'ed25519', version: 1 }, secret);
    await store.put({ principal: 'svc.policy', kind: 'x25519', version: 1 }, provider.x25519.generateKeyPair().secretKey);
    const snapshot = () => readdirSync(keysDir).sort().map((n) => readFileSync(join(keysDir, n), 'utf8'));

    const same = await bulwark(['keys', 'rekek', '--new-kek-file', oldKek], env);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/is the KEK in use/);
    const loose = kekFile('loose.kek', 0o644);
    const before = snapshot();
    const refused = await bulwark(['keys', 'rekek', '--new-kek-file', loose], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/too open/);
    expect(snapshot()).toEqual(before);

    const done = await bulwark(['keys', 'rekek', '--new-kek-file', newKek, '--json'], env);
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ rewrapped: 2, already: 0 });
    const rotated = await FileKeyStore.open({ dir: keysDir, wrapper: loadKek({ provider, env: { SYMBIONT_KEK_FILE: newKek } }), provider });
    expect((await rotated.get({ principal: 'root', kind: 'ed25519', version: 1 })).secretKey).toEqual(secret);
    await expect(store.get({ principal: 'root', kind: 'ed25519', version: 1 })).rejects.toThrow(/does not open with the key-encryption key/);
    const again = await bulwark(['keys', 'rekek', '--new-kek-file', newKek], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/rewrapped 0 key files .* \(2 already were\)/);
  });
});
