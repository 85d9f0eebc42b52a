import type { CryptoProvider } from '@bulwark/crypto';
import { KeyStoreError } from './errors.js';
import { isKeyOwner } from './principal-id.js';
import type { KeyWrapper } from './kek.js';

/**
 * One private key at rest (DESIGN §8): a JSON file
 *   { format, principal, kind, version, created, publicKey, nonce, ciphertext }
 * with ciphertext = AES-256-GCM(KEK, nonce, raw 32-byte private key, ad = wrapAd(...)).
 * The AD binds the format, owner, kind, version and public key, so a file copied to
 * another principal's name, kind or version, or given another public key, fails its tag.
 */
export const WRAPPED_KEY_FORMAT = 'bulwark-wrapped-key/v1';

/**
 * `ed25519` and `x25519` are a principal's identity keys. The `nats-*` kinds are NATS nkey
 * seeds (DESIGN §3a): raw 32-byte Ed25519 seeds whose role (the nkey prefix O, A or U) is the
 * kind, so a user seed can never be read back as an account's: `nats-operator`,
 * `nats-account` (the BULWARK account) and `nats-system-account` are owned by `root`;
 * `nats-user` by each principal (and by `root` for the operator's own user).
 */
export type KeyKind = 'ed25519' | 'x25519' | NkeyKind;
export type NkeyKind = 'nats-operator' | 'nats-account' | 'nats-system-account' | 'nats-user';
export const NKEY_KINDS: readonly NkeyKind[] = ['nats-operator', 'nats-account', 'nats-system-account', 'nats-user'];
export const KEY_KINDS: readonly KeyKind[] = ['ed25519', 'x25519', ...NKEY_KINDS];
/** The two kinds that make a principal's identity (one version holds both). */
export const IDENTITY_KEY_KINDS: readonly KeyKind[] = ['ed25519', 'x25519'];

/** Which key: its owner (a principal id or `root`), algorithm and version (1, 2, ... per rotation). */
export interface KeyRef {
  readonly principal: string;
  readonly kind: KeyKind;
  readonly version: number;
}

/** What anyone may know about a stored key: no secret in it. */
export interface StoredKeyInfo extends KeyRef {
  readonly publicKey: Uint8Array;
  /** ISO 8601, when the key was stored. */
  readonly created: string;
}

