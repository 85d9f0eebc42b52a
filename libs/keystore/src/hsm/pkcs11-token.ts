import { createRequire } from 'node:module';
import type * as Pkcs11Types from 'pkcs11js';
import { KeyStoreError } from '../errors.js';

// pkcs11js is CommonJS with a native addon; its constants live on the module object.
const pkcs11 = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Types;

/** PKCS#11 3.0 mechanisms SoftHSM2 2.6 implements for Ed25519 (pkcs11js 2.1 names neither). */
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
/** DER of the RFC 8410 OID id-Ed25519 (1.3.101.112): the CKA_EC_PARAMS of an Ed25519 key. */
const ED25519_EC_PARAMS = Buffer.from('06032b6570', 'hex');

export type ObjectHandle = Pkcs11Types.Handle;

export interface TokenOptions {
  /** The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so). */
  readonly module: string;
  /** The token's label as initialised (`softhsm2-util --init-token --label ...`). */
  readonly tokenLabel: string;
  readonly pin: string;
}

/**
 * One module loaded per process: C_Initialize may run once, so tokens of the same module
 * share it and the last one closed finalizes it.
 */
const loaded = new Map<string, { lib: Pkcs11Types.PKCS11; users: number }>();

function codeName(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /CKR_[A-Z_]+/.exec(message)?.[0] ?? message;
}

function acquire(module: string): Pkcs11Types.PKCS11 {
  const entry = loaded.get(module);
  if (entry !== undefined) {
    entry.users++;
    return entry.lib;
  }
  const lib = new pkcs11.PKCS11();
  try {
    lib.load(module);
  } catch (cause) {
    throw new KeyStoreError('E_HSM_MODULE', `HSM: cannot load the PKCS#11 module ${module} (${codeName(cause)})`, { module }, { cause });
  }
  try {
    lib.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
  } catch (cause) {
    lib.close();
    throw new KeyStoreError('E_HSM_UNREACHABLE', `HSM: the PKCS#11 module ${module} does not initialise (${codeName(cause)})`, { module }, { cause });
  }
  loaded.set(module, { lib, users: 1 });
  return lib;
}

function release(module: string): void {
  const entry = loaded.get(module);
  if (entry === undefined) return;
  if (--entry.users > 0) return;
  loaded.delete(module);
  try {
    entry.lib.C_Finalize();
  } finally {
    entry.lib.close();
  }
}

/**
 * A logged-in session on one token. Every call is synchronous (pkcs11js calls the module on
 * this thread), so an operation's Init and its one-shot call cannot interleave with another's.
 */
export class Pkcs11Token {
  readonly module: string;
  readonly label: string;
  readonly #lib: Pkcs11Types.PKCS11;
  readonly #session: Buffer;
  #closed = false;

  private constructor(module: string, label: string, lib: Pkcs11Types.PKCS11, session: Buffer) {
    this.module = module;
    this.label = label;
    this.#lib = lib;
    this.#session = session;
  }

  /**
   * Finds the token by label, opens a read-write session and logs in as the user. A missing
   * module, no such token or a wrong PIN is a `KeyStoreError` naming which, and the module is
   * released again.
   */
  static open(options: TokenOptions): Pkcs11Token {
    const lib = acquire(options.module);
    let session: Buffer | undefined;
    try {
      const labels: string[] = [];
      let slot: Buffer | undefined;
      for (const s of lib.C_GetSlotList(true)) {
        const label = lib.C_GetTokenInfo(s).label.trimEnd();
        labels.push(label);
        if (label === options.tokenLabel) {
          slot = s;
          break;
        }
      }
      if (slot === undefined) {
        throw new KeyStoreError('E_HSM_TOKEN', `HSM: no token labelled ${JSON.stringify(options.tokenLabel)} in ${options.module} (tokens: ${labels.length === 0 ? 'none' : labels.map((l) => JSON.stringify(l)).join(', ')})`, {
          module: options.module,
        });
      }
      session = lib.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
      try {
        lib.C_Login(session, pkcs11.CKU_USER, options.pin);
      } catch (cause) {
        const code = codeName(cause);
        // Another session of this process may already be logged in (the login is per token).
        if (code !== 'CKR_USER_ALREADY_LOGGED_IN') {
          const why = code === 'CKR_PIN_INCORRECT' ? 'the PIN is wrong' : code === 'CKR_PIN_LOCKED' ? 'the PIN is locked' : 'the login failed';
          throw new KeyStoreError('E_HSM_LOGIN', `HSM: token ${JSON.stringify(options.tokenLabel)}: ${why} (${code})`, { module: options.module, token: options.tokenLabel }, { cause });
        }
      }
      return new Pkcs11Token(options.module, options.tokenLabel, lib, session);
    } catch (error) {
      if (session !== undefined) lib.C_CloseSession(session);
      release(options.module);
      if (error instanceof KeyStoreError) throw error;
      throw new KeyStoreError('E_HSM_UNREACHABLE', `HSM: token ${JSON.stringify(options.tokenLabel)} in ${options.module}: ${codeName(error)}`, { module: options.module }, { cause: error });
    }
  }

