/**
 * The right edge of an RFC 6962 tree: the roots of the perfect subtrees that make up
 * leaves [0, size), one per set bit of size, largest (leftmost) first. Appending a leaf
 * touches only this edge (O(log n) hashes, amortised 1), and the root is the edge folded
 * from the right, so the ledger never recomputes the tree to append or to checkpoint.
 *
 * A node is named by (level, index): it covers leaves [index·2^level, (index+1)·2^level).
 * Sizes and indices are JS numbers (safe to 2^53), so arithmetic uses / and % rather
 * than 32-bit bit operators.
 */
import { LedgerError } from '../errors.js';
import { MERKLE_HASH_LENGTH, emptyRoot, nodeHash, type Hasher } from './hash.js';

export interface NodeId {
  readonly level: number;
  readonly index: number;
}

export interface TreeNode extends NodeId {
  readonly hash: Uint8Array;
}

/** The node ids of the right edge of a tree of `size` leaves, left to right. */
export function edgeNodeIds(size: number): NodeId[] {
  return rangeNodeIds(0, size);
}

/**
 * The perfect subtrees that make up leaves [start, end), largest first, for a range
 * that appears in the RFC 6962 recursion (start is a multiple of a power of two at
 * least as large as end − start). Its hash is these nodes folded from the right.
 */
export function rangeNodeIds(start: number, end: number): NodeId[] {
  const ids: NodeId[] = [];
  let at = start;
  for (let level = Math.floor(Math.log2(Math.max(end - start, 1))) + 1; level >= 0; level--) {
    const width = 2 ** level;
    if (end - at >= width) {
      if (at % width !== 0) throw new LedgerError('E_PROOF', `range [${start}, ${end}) is not a subtree of an RFC 6962 tree`, { start, end });
      ids.push({ level, index: at / width });
      at += width;
    }
  }
  return ids;
}

/** MTH of a range given its perfect subtrees left to right: fold from the right. */
export function foldRight(hasher: Hasher, hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return emptyRoot(hasher);
  let root = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) root = nodeHash(hasher, hashes[i]!, root);
  return root;
}

export class CompactRange {
  readonly #hasher: Hasher;
  #size: number;
  #edge: Uint8Array[];

  /** `edge` must be the hashes of edgeNodeIds(size), in that order. */
  constructor(hasher: Hasher, size = 0, edge: readonly Uint8Array[] = []) {
    const expected = edgeNodeIds(size).length;
    if (!Number.isSafeInteger(size) || size < 0 || edge.length !== expected || edge.some((h) => h.length !== MERKLE_HASH_LENGTH)) {
      throw new LedgerError('E_LEDGER', `compact range of size ${size} needs ${expected} hashes of ${MERKLE_HASH_LENGTH} bytes, got ${edge.length}`, { size });
    }
    this.#hasher = hasher;
    this.#size = size;
    this.#edge = [...edge];
  }

  get size(): number {
    return this.#size;
  }

  /** The right-edge hashes, left to right (what the ledger persists to resume). */
  get edge(): readonly Uint8Array[] {
    return [...this.#edge];
  }

  /** Adds a leaf hash; returns every node this completed (the leaf itself first), to be stored for proofs. */
  append(leaf: Uint8Array): TreeNode[] {
    if (leaf.length !== MERKLE_HASH_LENGTH) throw new LedgerError('E_LEDGER', `leaf hash is ${leaf.length} bytes, expected ${MERKLE_HASH_LENGTH}`);
    let index = this.#size;
    let level = 0;
    let hash = leaf;
    const created: TreeNode[] = [{ level, index, hash }];
    // Each trailing 1 bit of the old size is a left sibling waiting on the edge.
    while (index % 2 === 1) {
      const left = this.#edge.pop()!;
      hash = nodeHash(this.#hasher, left, hash);
      level += 1;
      index = (index - 1) / 2;
      created.push({ level, index, hash });
    }
    this.#edge.push(hash);
    this.#size += 1;
    return created;
  }

  root(): Uint8Array {
    return foldRight(this.#hasher, this.#edge);
  }

  clone(): CompactRange {
    return new CompactRange(this.#hasher, this.#size, this.#edge);
  }
}