export interface WrappedKeyFile extends StoredKeyInfo {
  readonly format: typeof WRAPPED_KEY_FORMAT;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

const KEY_LENGTH = 32;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const MAX_VERSION = 0xffff_ffff;

export function describeKey(ref: KeyRef): string {
  return `${ref.principal} ${ref.kind} v${ref.version}`;
}

/** The ref's own checks; a bad ref is a programming error or a tampered listing, never silently used. */
export function checkKeyRef(ref: KeyRef): void {
  if (!isKeyOwner(ref.principal)) throw new KeyStoreError('E_KEY_REF', `key store: ${JSON.stringify(ref.principal)} is not a principal id or "root"`, {});
  if (!KEY_KINDS.includes(ref.kind)) throw new KeyStoreError('E_KEY_REF', `key store: kind ${JSON.stringify(ref.kind)} is not one of ${KEY_KINDS.join(', ')}`, {});
  if (!Number.isInteger(ref.version) || ref.version < 1 || ref.version > MAX_VERSION) {
    throw new KeyStoreError('E_KEY_REF', `key store: version ${String(ref.version)} of ${ref.principal} is not an integer from 1 to ${MAX_VERSION}`, {});
  }
}

/**
 * Canonical AD bytes: each text field as u8 length + ASCII, the version as u32 LE, the public
 * key as u8 length + bytes, in this order: format, principal, kind, version, publicKey.
 * Lengths make the encoding injective, so no two distinct tuples share an AD.
 */
export function wrapAd(ref: KeyRef, publicKey: Uint8Array): Uint8Array {
  checkKeyRef(ref);
  const parts: Uint8Array[] = [];
  for (const text of [WRAPPED_KEY_FORMAT, ref.principal, ref.kind]) {
    const bytes = Buffer.from(text, 'latin1');
    parts.push(Uint8Array.of(bytes.length), bytes);
  }
  const version = new Uint8Array(4);
  new DataView(version.buffer).setUint32(0, ref.version, true);
  parts.push(version, Uint8Array.of(publicKey.length), publicKey);
  return new Uint8Array(Buffer.concat(parts));
}

export function publicKeyOf(provider: CryptoProvider, kind: KeyKind, secretKey: Uint8Array): Uint8Array {
  switch (kind) {
    case 'ed25519':
    case 'nats-operator':
    case 'nats-account':
    case 'nats-system-account':
    case 'nats-user':
      // An nkey is an Ed25519 key: its public key is the seed's Ed25519 public key.
      return provider.ed25519.publicKey(secretKey);
    case 'x25519':
      return provider.x25519.publicKey(secretKey);
    default: {
      const unreachable: never = kind;
      throw new Error(`unhandled key kind ${String(unreachable)}`);
    }
  }
}

export async function wrapKey(wrapper: KeyWrapper, ref: KeyRef, publicKey: Uint8Array, secretKey: Uint8Array, created: Date): Promise<WrappedKeyFile> {
  if (secretKey.length !== KEY_LENGTH || publicKey.length !== KEY_LENGTH) {
    throw new KeyStoreError('E_KEY_REF', `key store: ${describeKey(ref)} keys must be ${KEY_LENGTH} bytes`, {});
  }
  const { nonce, ciphertext } = await wrapper.wrap(secretKey, wrapAd(ref, publicKey));
  return { format: WRAPPED_KEY_FORMAT, ...pickRef(ref), created: created.toISOString(), publicKey: publicKey.slice(), nonce, ciphertext };
}

/**
 * The private key, after the GCM tag and the public key both check out. The AD is built
 * from the ref the caller asked for, not from the file's own fields, so a renamed file
 * fails here even if its JSON was edited to match its new name.
 */
export async function unwrapKey(provider: CryptoProvider, wrapper: KeyWrapper, file: WrappedKeyFile, ref: KeyRef, path: string): Promise<Uint8Array> {
  let secretKey: Uint8Array;
  try {
    secretKey = await wrapper.unwrap(file.nonce, file.ciphertext, wrapAd(ref, file.publicKey));
  } catch (cause) {
    throw new KeyStoreError(
      'E_KEY_UNWRAP',
      `key file ${path} does not open with the key-encryption key from ${wrapper.source}: wrong KEK, or the file was altered or moved from another key`,
      { path, key: describeKey(ref), kekSource: wrapper.source },
      { cause },
    );
  }
  if (secretKey.length !== KEY_LENGTH || !provider.equal(publicKeyOf(provider, ref.kind, secretKey), file.publicKey)) {
    throw new KeyStoreError('E_KEY_FILE', `key file ${path}: the private key does not match its public key`, { path, key: describeKey(ref) });
  }
  return secretKey;
}

function pickRef(ref: KeyRef): KeyRef {
  return { principal: ref.principal, kind: ref.kind, version: ref.version };
}

/** The file's JSON text; binary fields are standard padded base64. */
export function encodeWrappedKeyFile(file: WrappedKeyFile): string {
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
  const json = {
    format: file.format,
    principal: file.principal,
    kind: file.kind,
    version: file.version,
    created: file.created,
    publicKey: b64(file.publicKey),
    nonce: b64(file.nonce),
    ciphertext: b64(file.ciphertext),
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;

/** Parses and checks every field; throws `E_KEY_FILE` naming the file and the first bad field. */
export function decodeWrappedKeyFile(text: string, path: string): WrappedKeyFile {
  const fail = (why: string): KeyStoreError => new KeyStoreError('E_KEY_FILE', `key file ${path}: ${why}`, { path });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw fail('not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fail('not a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== WRAPPED_KEY_FORMAT) throw fail(`format is not "${WRAPPED_KEY_FORMAT}"`);
  const bytes = (field: string, length: number): Uint8Array => {
    const value = o[field];
    if (typeof value !== 'string' || !BASE64.test(value)) throw fail(`${field} is not base64`);
    const decoded = new Uint8Array(Buffer.from(value, 'base64'));
    if (decoded.length !== length) throw fail(`${field} is ${decoded.length} bytes, expected ${length}`);
    return decoded;
  };
  if (typeof o.principal !== 'string' || typeof o.kind !== 'string' || typeof o.version !== 'number') throw fail('principal, kind or version missing');
  if (typeof o.created !== 'string' || !ISO_TIME.test(o.created)) throw fail('created is not an ISO 8601 UTC time');
  const ref = { principal: o.principal, kind: o.kind as KeyKind, version: o.version };
  try {
    checkKeyRef(ref);
  } catch (error) {
    throw fail((error as Error).message);
  }
  return {
    format: WRAPPED_KEY_FORMAT,
    ...ref,
    created: o.created,
    publicKey: bytes('publicKey', KEY_LENGTH),
    nonce: bytes('nonce', NONCE_LENGTH),
    ciphertext: bytes('ciphertext', KEY_LENGTH + TAG_LENGTH),
  };
}
