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
