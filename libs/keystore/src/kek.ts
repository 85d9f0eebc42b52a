import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { inspect } from 'node:util';
import type { CryptoProvider } from '@bulwark/crypto';
import { KeyStoreInputError } from './errors.js';

/** The environment variables that carry the key-encryption key (never a config-file value). */
export const KEK_ENV = 'SYMBIONT_KEK';
export const KEK_FILE_ENV = 'SYMBIONT_KEK_FILE';

export const KEK_LENGTH = 32;
export const WRAP_NONCE_LENGTH = 12;

/**
 * What wraps private keys at rest (DESIGN §8). The file store holds only wrapped keys; the
 * wrapper holds the KEK. `SoftwareKek` keeps it in memory; a PKCS#11 wrapper (SoftHSM2, an
 * HSM) would keep an AES key in the token and run the same AES-256-GCM there, so the key
 * files and the store do not change. Async because a token call may block.
 */
export interface KeyWrapper {
  /** Where the KEK came from, safe to print (`SYMBIONT_KEK`, `SYMBIONT_KEK_FILE /path`); never the key. */
  readonly source: string;
  wrap(plaintext: Uint8Array, ad: Uint8Array): Promise<{ nonce: Uint8Array; ciphertext: Uint8Array }>;
  /** Throws on a wrong key or any altered byte (GCM tag); the caller names the file. */
  unwrap(nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Promise<Uint8Array>;
}

/**
 * A 32-byte AES-256-GCM KEK held in memory. It has no printable form: `String(kek)`,
 * `JSON.stringify(kek)` and `util.inspect(kek)` show only its source, so a log line that
 * picks it up by accident leaks nothing.
 */
export class SoftwareKek implements KeyWrapper {
  readonly source: string;
  readonly #key: Uint8Array;
  readonly #provider: CryptoProvider;

  constructor(provider: CryptoProvider, key: Uint8Array, source: string) {
    if (key.length !== KEK_LENGTH) {
      throw new KeyStoreInputError('E_KEK_INVALID', `${source}: the key-encryption key is ${key.length} bytes; expected ${KEK_LENGTH}`, { source });
    }
    this.#provider = provider;
    this.#key = key.slice();
    this.source = source;
  }

  wrap(plaintext: Uint8Array, ad: Uint8Array): Promise<{ nonce: Uint8Array; ciphertext: Uint8Array }> {
    // A random 96-bit nonce per file: at a few thousand keys per KEK the collision chance is negligible (NIST SP 800-38D §8.3).
    const nonce = this.#provider.randomBytes(WRAP_NONCE_LENGTH);
    return Promise.resolve({ nonce, ciphertext: this.#provider.aes256gcm.seal(this.#key, nonce, plaintext, ad) });
  }

  unwrap(nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve().then(() => this.#provider.aes256gcm.open(this.#key, nonce, ciphertext, ad));
  }

  toString(): string {
    return `[KEK from ${this.source}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

export interface LoadKekOptions {
  readonly provider: CryptoProvider;
  /** Where to read SYMBIONT_KEK and SYMBIONT_KEK_FILE; `process.env` by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The KEK file from configuration (`[keys] kek_file`), used when SYMBIONT_KEK_FILE is unset. */
  readonly kekFile?: string | undefined;
  /** Relative file paths are resolved against this directory. */
  readonly cwd?: string;
}

const KEK_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

function decodeKek(text: string, source: string): Uint8Array {
  const trimmed = text.trim();
  const bytes = KEK_BASE64.test(trimmed) ? Buffer.from(trimmed, 'base64') : undefined;
  if (bytes?.length !== KEK_LENGTH || bytes.toString('base64') !== trimmed) {
    // Never echo the text: it may be a real key with a typo in it.
    throw new KeyStoreInputError('E_KEK_INVALID', `${source}: not a key-encryption key; expected the base64 of ${KEK_LENGTH} bytes (44 characters, e.g. from \`openssl rand -base64 32\`)`, { source });
  }
  return new Uint8Array(bytes);
}

/** Reads the KEK file, refusing one that group or others may read, as ssh refuses a private key. */
function readKekFile(path: string, source: string): string {
  let stats;
  try {
    stats = statSync(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new KeyStoreInputError('E_KEK_FILE', `${source}: cannot read the key-encryption key file (${code})`, { source, path }, { cause });
  }
  if (!stats.isFile()) throw new KeyStoreInputError('E_KEK_FILE', `${source}: not a regular file`, { source, path });
  const mode = stats.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KeyStoreInputError(
      'E_KEK_FILE_MODE',
      `${source}: permissions 0${mode.toString(8)} are too open; the key-encryption key file must not be accessible by group or others (chmod 600 it)`,
      { source, path, mode },
    );
  }
  return readFileSync(path, 'utf8');
}

/**
 * The KEK from SYMBIONT_KEK (base64), else SYMBIONT_KEK_FILE or the configured file (a file
 * holding the base64, mode 0600 or stricter). There is no unencrypted fallback: with neither,
 * or with both variables set (which one did the operator mean?), this throws.
 */
export function loadKek(options: LoadKekOptions): SoftwareKek {
  const env = options.env ?? process.env;
  const inline = nonEmpty(env[KEK_ENV]);
  const fileFromEnv = nonEmpty(env[KEK_FILE_ENV]);
  if (inline !== undefined && fileFromEnv !== undefined) {
    throw new KeyStoreInputError('E_KEK_AMBIGUOUS', `both ${KEK_ENV} and ${KEK_FILE_ENV} are set; set only one key-encryption key source`, {});
  }
  if (inline !== undefined) return new SoftwareKek(options.provider, decodeKek(inline, KEK_ENV), KEK_ENV);
  const file = fileFromEnv ?? nonEmpty(options.kekFile);
  if (file === undefined) {
    throw new KeyStoreInputError(
      'E_KEK_MISSING',
      `no key-encryption key: set ${KEK_ENV} (base64 of ${KEK_LENGTH} bytes) or ${KEK_FILE_ENV} (a mode-0600 file holding it); private keys are never stored unencrypted`,
      {},
    );
  }
  const path = resolve(options.cwd ?? process.cwd(), file);
  const source = `${fileFromEnv !== undefined ? KEK_FILE_ENV : 'keys.kek_file'} ${path}`;
  return new SoftwareKek(options.provider, decodeKek(readKekFile(path, source), source), source);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
