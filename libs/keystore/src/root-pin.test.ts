import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRootPublicKey, readRootPinFile, writeRootPin } from './root-pin.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-root-pin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const key = new Uint8Array(32).map((_, i) => i * 7);
const base64 = Buffer.from(key).toString('base64');

describe('readRootPinFile', () => {
  it('reads the key from root.pub as init writes it (comments, base64 and hex lines), which the parser alone refuses', async () => {
    const path = await writeRootPin(dir, key);
    // The bug of issue 11: the whole file handed to the key parser.
    expect(() => parseRootPublicKey(readFileSync(path, 'utf8'), path)).toThrow(/not a root public key/);
    expect(readRootPinFile(path)).toBe(base64);
  });

  it('takes a hex line, or a file holding the bare key in either encoding', () => {
    const hex = join(dir, 'hex.pub');
    writeFileSync(hex, `# mine\nhex: ${Buffer.from(key).toString('hex')}\n`);
    expect(readRootPinFile(hex)).toBe(base64);
    const bare = join(dir, 'bare.pub');
    writeFileSync(bare, `${base64}\n`);
    expect(readRootPinFile(bare)).toBe(base64);
  });

  it('refuses a file with no key, a bad key, or none at all, naming the file', () => {
    const empty = join(dir, 'empty.pub');
    writeFileSync(empty, '# nothing here\n');
    expect(() => readRootPinFile(empty)).toThrow(`${empty}: holds no root public key`);
    const bad = join(dir, 'bad.pub');
    writeFileSync(bad, 'base64: AAAA\n');
    expect(() => readRootPinFile(bad)).toThrow(/bad\.pub: not a root public key/);
    expect(() => readRootPinFile(join(dir, 'missing.pub'))).toThrow(/missing\.pub: cannot read the root pin \(ENOENT\)/);
  });
});
