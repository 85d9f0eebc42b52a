/**
 * Inclusion and consistency proofs of RFC 9162 §2.1.3 / §2.1.4 (the RFC 6962 tree).
 *
 * Generation is split in two so that a store answers it with one query: a pure plan
 * (which perfect subtrees each proof element is made of, from the recursive PATH and
 * SUBPROOF definitions) and a resolution (fetch those stored nodes, fold each element).
 * Verification is the iterative algorithm of §2.1.3.2 and §2.1.4.2, on its own, so it
 * can be read against the RFC.
 */
import { LedgerError } from '../errors.js';
import { foldRight, rangeNodeIds, type NodeId } from './compact-range.js';
import { MERKLE_HASH_LENGTH, nodeHash, type Hasher } from './hash.js';

/** Each proof element is the hash of these perfect subtrees, folded from the right. */
export type ProofPlan = NodeId[][];

/** Reads stored perfect-subtree hashes; must throw if any is missing. */
export type NodeReader = (ids: readonly NodeId[]) => Promise<Uint8Array[]>;

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

function checkSize(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new LedgerError('E_PROOF', `${what} ${value} is not a non-negative integer`, { [what]: value });
}

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1, as perfect subtrees; ordered from the leaf upwards. */
export function inclusionPlan(leafIndex: number, treeSize: number): ProofPlan {
  checkSize('leafIndex', leafIndex);
  checkSize('treeSize', treeSize);
  if (leafIndex >= treeSize) throw new LedgerError('E_PROOF', `no inclusion proof for leaf ${leafIndex} in a tree of size ${treeSize}`, { leafIndex, treeSize });
  const path = (start: number, end: number): ProofPlan => {
    const n = end - start;
    if (n === 1) return [];
    const k = largestPowerOfTwoBelow(n);
    return leafIndex < start + k
      ? [...path(start, start + k), rangeNodeIds(start + k, end)]
      : [...path(start + k, end), rangeNodeIds(start, start + k)];
  };
  return path(0, treeSize);
}

/** PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1, as perfect subtrees. */
export function consistencyPlan(size1: number, size2: number): ProofPlan {
  checkSize('size1', size1);
  checkSize('size2', size2);
  if (size1 > size2) throw new LedgerError('E_PROOF', `no consistency proof from size ${size1} to the smaller size ${size2}`, { size1, size2 });
  if (size1 === 0 || size1 === size2) return [];
  const subproof = (m: number, start: number, end: number, complete: boolean): ProofPlan => {
    const n = end - start;
    if (m === n) return complete ? [] : [rangeNodeIds(start, end)];
    const k = largestPowerOfTwoBelow(n);
    return m <= k
      ? [...subproof(m, start, start + k, complete), rangeNodeIds(start + k, end)]
      : [...subproof(m - k, start + k, end, false), rangeNodeIds(start, start + k)];
  };
  return subproof(size1, 0, size2, true);
}

/** The root of the first `size` leaves, as perfect subtrees (one element). */
export function rootPlan(size: number): ProofPlan {
  checkSize('size', size);
  return [rangeNodeIds(0, size)];
}

function nodeKey(id: NodeId): string {
  return `${id.level}/${id.index}`;
}

/** Fetches every node of a plan in one read and folds each element. */
export async function resolvePlan(hasher: Hasher, plan: ProofPlan, read: NodeReader): Promise<Uint8Array[]> {
  const unique = new Map<string, NodeId>();
  for (const element of plan) for (const id of element) unique.set(nodeKey(id), id);
  const ids = [...unique.values()];
  const hashes = ids.length === 0 ? [] : await read(ids);
  if (hashes.length !== ids.length) throw new LedgerError('E_LEDGER', `node store returned ${hashes.length} of ${ids.length} tree nodes`);
  const byKey = new Map(ids.map((id, i) => [nodeKey(id), hashes[i]!]));
  return plan.map((element) => foldRight(hasher, element.map((id) => byKey.get(nodeKey(id))!)));
}

function proofError(why: string, context: Record<string, unknown>): LedgerError {
  return new LedgerError('E_PROOF', why, context);
}

/**
 * RFC 9162 §2.1.3.2. Throws LedgerError E_PROOF saying why when the proof does not show
 * `leafHash` at `leafIndex` in the tree of `treeSize` leaves with `root`.
 */
export function verifyInclusion(hasher: Hasher, leafIndex: number, treeSize: number, leafHash: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  checkSize('leafIndex', leafIndex);
  checkSize('treeSize', treeSize);
  const context = { leafIndex, treeSize };
  if (leafIndex >= treeSize) throw proofError(`inclusion: leaf index ${leafIndex} is not below tree size ${treeSize}`, context);
  if (leafHash.length !== MERKLE_HASH_LENGTH || root.length !== MERKLE_HASH_LENGTH) throw proofError(`inclusion: leaf hash and root must be ${MERKLE_HASH_LENGTH} bytes`, context);
  if (proof.some((p) => p.length !== MERKLE_HASH_LENGTH)) throw proofError(`inclusion: a proof element is not ${MERKLE_HASH_LENGTH} bytes`, context);
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) throw proofError(`inclusion: proof for leaf ${leafIndex} in size ${treeSize} is longer than the path`, context);
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(hasher, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(hasher, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw proofError(`inclusion: proof for leaf ${leafIndex} in size ${treeSize} is shorter than the path`, context);
  if (!hasher.equal(r, root)) throw proofError(`inclusion: leaf ${leafIndex} does not lead to the root of size ${treeSize}`, context);
}

/**
 * RFC 9162 §2.1.4.2. Throws LedgerError E_PROOF unless the proof shows the tree of
 * `size1` leaves with `root1` is a prefix of the tree of `size2` leaves with `root2`.
 * A consistency proof from the empty tree proves nothing, so size1 = 0 is refused.
 */
export function verifyConsistency(hasher: Hasher, size1: number, size2: number, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): void {
  checkSize('size1', size1);
  checkSize('size2', size2);
  const context = { size1, size2 };
  if (size1 > size2) throw proofError(`consistency: size1 ${size1} is larger than size2 ${size2}`, context);
  if (size1 === 0) throw proofError('consistency: a proof from the empty tree proves nothing', context);
  if (size1 === size2) {
    if (proof.length > 0) throw proofError(`consistency: sizes are equal (${size1}) but the proof is not empty`, context);
    if (!hasher.equal(root1, root2)) throw proofError(`consistency: sizes are equal (${size1}) but the roots differ`, context);
    return;
  }
  if (proof.length === 0) throw proofError(`consistency: empty proof from size ${size1} to ${size2}`, context);
  if (proof.some((p) => p.length !== MERKLE_HASH_LENGTH)) throw proofError(`consistency: a proof element is not ${MERKLE_HASH_LENGTH} bytes`, context);

  // When size1 is a power of two its root is itself a node of the new tree, and the proof omits it.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) throw proofError(`consistency: proof from ${size1} to ${size2} is longer than needed`, context);
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(hasher, c, fr);
      sr = nodeHash(hasher, c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(hasher, sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw proofError(`consistency: proof from ${size1} to ${size2} is shorter than needed`, context);
  if (!hasher.equal(fr, root1)) throw proofError(`consistency: proof does not lead to the old root (size ${size1})`, context);
  if (!hasher.equal(sr, root2)) throw proofError(`consistency: proof does not lead to the new root (size ${size2})`, context);
}
