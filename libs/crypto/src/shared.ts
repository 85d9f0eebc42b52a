import { CryptoError } from './errors.js';

/**
 * Both providers draw from the OS CSPRNG, and WebCrypto's getRandomValues (which noble uses)
 * stops at 65,536 bytes per call; one limit for both keeps them interchangeable.
 */
export const MAX_RANDOM_BYTES = 65_536;

/** Constant time in the length only: the X25519 output is secret until it is known to be unusable. */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i] ?? 0;
  return acc === 0;
}

/** X25519 gave the all-zero shared secret: the peer key is of low order. Every provider raises this one. */
export function lowOrder(cause?: unknown): CryptoError {
  return new CryptoError(
    'E_LOW_ORDER',
    'x25519 shared secret: the peer public key is of low order (all-zero shared secret, RFC 7748 §6.1)',
    {},
    cause === undefined ? undefined : { cause },
  );
}
