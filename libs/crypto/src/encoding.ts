/**
 * Every byte and key encoding Bulwark uses, in one place: hex, base64, UTF-8, and the
 * RFC 8410 DER/PEM forms of Ed25519 and X25519 keys (SPKI for public keys, PKCS#8 for
 * secret keys), so that keys move between Bulwark, node:crypto, OpenSSL and other tools.
 * Decoders are strict: bad input is an InputError (E_ENCODING) naming what was wrong.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { bytesToHex, concatBytes as nobleConcat, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { InputError } from '@bulwark/errors';

export type KeyAlgorithm = 'ed25519' | 'x25519';
export const keyAlgorithms: readonly KeyAlgorithm[] = ['ed25519', 'x25519'];

const RAW_KEY_LENGTH = 32;

/** A Buffer as a plain Uint8Array (same memory), so callers never see Buffer's looser methods. */
export function asBytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function encodingError(what: string, why: string, context: Record<string, unknown> = {}): InputError {
  return new InputError('E_ENCODING', `${what}: ${why}`, { what, ...context });
}

// ---------------------------------------------------------------------------------------
// Bytes <-> text

export function toHex(bytes: Uint8Array): string {
  return bytesToHex(bytes);
}

/** Lower- or upper-case hex of even length; anything else is rejected (Buffer would truncate silently). */
export function fromHex(hex: string, what = 'hex'): Uint8Array {
  try {
    return hexToBytes(hex);
  } catch (cause) {
    throw encodingError(what, `not valid hex (${(cause as Error).message})`, { length: hex.length });
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export function toBase64(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64');
}

/** Padded standard base64 (RFC 4648 §4) in canonical form: no whitespace, zero pad bits. */
export function fromBase64(text: string, what = 'base64'): Uint8Array {
  if (!BASE64.test(text)) throw encodingError(what, 'not padded base64 (RFC 4648 §4)', { length: text.length });
  const bytes = Buffer.from(text, 'base64');
  // Non-zero pad bits decode to the same bytes as the canonical text; refusing them keeps one encoding per value.
  if (bytes.toString('base64') !== text) throw encodingError(what, 'non-canonical base64 (non-zero pad bits)');
  return asBytes(bytes);
}

export function toBase64Url(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64url');
}

/** Unpadded base64url (RFC 4648 §5), as JWK and JWS use it, in canonical form. */
export function fromBase64Url(text: string, what = 'base64url'): Uint8Array {
  if (!BASE64URL.test(text) || text.length % 4 === 1) {
    throw encodingError(what, 'not unpadded base64url (RFC 4648 §5)', { length: text.length });
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw encodingError(what, 'non-canonical base64url (non-zero pad bits)');
  return asBytes(bytes);
}

/** UTF-8 encoding of a string. */
export function utf8(text: string): Uint8Array {
  return utf8ToBytes(text);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8 decoding: malformed sequences are an error, never U+FFFD. */
export function utf8Decode(bytes: Uint8Array, what = 'utf-8 text'): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw encodingError(what, 'not valid UTF-8', { length: bytes.length });
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return nobleConcat(...parts);
}

// ---------------------------------------------------------------------------------------
// Keys: RFC 8410 DER and PEM

/**
 * RFC 8410 §4 SubjectPublicKeyInfo and §7 OneAsymmetricKey (version 0, no attributes) have a
 * fixed DER layout for 32-byte keys: a constant prefix (lengths, the id-Ed25519 1.3.101.112 or
 * id-X25519 1.3.101.110 OID, and the BIT/OCTET STRING headers) followed by the raw key.
 */
const SPKI_PREFIX: Record<KeyAlgorithm, Uint8Array> = {
  ed25519: hexToBytes('302a300506032b6570032100'),
  x25519: hexToBytes('302a300506032b656e032100'),
};
const PKCS8_PREFIX: Record<KeyAlgorithm, Uint8Array> = {
  ed25519: hexToBytes('302e020100300506032b657004220420'),
  x25519: hexToBytes('302e020100300506032b656e04220420'),
};

function requireRawKey(algorithm: KeyAlgorithm, raw: Uint8Array, kind: 'public' | 'secret'): void {
  if (!(raw instanceof Uint8Array) || raw.length !== RAW_KEY_LENGTH) {
    const actual = raw instanceof Uint8Array ? raw.length : typeof raw;
    throw encodingError(`${algorithm} ${kind} key`, `expected ${RAW_KEY_LENGTH} raw bytes, got ${actual}`);
  }
}

function hasPrefix(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length !== prefix.length + RAW_KEY_LENGTH) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** Raw 32-byte public key -> DER SubjectPublicKeyInfo (RFC 8410 §4). */
export function publicKeyToSpki(algorithm: KeyAlgorithm, raw: Uint8Array): Uint8Array {
  requireRawKey(algorithm, raw, 'public');
  return nobleConcat(SPKI_PREFIX[algorithm], raw);
}

/** Raw 32-byte secret key (Ed25519 seed or X25519 scalar) -> DER PKCS#8 (RFC 8410 §7). */
export function secretKeyToPkcs8(algorithm: KeyAlgorithm, raw: Uint8Array): Uint8Array {
  requireRawKey(algorithm, raw, 'secret');
  return nobleConcat(PKCS8_PREFIX[algorithm], raw);
}

/** DER SubjectPublicKeyInfo -> raw 32-byte public key; the algorithm must match. */
export function publicKeyFromSpki(algorithm: KeyAlgorithm, der: Uint8Array): Uint8Array {
  if (hasPrefix(der, SPKI_PREFIX[algorithm])) return der.slice(SPKI_PREFIX[algorithm].length);
  // Any other layout (e.g. a key of another algorithm) goes through OpenSSL's parser, which names what it found.
  const what = `${algorithm} public key (SPKI DER)`;
  let x: string | undefined;
  try {
    const key = createPublicKey({ key: asBuffer(der), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== algorithm) {
      throw encodingError(what, `holds a ${key.asymmetricKeyType ?? 'non-asymmetric'} key`);
    }
    x = key.export({ format: 'jwk' }).x;
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    throw encodingError(what, `not a DER SubjectPublicKeyInfo (${(cause as Error).message})`);
  }
  if (x === undefined) throw encodingError(what, 'has no public key');
  return fromBase64Url(x, what);
}

/**
 * DER PKCS#8 -> raw 32-byte secret key; the algorithm must match. Anything but the fixed
 * version-0 layout goes through OpenSSL's parser (node 20's OpenSSL 3.0 reads version 0 with
 * attributes, not the version-1 form with an embedded public key).
 */
export function secretKeyFromPkcs8(algorithm: KeyAlgorithm, der: Uint8Array): Uint8Array {
  if (hasPrefix(der, PKCS8_PREFIX[algorithm])) return der.slice(PKCS8_PREFIX[algorithm].length);
  const what = `${algorithm} secret key (PKCS#8 DER)`;
  let d: string | undefined;
  try {
    const key = createPrivateKey({ key: asBuffer(der), format: 'der', type: 'pkcs8' });
    if (key.asymmetricKeyType !== algorithm) {
      throw encodingError(what, `holds a ${key.asymmetricKeyType ?? 'non-asymmetric'} key`);
    }
    d = key.export({ format: 'jwk' }).d;
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    throw encodingError(what, `not a DER PKCS#8 private key (${(cause as Error).message})`);
  }
  if (d === undefined) throw encodingError(what, 'has no secret key');
  return fromBase64Url(d, what);
}

const PEM_LINE = 64;
type PemLabel = 'PUBLIC KEY' | 'PRIVATE KEY';

function toPem(label: PemLabel, der: Uint8Array): string {
  const body = toBase64(der).match(new RegExp(`.{1,${PEM_LINE}}`, 'g')) ?? [];
  return `-----BEGIN ${label}-----\n${body.join('\n')}\n-----END ${label}-----\n`;
}

/** RFC 7468 strict-ish reading: exactly one block with the expected label, base64 lines inside. */
function fromPem(label: PemLabel, pem: string, what: string): Uint8Array {
  const match = /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END ([A-Z0-9 ]+)-----\s*$/.exec(pem);
  if (!match) throw encodingError(what, `not a single PEM block labelled '${label}'`);
  const [, begin, body = '', end] = match;
  if (begin !== label || end !== label) {
    throw encodingError(what, `PEM label is '${begin ?? ''}', expected '${label}'`);
  }
  return fromBase64(body.replace(/\r?\n/g, ''), what);
}

export function publicKeyToPem(algorithm: KeyAlgorithm, raw: Uint8Array): string {
  return toPem('PUBLIC KEY', publicKeyToSpki(algorithm, raw));
}

export function publicKeyFromPem(algorithm: KeyAlgorithm, pem: string): Uint8Array {
  return publicKeyFromSpki(algorithm, fromPem('PUBLIC KEY', pem, `${algorithm} public key (PEM)`));
}

export function secretKeyToPem(algorithm: KeyAlgorithm, raw: Uint8Array): string {
  return toPem('PRIVATE KEY', secretKeyToPkcs8(algorithm, raw));
}

export function secretKeyFromPem(algorithm: KeyAlgorithm, pem: string): Uint8Array {
  return secretKeyFromPkcs8(algorithm, fromPem('PRIVATE KEY', pem, `${algorithm} secret key (PEM)`));
}
