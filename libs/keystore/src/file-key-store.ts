import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CryptoProvider } from '@bulwark/crypto';
import { writeFileAtomic } from './atomic-file.js';
import { KeyStoreError } from './errors.js';
import type { KeyWrapper } from './kek.js';
import type { KeyStore, StoredKey } from './key-store.js';
import {
  checkKeyRef,
  decodeWrappedKeyFile,
  describeKey,
  encodeWrappedKeyFile,
  publicKeyOf,
  unwrapKey,
  wrapKey,
  type KeyKind,
  type KeyRef,
  type StoredKeyInfo,
  type WrappedKeyFile,
} from './wrapped-key.js';

/** The default key directory, relative to the working directory (config `keys.dir`). */
export const DEFAULT_KEY_DIR = '.bulwark/keys';

/** The pending slot's directory inside a key directory. */
export const PENDING_DIR = 'pending';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const FILE_NAME = /^(.+)\.(ed25519|x25519|nats-operator|nats-account|nats-system-account|nats-user)\.v([1-9][0-9]{0,9})\.json$/;

export interface FileKeyStoreOptions {
  /** The key directory; created (mode 0700, parents too) when missing. */
  readonly dir: string;
  readonly wrapper: KeyWrapper;
  readonly provider: CryptoProvider;
}

