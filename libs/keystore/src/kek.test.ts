import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { KEK_ENV, KEK_FILE_ENV, loadKek } from './kek.js';

const provider = createNodeCryptoProvider();
const KEK = Buffer.alloc(32, 7).toString('base64');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-kek-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function thrown(fn: () => unknown): InputError {
  try {
    fn();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError');
}

function kekFile(mode: number, text = `${KEK}\n`): string {
  const path = join(dir, 'kek');
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('loadKek', () => {
  it('reads SYMBIONT_KEK and wraps and unwraps with it', async () => {
    const kek = loadKek({ provider, env: { [KEK_ENV]: KEK } });
    expect(kek.source).toBe(KEK_ENV);
    const ad = Uint8Array.of(1, 2, 3);
    const { nonce, ciphertext } = await kek.wrap(Uint8Array.of(9, 9), ad);
    expect(nonce).toHaveLength(12);
    await expect(kek.unwrap(nonce, ciphertext, ad)).resolves.toEqual(Uint8Array.of(9, 9));
    await expect(kek.unwrap(nonce, ciphertext, Uint8Array.of(1, 2, 4))).rejects.toThrow();
  });

  it('never shows the key when printed, serialised or inspected', () => {
    const kek = loadKek({ provider, env: { [KEK_ENV]: KEK } });
    for (const shown of [String(kek), JSON.stringify({ kek }), inspect(kek), inspect({ nested: kek }, { depth: 5 })]) {
      expect(shown).not.toContain(KEK);
      expect(shown).not.toContain(Buffer.alloc(32, 7).toString('hex'));
      expect(shown).toContain('SYMBIONT_KEK');
    }
  });

  it('refuses to work without a KEK: one line naming both variables', () => {
    const error = thrown(() => loadKek({ provider, env: {} }));
    expect(error.code).toBe('E_KEK_MISSING');
    expect(error.message).toContain(KEK_ENV);
    expect(error.message).toContain(KEK_FILE_ENV);
    expect(thrown(() => loadKek({ provider, env: { [KEK_ENV]: '' } })).code).toBe('E_KEK_MISSING');
  });

  it('rejects a KEK that is not 32 bytes of base64, without echoing it', () => {
    for (const bad of [Buffer.alloc(16).toString('base64'), 'not base64 at all', Buffer.alloc(32).toString('hex'), `${KEK.slice(0, 42)}B=`]) {
      const error = thrown(() => loadKek({ provider, env: { [KEK_ENV]: bad } }));
      expect(error.code).toBe('E_KEK_INVALID');
      expect(error.message).not.toContain(bad);
    }
  });

  it('rejects both sources at once', () => {
    expect(thrown(() => loadKek({ provider, env: { [KEK_ENV]: KEK, [KEK_FILE_ENV]: kekFile(0o600) } })).code).toBe('E_KEK_AMBIGUOUS');
  });

  it('reads a mode-0600 KEK file from SYMBIONT_KEK_FILE or from configuration', async () => {
    const path = kekFile(0o600);
    const fromEnv = loadKek({ provider, env: { [KEK_FILE_ENV]: path } });
    expect(fromEnv.source).toBe(`${KEK_FILE_ENV} ${path}`);
    const fromConfig = loadKek({ provider, env: {}, kekFile: 'kek', cwd: dir });
    expect(fromConfig.source).toBe(`keys.kek_file ${path}`);
    const ad = new Uint8Array(0);
    const { nonce, ciphertext } = await fromEnv.wrap(Uint8Array.of(5), ad);
    await expect(fromConfig.unwrap(nonce, ciphertext, ad)).resolves.toEqual(Uint8Array.of(5));
  });

  it.each([0o640, 0o604, 0o644, 0o660])('refuses a KEK file with mode %o, like ssh', (mode) => {
    const path = kekFile(mode);
    const error = thrown(() => loadKek({ provider, env: { [KEK_FILE_ENV]: path } }));
    expect(error.code).toBe('E_KEK_FILE_MODE');
    expect(error.message).toContain(`0${mode.toString(8)} are too open`);
    expect(error.message).toContain('chmod 600');
  });

  it('names a missing KEK file and one with bad content', () => {
    expect(thrown(() => loadKek({ provider, env: { [KEK_FILE_ENV]: join(dir, 'absent') } })).message).toMatch(/absent: cannot read .*ENOENT/);
    expect(thrown(() => loadKek({ provider, env: { [KEK_FILE_ENV]: kekFile(0o400, 'short') } })).code).toBe('E_KEK_INVALID');
  });
});
