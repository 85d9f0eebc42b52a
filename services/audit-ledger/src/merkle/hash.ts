/**
 * RFC 6962 §2.1 (RFC 9162 §2.1.1) hashing with SHA-256. The leaf input is an event's
 * 32-byte event_hash; the 0x00 / 0x01 prefixes keep a leaf from ever passing for a node.
 */
import type { CryptoProvider } from '@bulwark/crypto';

export type Hasher = Pick<CryptoProvider, 'sha256' | 'equal'>;

export const MERKLE_HASH_LENGTH = 32;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

export function leafHash(hasher: Hasher, leafInput: Uint8Array): Uint8Array {
  return hasher.sha256([LEAF_PREFIX, leafInput]);
}

export function nodeHash(hasher: Hasher, left: Uint8Array, right: Uint8Array): Uint8Array {
  return hasher.sha256([NODE_PREFIX, left, right]);
}

/** MTH({}) = SHA-256() (RFC 6962 §2.1). */
export function emptyRoot(hasher: Hasher): Uint8Array {
  return hasher.sha256(new Uint8Array(0));
}
