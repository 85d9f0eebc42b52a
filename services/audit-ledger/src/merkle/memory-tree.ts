/**
 * An RFC 6962 tree held in memory: the compact range plus every completed perfect
 * subtree, the same layout the ledger keeps in PostgreSQL (tree_nodes). Used by tests
 * and by offline verifiers that rebuild a tree from an export.
 */
import { LedgerError } from '../errors.js';
import { CompactRange, type NodeId } from './compact-range.js';
import { leafHash, type Hasher } from './hash.js';
import { consistencyPlan, inclusionPlan, resolvePlan, rootPlan } from './proofs.js';

export class MemoryMerkleTree {
  readonly #hasher: Hasher;
  readonly #range: CompactRange;
  readonly #nodes = new Map<string, Uint8Array>();

  constructor(hasher: Hasher) {
    this.#hasher = hasher;
    this.#range = new CompactRange(hasher);
  }

  get size(): number {
    return this.#range.size;
  }

  /** Appends a leaf by its input (an event_hash): the leaf hash is SHA-256(0x00 || input). */
  appendLeafInput(input: Uint8Array): void {
    this.appendLeafHash(leafHash(this.#hasher, input));
  }

  appendLeafHash(hash: Uint8Array): void {
    for (const node of this.#range.append(hash)) this.#nodes.set(`${node.level}/${node.index}`, node.hash);
  }

  /** The root of the current tree, from the compact range alone. */
  root(): Uint8Array {
    return this.#range.root();
  }

  /** The root the tree had at an earlier size. */
  async rootAt(size: number): Promise<Uint8Array> {
    this.#checkSize(size);
    const [root] = await resolvePlan(this.#hasher, rootPlan(size), this.#read);
    return root!;
  }

  async inclusionProof(leafIndex: number, treeSize = this.size): Promise<Uint8Array[]> {
    this.#checkSize(treeSize);
    return resolvePlan(this.#hasher, inclusionPlan(leafIndex, treeSize), this.#read);
  }

  async consistencyProof(size1: number, size2 = this.size): Promise<Uint8Array[]> {
    this.#checkSize(size2);
    return resolvePlan(this.#hasher, consistencyPlan(size1, size2), this.#read);
  }

  #checkSize(size: number): void {
    if (size > this.size) throw new LedgerError('E_PROOF', `tree size ${size} is beyond the current size ${this.size}`, { size, current: this.size });
  }

  readonly #read = async (ids: readonly NodeId[]): Promise<Uint8Array[]> =>
    ids.map((id) => {
      const hash = this.#nodes.get(`${id.level}/${id.index}`);
      if (hash === undefined) throw new LedgerError('E_LEDGER', `tree node level ${id.level} index ${id.index} is missing`, { ...id });
      return hash;
    });
}
