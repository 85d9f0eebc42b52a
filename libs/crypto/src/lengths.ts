import { CryptoError } from './errors.js';

/** Fixed sizes of every primitive (RFC 8032, RFC 7748, RFC 8439, SP 800-38D, FIPS 180-4). */
export const sizes = {
  ed25519SecretKey: 32,
  ed25519PublicKey: 32,
  ed25519Signature: 64,
  x25519SecretKey: 32,
  x25519PublicKey: 32,
  x25519SharedSecret: 32,
  aeadKey: 32,
  aeadNonce: 12,
  aeadTag: 16,
  sha256: 32,
  /** RFC 5869 §2.3: L <= 255 * HashLen. */
  hkdfSha256MaxLength: 255 * 32,
} as const;

/**
 * Throws E_KEY unless `bytes` is a Uint8Array of exactly `expected` bytes.
 * `what` names the argument and its primitive, e.g. 'chacha20poly1305 nonce'.
 */
export function requireLength(bytes: Uint8Array, expected: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) {
    throw new CryptoError('E_KEY', `${what}: expected ${expected} bytes, got ${describe(bytes)}`, { what, expected });
  }
  if (bytes.length !== expected) {
    throw new CryptoError('E_KEY', `${what}: expected ${expected} bytes, got ${bytes.length}`, {
      what,
      expected,
      actual: bytes.length,
    });
  }
}

/** A sealed message too short to hold its tag cannot be authentic: E_AEAD, like any other failed open. */
export function requireSealed(sealed: Uint8Array, what: string): void {
  if (!(sealed instanceof Uint8Array) || sealed.length < sizes.aeadTag) {
    const actual = sealed instanceof Uint8Array ? sealed.length : describe(sealed);
    throw new CryptoError('E_AEAD', `${what}: sealed message must hold at least the ${sizes.aeadTag}-byte tag, got ${actual}`, {
      what,
      expected: sizes.aeadTag,
    });
  }
}

/** Throws E_LENGTH unless `length` is an integer in [min, max]. */
export function requireOutputLength(length: number, min: number, max: number, what: string): void {
  if (!Number.isSafeInteger(length) || length < min || length > max) {
    throw new CryptoError('E_LENGTH', `${what}: length must be an integer from ${min} to ${max}, got ${String(length)}`, {
      what,
      min,
      max,
      actual: length,
    });
  }
}

/**
 * Throws E_LENGTH unless `length` bytes fit in `output` at `offset` without overlapping `input`
 * (an AEAD writing over its own plaintext would read bytes it already replaced).
 */
export function requireOutputRange(output: Uint8Array, offset: number, length: number, input: Uint8Array, what: string): void {
  if (!(output instanceof Uint8Array) || !Number.isSafeInteger(offset) || offset < 0 || offset + length > output.length) {
    const size = output instanceof Uint8Array ? `a ${output.length}-byte buffer` : describe(output);
    throw new CryptoError('E_LENGTH', `${what}: ${length} bytes do not fit at offset ${String(offset)} of ${size}`, { what, offset, length });
  }
  if (input.buffer === output.buffer && input.length > 0) {
    const start = output.byteOffset + offset;
    if (start < input.byteOffset + input.length && input.byteOffset < start + length) {
      throw new CryptoError('E_LENGTH', `${what}: the output range overlaps the plaintext`, { what, offset, length });
    }
  }
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
}