/** `<owner>.<kind>.v<version>.json`, e.g. `svc.policy.x25519.v1.json`, `root.ed25519.v1.json`. */
export function keyFileName(ref: KeyRef): string {
  checkKeyRef(ref);
  return `${ref.principal}.${ref.kind}.v${ref.version}.json`;
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Refuses a directory or file that group or others can reach, as ssh does for ~/.ssh. */
function checkPrivateMode(path: string, mode: number, what: string, fix: string): void {
  const bits = mode & 0o777;
  if ((bits & 0o077) !== 0) {
    throw new KeyStoreError('E_KEY_MODE', `${what} ${path}: permissions 0${bits.toString(8)} are too open; it must not be accessible by group or others (${fix})`, { path, mode: bits });
  }
}

/**
 * Private keys as wrapped JSON files in one directory (DESIGN §8). The directory is 0700 and
 * every file 0600, written atomically; the store refuses a looser directory or key file. It
 * cannot be opened without a KeyWrapper: there is no unencrypted mode.
 */
export class FileKeyStore implements KeyStore {
  readonly dir: string;
  readonly location: string;
  readonly #wrapper: KeyWrapper;
  readonly #provider: CryptoProvider;

  private constructor(dir: string, wrapper: KeyWrapper, provider: CryptoProvider) {
    this.dir = dir;
    this.location = `file:${dir}`;
    this.#wrapper = wrapper;
    this.#provider = provider;
  }

  static async open(options: FileKeyStoreOptions): Promise<FileKeyStore> {
    const dir = resolve(options.dir);
    try {
      await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
    } catch (cause) {
      throw new KeyStoreError('E_KEY_DIR', `key directory ${dir}: cannot create it (${errnoOf(cause) ?? 'error'})`, { dir }, { cause });
    }
    const stats = await fs.stat(dir);
    if (!stats.isDirectory()) throw new KeyStoreError('E_KEY_DIR', `key directory ${dir}: not a directory`, { dir });
    checkPrivateMode(dir, stats.mode, 'key directory', `chmod 700 ${dir}`);
    return new FileKeyStore(dir, options.wrapper, options.provider);
  }

  /** Where the KEK came from (never the KEK). */
  get kekSource(): string {
    return this.#wrapper.source;
  }

  /**
   * The pending slot (`<dir>/pending`, pending-keys.ts): a store of its own under the same KEK,
   * for keys not yet certified; this store's `list` and `get` never see them.
   */
  async pendingStore(): Promise<FileKeyStore> {
    return FileKeyStore.open({ dir: join(this.dir, PENDING_DIR), wrapper: this.#wrapper, provider: this.#provider });
  }

  pathOf(ref: KeyRef): string {
    return join(this.dir, keyFileName(ref));
  }

  async put(ref: KeyRef, secretKey: Uint8Array): Promise<StoredKeyInfo> {
    checkKeyRef(ref);
    const path = this.pathOf(ref);
    const publicKey = publicKeyOf(this.#provider, ref.kind, secretKey);
    const file = await wrapKey(this.#wrapper, ref, publicKey, secretKey, new Date());
    let written: boolean;
    try {
      written = await writeFileAtomic(path, encodeWrappedKeyFile(file), FILE_MODE, { replace: false });
    } catch (cause) {
      throw new KeyStoreError('E_KEY_DIR', `key file ${path}: cannot write it (${errnoOf(cause) ?? 'error'})`, { path }, { cause });
    }
    if (!written) throw new KeyStoreError('E_KEY_EXISTS', `key file ${path} already exists; a stored key is never replaced`, { path, key: describeKey(ref) });
    return infoOf(file);
  }

  async get(ref: KeyRef): Promise<StoredKey> {
    const path = this.pathOf(ref);
    const file = await this.#read(path, ref);
    if (file === undefined) throw new KeyStoreError('E_KEY_NOT_FOUND', `no key ${describeKey(ref)} in ${this.dir}`, { path, key: describeKey(ref) });
    const secretKey = await unwrapKey(this.#provider, this.#wrapper, file, ref, path);
    return { info: infoOf(file), secretKey };
  }

  async has(ref: KeyRef): Promise<boolean> {
    try {
      await fs.access(this.pathOf(ref));
      return true;
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return false;
      throw error;
    }
  }

  async list(owner?: string): Promise<readonly StoredKeyInfo[]> {
    const names = await fs.readdir(this.dir);
    const infos: StoredKeyInfo[] = [];
    for (const name of names) {
      const match = FILE_NAME.exec(name);
      if (match === null) continue;
      const ref: KeyRef = { principal: match[1]!, kind: match[2] as KeyKind, version: Number(match[3]) };
      if (owner !== undefined && ref.principal !== owner) continue;
      const file = await this.#read(join(this.dir, name), ref);
      if (file !== undefined) infos.push(infoOf(file));
    }
    return infos.sort((a, b) => compare(a.principal, b.principal) || compare(a.kind, b.kind) || a.version - b.version);
  }

  /**
   * KEK rotation: every key file wrapped again under `next`, its key never leaving this
   * process (unwrapped into memory, wrapped, opened back under `next`, written in place atomically, read back under
   * `next`, zeroed). Checked first, written after: a file that opens under neither KEK (a third
   * KEK, a corrupted file) stops it before anything is written. Resumable: a file that already
   * opens under `next` (a run interrupted half-way) is left as it is, so running it again with
   * the same two KEKs finishes the job. The store keeps using its old wrapper; open it again
   * with `next`.
   */
  async rewrapAll(next: KeyWrapper): Promise<{ readonly rewrapped: number; readonly already: number }> {
    const pending: { path: string; ref: KeyRef; file: WrappedKeyFile; secretKey: Uint8Array }[] = [];
    let already = 0;
    try {
      for (const name of (await fs.readdir(this.dir)).sort()) {
        const match = FILE_NAME.exec(name);
        if (match === null) continue;
        const ref: KeyRef = { principal: match[1]!, kind: match[2] as KeyKind, version: Number(match[3]) };
        const path = join(this.dir, name);
        const file = (await this.#read(path, ref))!;
        const current = await unwrapKey(this.#provider, this.#wrapper, file, ref, path).catch((e: unknown) => e);
        if (current instanceof Uint8Array) {
          pending.push({ path, ref, file, secretKey: current });
          continue;
        }
        const done = await unwrapKey(this.#provider, next, file, ref, path).catch(() => undefined);
        if (done === undefined) throw new KeyStoreError('E_KEY_UNWRAP', `KEK rotation: key file ${path} opens under neither the current KEK (${this.#wrapper.source}) nor the new one (${next.source}); nothing was rewrapped`, { path, key: describeKey(ref) }, { cause: current });
        done.fill(0);
        already++;
      }
      for (const { path, ref, file, secretKey } of pending) {
        const wrapped = await wrapKey(next, ref, file.publicKey, secretKey, new Date(file.created));
        // Opened under `next` before it replaces the file: a wrap that does not open back is never written.
        (await unwrapKey(this.#provider, next, wrapped, ref, path)).fill(0);
        await writeFileAtomic(path, encodeWrappedKeyFile(wrapped), FILE_MODE, { replace: true });
        (await unwrapKey(this.#provider, next, (await this.#read(path, ref))!, ref, path)).fill(0);
      }
      // The pending slot's keys (a rotation in progress) are wrapped again too.
      let inSlot = { rewrapped: 0, already: 0 };
      if (await fs.stat(join(this.dir, PENDING_DIR)).then(() => true, () => false)) inSlot = await (await this.pendingStore()).rewrapAll(next);
      return { rewrapped: pending.length + inSlot.rewrapped, already: already + inSlot.already };
    } finally {
      for (const p of pending) p.secretKey.fill(0);
    }
  }

  /** The decoded file, undefined when absent; its fields must agree with its name. */
  async #read(path: string, ref: KeyRef): Promise<ReturnType<typeof decodeWrappedKeyFile> | undefined> {
    let text: string;
    try {
      const stats = await fs.stat(path);
      checkPrivateMode(path, stats.mode, 'key file', `chmod 600 ${path}`);
      text = await fs.readFile(path, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return undefined;
      if (error instanceof KeyStoreError) throw error;
      throw new KeyStoreError('E_KEY_FILE', `key file ${path}: cannot read it (${errnoOf(error) ?? 'error'})`, { path }, { cause: error });
    }
    const file = decodeWrappedKeyFile(text, path);
    if (file.principal !== ref.principal || file.kind !== ref.kind || file.version !== ref.version) {
      throw new KeyStoreError('E_KEY_FILE', `key file ${path} holds ${describeKey(file)}, not ${describeKey(ref)} as its name says`, { path });
    }
    return file;
  }
}

function infoOf(file: StoredKeyInfo): StoredKeyInfo {
  return { principal: file.principal, kind: file.kind, version: file.version, created: file.created, publicKey: file.publicKey.slice() };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
