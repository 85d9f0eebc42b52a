/**
 * RFC 6962 §2.1 (RFC 9162 §2.1.1) hashing with SHA-256. The leaf input is an event's
 * 32-byte event_hash; the 0x00 / 0x01 prefixes keep a leaf from ever passing for a node.
 */
import type { CryptoProvider } from '@bulwark/crypto';

export type Hasher = Pick<CryptoProvider, 'sha256' | 'equal'>;

export const MERKLE_HASH_LENGTH = 32;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;
/** One contiguous input per hash (a one-shot digest, no per-call part arrays); reused, as hashing is synchronous. */
const leafInput = new Uint8Array(1 + MERKLE_HASH_LENGTH);
const nodeInput = new Uint8Array(1 + 2 * MERKLE_HASH_LENGTH);
leafInput[0] = LEAF_PREFIX;
nodeInput[0] = NODE_PREFIX;

export function leafHash(hasher: Hasher, leaf: Uint8Array): Uint8Array {
  // Leaves are event hashes; anything else is hashed as it is (the prefix keeps it a leaf).
  if (leaf.length !== MERKLE_HASH_LENGTH) return hasher.sha256([Uint8Array.of(LEAF_PREFIX), leaf]);
  leafInput.set(leaf, 1);
  return hasher.sha256(leafInput);
}

export function nodeHash(hasher: Hasher, left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== MERKLE_HASH_LENGTH || right.length !== MERKLE_HASH_LENGTH) return hasher.sha256([Uint8Array.of(NODE_PREFIX), left, right]);
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + MERKLE_HASH_LENGTH);
  return hasher.sha256(nodeInput);
}

/** MTH({}) = SHA-256() (RFC 6962 §2.1). */
export function emptyRoot(hasher: Hasher): Uint8Array {
  return hasher.sha256(new Uint8Array(0));
}
