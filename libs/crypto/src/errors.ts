import { BulwarkError } from '@bulwark/errors';

/**
 * Stable codes of crypto failures. Callers branch on these, never on messages.
 * - E_AEAD: an AEAD open failed (wrong key, nonce, associated data, or a forged tag).
 * - E_LOW_ORDER: X25519 gave the all-zero shared secret (RFC 7748 §6.1): the peer key is of low order.
 * - E_KEY: a key, nonce, tag or signature has the wrong length.
 * - E_LENGTH: a requested output length is out of range (random bytes, HKDF), or sealInto's output range does not fit or overlaps the plaintext.
 * - E_UNAVAILABLE: the provider asked for cannot run on this host (sodium without its native addon).
 */
export type CryptoErrorCode = 'E_AEAD' | 'E_LOW_ORDER' | 'E_KEY' | 'E_LENGTH' | 'E_UNAVAILABLE';

export class CryptoError extends BulwarkError {
  declare readonly code: CryptoErrorCode;

  constructor(code: CryptoErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, context, options);
  }
}

export function isCryptoError(value: unknown, code?: CryptoErrorCode): value is CryptoError {
  return value instanceof CryptoError && (code === undefined || value.code === code);
}