  get location(): string {
    return `pkcs11:${this.module}#${this.label}`;
  }

  /** The one object of `objectClass` labelled `label`; undefined when none; `E_HSM_KEY` when several. */
  find(objectClass: 'private' | 'public' | 'secret', label: string): ObjectHandle | undefined {
    const cls = objectClass === 'private' ? pkcs11.CKO_PRIVATE_KEY : objectClass === 'public' ? pkcs11.CKO_PUBLIC_KEY : pkcs11.CKO_SECRET_KEY;
    const found = this.#run('find', () => {
      this.#lib.C_FindObjectsInit(this.#session, [
        { type: pkcs11.CKA_CLASS, value: cls },
        { type: pkcs11.CKA_LABEL, value: label },
      ]);
      try {
        return this.#lib.C_FindObjects(this.#session, 2);
      } finally {
        this.#lib.C_FindObjectsFinal(this.#session);
      }
    });
    if (found.length > 1) throw new KeyStoreError('E_HSM_KEY', `HSM: ${this.location} holds more than one ${objectClass} key labelled ${JSON.stringify(label)}`, { label });
    return found[0];
  }

  /** A token Ed25519 key pair: the private half sensitive, never extractable, usable only to sign. */
  generateEd25519(label: string): { privateKey: ObjectHandle; publicKey: ObjectHandle } {
    return this.#run('Ed25519 key generation', () =>
      this.#lib.C_GenerateKeyPair(
        this.#session,
        { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
        [
          { type: pkcs11.CKA_TOKEN, value: true },
          { type: pkcs11.CKA_LABEL, value: label },
          { type: pkcs11.CKA_EC_PARAMS, value: ED25519_EC_PARAMS },
          { type: pkcs11.CKA_VERIFY, value: true },
        ],
        [
          { type: pkcs11.CKA_TOKEN, value: true },
          { type: pkcs11.CKA_LABEL, value: label },
          { type: pkcs11.CKA_PRIVATE, value: true },
          { type: pkcs11.CKA_SENSITIVE, value: true },
          { type: pkcs11.CKA_EXTRACTABLE, value: false },
          { type: pkcs11.CKA_SIGN, value: true },
          { type: pkcs11.CKA_DECRYPT, value: false },
          { type: pkcs11.CKA_UNWRAP, value: false },
          { type: pkcs11.CKA_DERIVE, value: false },
        ],
      ),
    );
  }

  /** A token AES-256 key: sensitive, never extractable, usable only to encrypt and decrypt. */
  generateAes256(label: string): ObjectHandle {
    return this.#run('AES key generation', () =>
      this.#lib.C_GenerateKey(this.#session, { mechanism: pkcs11.CKM_AES_KEY_GEN }, [
        { type: pkcs11.CKA_TOKEN, value: true },
        { type: pkcs11.CKA_LABEL, value: label },
        { type: pkcs11.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11.CKA_PRIVATE, value: true },
        { type: pkcs11.CKA_SENSITIVE, value: true },
        { type: pkcs11.CKA_EXTRACTABLE, value: false },
        { type: pkcs11.CKA_ENCRYPT, value: true },
        { type: pkcs11.CKA_DECRYPT, value: true },
        { type: pkcs11.CKA_WRAP, value: false },
        { type: pkcs11.CKA_UNWRAP, value: false },
      ]),
    );
  }

  /** Destroys a token object for good (C_DestroyObject): the rotated-out KEK. */
  destroy(key: ObjectHandle): void {
    this.#run('key destruction', () => this.#lib.C_DestroyObject(this.#session, key));
  }

  /** Gives a token object another CKA_LABEL: the rotated-in KEK takes the old one's. */
  relabel(key: ObjectHandle, label: string): void {
    this.#run('relabelling', () => this.#lib.C_SetAttributeValue(this.#session, key, [{ type: pkcs11.CKA_LABEL, value: label }]));
  }

  /** The boolean attributes that keep a private key in the token. */
  protection(key: ObjectHandle): { sensitive: boolean; extractable: boolean; neverExtractable: boolean; alwaysSensitive: boolean } {
    const attrs = this.#run('attribute read', () =>
      this.#lib.C_GetAttributeValue(this.#session, key, [
        { type: pkcs11.CKA_SENSITIVE },
        { type: pkcs11.CKA_EXTRACTABLE },
        { type: pkcs11.CKA_NEVER_EXTRACTABLE },
        { type: pkcs11.CKA_ALWAYS_SENSITIVE },
      ]),
    );
    const flag = (i: number): boolean => (attrs[i]?.value as Buffer | undefined)?.[0] === 1;
    return { sensitive: flag(0), extractable: flag(1), neverExtractable: flag(2), alwaysSensitive: flag(3) };
  }

  /** The raw 32-byte Ed25519 public key (CKA_EC_POINT, DER OCTET STRING or raw). */
  ed25519PublicKey(publicKey: ObjectHandle): Uint8Array {
    const [point] = this.#run('public key read', () => this.#lib.C_GetAttributeValue(this.#session, publicKey, [{ type: pkcs11.CKA_EC_POINT }]));
    const value = point?.value as Buffer | undefined;
    if (value?.length === 34 && value[0] === 0x04 && value[1] === 0x20) return new Uint8Array(value.subarray(2));
    if (value?.length === 32) return new Uint8Array(value);
    throw new KeyStoreError('E_HSM_KEY', `HSM: ${this.location}: the public key's CKA_EC_POINT is not an Ed25519 point`, {});
  }

  /** Pure Ed25519 (RFC 8032) inside the token: C_SignInit(CKM_EDDSA) then C_Sign. */
  signEd25519(privateKey: ObjectHandle, message: Uint8Array): Uint8Array {
    return this.#run('C_Sign', () => {
      this.#lib.C_SignInit(this.#session, { mechanism: CKM_EDDSA }, privateKey);
      return new Uint8Array(this.#lib.C_Sign(this.#session, Buffer.from(message.buffer, message.byteOffset, message.byteLength), Buffer.alloc(64)));
    });
  }

  /** AES-256-GCM in the token (96-bit IV, 128-bit tag): ciphertext ‖ tag. */
  encryptGcm(key: ObjectHandle, iv: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
    return this.#run('AES-GCM encryption', () => {
      this.#lib.C_EncryptInit(this.#session, this.#gcm(iv, ad), key);
      return new Uint8Array(this.#lib.C_Encrypt(this.#session, Buffer.from(plaintext), Buffer.alloc(plaintext.length + 16)));
    });
  }

  /** Throws `E_HSM_OPERATION` on a wrong key or any altered byte (the module checks the tag). */
  decryptGcm(key: ObjectHandle, iv: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array {
    return this.#run('AES-GCM decryption', () => {
      this.#lib.C_DecryptInit(this.#session, this.#gcm(iv, ad), key);
      return new Uint8Array(this.#lib.C_Decrypt(this.#session, Buffer.from(ciphertext), Buffer.alloc(ciphertext.length)));
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#lib.C_CloseSession(this.#session);
    } finally {
      release(this.module);
    }
  }

  #gcm(iv: Uint8Array, ad: Uint8Array): Pkcs11Types.Mechanism {
    return { mechanism: pkcs11.CKM_AES_GCM, parameter: { type: pkcs11.CK_PARAMS_AES_GCM, iv: Buffer.from(iv), aad: Buffer.from(ad), ivBits: iv.length * 8, tagBits: 128 } as Pkcs11Types.AesGCM };
  }

  #run<T>(what: string, fn: () => T): T {
    if (this.#closed) throw new KeyStoreError('E_HSM_CLOSED', `HSM: ${this.location}: the session is closed`, {});
    try {
      return fn();
    } catch (cause) {
      if (cause instanceof KeyStoreError) throw cause;
      throw new KeyStoreError('E_HSM_OPERATION', `HSM: ${this.location}: ${what} failed (${codeName(cause)})`, { operation: what }, { cause });
    }
  }
}
