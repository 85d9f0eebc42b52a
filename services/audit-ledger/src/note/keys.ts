/**
 * Signed-note keys (c2sp.org/signed-note, "Verifier keys"), Ed25519 in two signature
 * types: 0x01, plain note signatures (the log's own), and 0x04, timestamped
 * cosignature/v1 (c2sp.org/tlog-cosignature, what witnesses sign with).
 * Key ID = first 4 bytes of SHA-256(name || 0x0A || type || public key).
 *
 *   verifier key: <name>+<key ID, 8 lowercase hex>+<base64(type || 32-byte public key)>
 *   signer key:   PRIVATE+KEY+<name>+<key ID>+<base64(type || 32-byte seed)>   (Go's x/mod/sumdb/note form)
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { fromBase64, toBase64 } from '@bulwark/crypto';
import { LedgerError } from '../errors.js';

export const ED25519_SIGNATURE_TYPE = 0x01;
/** Timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature, "cosignature/v1"). */
export const COSIGNATURE_V1_TYPE = 0x04;
export type NoteKeyType = typeof ED25519_SIGNATURE_TYPE | typeof COSIGNATURE_V1_TYPE;

function isNoteKeyType(value: number | undefined): value is NoteKeyType {
  return value === ED25519_SIGNATURE_TYPE || value === COSIGNATURE_V1_TYPE;
}

export interface VerifierKey {
  readonly name: string;
  /** What the key signs: plain notes (0x01) or cosignature/v1 messages (0x04). */
  readonly type: NoteKeyType;
  /** Big-endian uint32 from the first 4 bytes of the key hash. */
  readonly keyId: number;
  readonly publicKey: Uint8Array;
}

export interface SignerKey extends VerifierKey {
  /** 32-byte RFC 8032 seed. */
  readonly secretKey: Uint8Array;
}

type KeyCrypto = Pick<CryptoProvider, 'sha256' | 'ed25519'>;

const utf8 = new TextEncoder();

/** Names are non-empty, with no whitespace, no `+` and no control characters (a name is a token of the signature line). */
export function isValidKeyName(name: string): boolean {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  return name.length > 0 && !/[\s+\u0000-\u001f\u007f]/u.test(name);
}

function keyError(what: string, why: string): LedgerError {
  return new LedgerError('E_KEY', `${what}: ${why}`, { what });
}

export function computeKeyId(crypto: Pick<CryptoProvider, 'sha256'>, name: string, publicKey: Uint8Array, type: NoteKeyType = ED25519_SIGNATURE_TYPE): number {
  const digest = crypto.sha256([utf8.encode(name), Uint8Array.of(0x0a, type), publicKey]);
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0, false);
}

export function keyIdHex(keyId: number): string {
  return keyId.toString(16).padStart(8, '0');
}

export function verifierKey(crypto: Pick<CryptoProvider, 'sha256'>, name: string, publicKey: Uint8Array, type: NoteKeyType = ED25519_SIGNATURE_TYPE): VerifierKey {
  if (!isValidKeyName(name)) throw keyError('key name', `${JSON.stringify(name)} is empty or contains whitespace, "+" or a control character`);
  if (publicKey.length !== 32) throw keyError(`key ${name}`, `Ed25519 public key is ${publicKey.length} bytes, expected 32`);
  if (!isNoteKeyType(type)) throw keyError(`key ${name}`, `signature type ${String(type)} is not 0x01 or 0x04`);
  return { name, type, keyId: computeKeyId(crypto, name, publicKey, type), publicKey };
}

export function signerKey(crypto: KeyCrypto, name: string, secretKey: Uint8Array, type: NoteKeyType = ED25519_SIGNATURE_TYPE): SignerKey {
  if (secretKey.length !== 32) throw keyError(`key ${name}`, `Ed25519 seed is ${secretKey.length} bytes, expected 32`);
  return { ...verifierKey(crypto, name, crypto.ed25519.publicKey(secretKey), type), secretKey };
}

/** The public half of a signer key. */
export function publicPart(key: SignerKey): VerifierKey {
  return { name: key.name, type: key.type, keyId: key.keyId, publicKey: key.publicKey };
}

function typedKey(type: NoteKeyType, key: Uint8Array): string {
  const bytes = new Uint8Array(33);
  bytes[0] = type;
  bytes.set(key, 1);
  return toBase64(bytes);
}

export function formatVerifierKey(key: VerifierKey): string {
  return `${key.name}+${keyIdHex(key.keyId)}+${typedKey(key.type, key.publicKey)}`;
}

export function formatSignerKey(key: SignerKey): string {
  return `PRIVATE+KEY+${key.name}+${keyIdHex(key.keyId)}+${typedKey(key.type, key.secretKey)}`;
}

/** `<name>+<hex id>+<base64>`; the base64 may itself contain `+`, the name may not. */
function splitKey(text: string, what: string): { name: string; idHex: string; type: NoteKeyType; key: Uint8Array } {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (first <= 0 || second < 0) throw keyError(what, 'expected <name>+<key id>+<base64 key>');
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  if (!isValidKeyName(name)) throw keyError(what, `name ${JSON.stringify(name)} contains whitespace or a control character`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw keyError(what, `key id ${JSON.stringify(idHex)} is not 8 lowercase hex digits`);
  let typed: Uint8Array;
  try {
    typed = fromBase64(text.slice(second + 1), `${what} base64`);
  } catch (cause) {
    throw new LedgerError('E_KEY', `${what}: key is not canonical padded base64`, { what }, { cause });
  }
  const type = typed[0];
  if (typed.length !== 33 || !isNoteKeyType(type)) {
    throw keyError(what, `key must be a type byte (0x01 Ed25519 or 0x04 Ed25519 cosignature/v1) and 32 key bytes, got ${typed.length} bytes of type 0x${(type ?? 0).toString(16).padStart(2, '0')}`);
  }
  return { name, idHex, type, key: typed.subarray(1) };
}

/** Parses a verifier key and checks its key ID against its name and public key. */
export function parseVerifierKey(crypto: Pick<CryptoProvider, 'sha256'>, text: string): VerifierKey {
  const { name, idHex, type, key } = splitKey(text, 'verifier key');
  const parsed = verifierKey(crypto, name, Uint8Array.from(key), type);
  if (keyIdHex(parsed.keyId) !== idHex) throw keyError(`verifier key ${name}`, `key id ${idHex} does not match the key (computed ${keyIdHex(parsed.keyId)})`);
  return parsed;
}

/** Parses a `PRIVATE+KEY+...` signer key and checks its key ID against the derived public key. */
export function parseSignerKey(crypto: KeyCrypto, text: string): SignerKey {
  const prefix = 'PRIVATE+KEY+';
  if (!text.startsWith(prefix)) throw keyError('signer key', 'does not start with PRIVATE+KEY+');
  const { name, idHex, type, key } = splitKey(text.slice(prefix.length), 'signer key');
  const parsed = signerKey(crypto, name, Uint8Array.from(key), type);
  if (keyIdHex(parsed.keyId) !== idHex) throw keyError(`signer key ${name}`, `key id ${idHex} does not match the key (computed ${keyIdHex(parsed.keyId)})`);
  return parsed;
}
