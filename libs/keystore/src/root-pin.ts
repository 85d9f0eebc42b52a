import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { KeyStoreInputError } from './errors.js';

/** The file beside the keys that holds the root public key peers pin. */
export const ROOT_PIN_FILE = 'root.pub';

const HEX = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/**
 * The pinned root public key from configuration: 64 hex digits or the 44-character base64
 * of its 32 bytes. `where` names the setting in the error.
 */
export function parseRootPublicKey(text: string, where: string): Uint8Array {
  const trimmed = text.trim();
  if (HEX.test(trimmed)) return new Uint8Array(Buffer.from(trimmed, 'hex'));
  if (BASE64.test(trimmed)) {
    const bytes = Buffer.from(trimmed, 'base64');
    if (bytes.length === 32 && bytes.toString('base64') === trimmed) return new Uint8Array(bytes);
  }
  throw new KeyStoreInputError('E_ROOT_PUBLIC_KEY', `${where}: not a root public key; expected 64 hex digits or the base64 of 32 bytes`, { where });
}

/** The text of `root.pub`: which line is which encoding, and where to put it. */
export function formatRootPin(publicKey: Uint8Array): string {
  return [
    '# Bulwark root public key (Ed25519, 32 bytes): the key every directory entry must be signed by.',
    '# Pin it in every peer: SYMBIONT_ROOT_PUBLIC_KEY=<either value> or root_public_key = "<either value>" in [keys].',
    `base64: ${Buffer.from(publicKey).toString('base64')}`,
    `hex: ${Buffer.from(publicKey).toString('hex')}`,
    '',
  ].join('\n');
}

/**
 * The root public key from the text of `root.pub` (what `formatRootPin` writes: comment lines
 * and `base64:` / `hex:` lines; a file holding the bare key is taken too). Every value in it
 * must be the same key. `where` names the file in the error.
 */
export function parseRootPin(text: string, where: string): Uint8Array {
  const values = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.replace(/^(?:base64|hex):\s*/, ''));
  const keys = values.map((value) => parseRootPublicKey(value, where));
  const [first] = keys;
  if (first === undefined) throw new KeyStoreInputError('E_ROOT_PUBLIC_KEY', `${where}: holds no root public key`, { where });
  if (keys.some((key) => !Buffer.from(key).equals(first))) throw new KeyStoreInputError('E_ROOT_PUBLIC_KEY', `${where}: its lines name different keys`, { where });
  return first;
}

/** Writes `<dir>/root.pub` (mode 0644: it is public), replacing an older one atomically. */
export async function writeRootPin(dir: string, publicKey: Uint8Array): Promise<string> {
  const path = join(dir, ROOT_PIN_FILE);
  await writeFileAtomic(path, formatRootPin(publicKey), 0o644, { replace: true });
  return path;
}

/**
 * The pinned key from a `root.pub` file as `formatRootPin` writes it (the `base64:` line;
 * a `hex:` line or a file holding the bare key also do; every line must name the same key),
 * in base64. Comments are skipped.
 */
export function readRootPinFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new KeyStoreInputError('E_ROOT_PIN', `${path}: cannot read the root pin (${(cause as NodeJS.ErrnoException).code ?? 'error'}); run bulwark init to write it`, { path }, { cause });
  }
  return Buffer.from(parseRootPin(text, path)).toString('base64');
}
