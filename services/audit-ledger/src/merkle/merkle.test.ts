import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCryptoProvider, fromBase64, fromHex, toHex } from '@bulwark/crypto';
import { readVectorJson, vectorPath } from '@bulwark/testkit';
import { CompactRange, edgeNodeIds } from './compact-range.js';
import { emptyRoot, leafHash, nodeHash } from './hash.js';
import { MemoryMerkleTree } from './memory-tree.js';
import { verifyConsistency, verifyInclusion } from './proofs.js';

const crypto = createCryptoProvider('node');

interface Vectors {
  empty_tree_root: string;
  leaf_inputs: string[];
  leaf_hashes: string[];
  root_hashes: { tree_size: number; root_hash: string }[];
  node_hashes_by_level: string[][];
  inclusion_proofs: { leaf_index: number; tree_size: number; leaf_hash: string; root_hash: string; audit_path: string[] }[];
  consistency_proofs: { size1: number; size2: number; root1: string; root2: string; proof: string[] }[];
}
const vectors = readVectorJson<Vectors>('rfc6962', 'rfc6962-vectors.json');

function treeOf(size: number): MemoryMerkleTree {
  const tree = new MemoryMerkleTree(crypto);
  for (const input of vectors.leaf_inputs.slice(0, size)) tree.appendLeafInput(fromHex(input));
  return tree;
}

/** MTH straight from RFC 6962 §2.1, recursive: the reference the incremental tree is checked against. */
function referenceRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return emptyRoot(crypto);
  if (leaves.length === 1) return leafHash(crypto, leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(crypto, referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const b64 = (text: string): Uint8Array => (text === '' ? new Uint8Array(0) : fromBase64(text));
const outcome = (check: () => void): 'ok' | 'error' => {
  try {
    check();
    return 'ok';
  } catch {
    return 'error';
  }
};

describe('RFC 6962 tree (rfc6962-vectors.json)', () => {
  it('hashes leaves and the empty tree as the RFC says', () => {
    expect(toHex(emptyRoot(crypto))).toBe(vectors.empty_tree_root);
    expect(vectors.leaf_inputs.map((input) => toHex(leafHash(crypto, fromHex(input))))).toEqual(vectors.leaf_hashes);
  });

  it('gives the root of every size 0..8, incrementally and at earlier sizes', async () => {
    const full = treeOf(8);
    for (const { tree_size, root_hash } of vectors.root_hashes) {
      expect(toHex(treeOf(tree_size).root())).toBe(root_hash);
      expect(toHex(await full.rootAt(tree_size))).toBe(root_hash);
    }
  });

  it('keeps every complete subtree hash of the vectors', async () => {
    const tree = treeOf(8);
    for (const [level, hashes] of vectors.node_hashes_by_level.entries()) {
      for (const [index, hash] of hashes.entries()) {
        const start = index * 2 ** level;
        // A perfect subtree's hash is the root of its leaves alone.
        expect(toHex(referenceRoot(vectors.leaf_inputs.slice(start, start + 2 ** level).map((h) => fromHex(h))))).toBe(hash);
      }
    }
    expect(toHex(tree.root())).toBe(vectors.node_hashes_by_level[3]![0]);
  });

  it.each(vectors.inclusion_proofs)('makes and verifies the inclusion proof of leaf $leaf_index in size $tree_size', async (v) => {
    const proof = await treeOf(8).inclusionProof(v.leaf_index, v.tree_size);
    expect(proof.map(toHex)).toEqual(v.audit_path);
    verifyInclusion(crypto, v.leaf_index, v.tree_size, fromHex(v.leaf_hash), proof, fromHex(v.root_hash));
  });

  it.each(vectors.consistency_proofs)('makes and verifies the consistency proof $size1 -> $size2', async (v) => {
    const proof = await treeOf(8).consistencyProof(v.size1, v.size2);
    expect(proof.map(toHex)).toEqual(v.proof);
    verifyConsistency(crypto, v.size1, v.size2, proof, fromHex(v.root1), fromHex(v.root2));
  });
});

interface InclusionProbe { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; desc: string; wantErr: boolean }
interface ConsistencyProbe { size1: number; size2: number; root1: string; root2: string; proof: string[] | null; desc: string; wantErr: boolean }

const testdata = vectorPath('rfc6962', 'testdata');
const inclusionFiles = filesUnder(join(testdata, 'inclusion')).filter((f) => f.endsWith('.json'));
const consistencyFiles = filesUnder(join(testdata, 'consistency')).filter((f) => f.endsWith('.json'));

describe('transparency-dev probes (rfc6962/testdata)', () => {
  it('finds all probe files', () => {
    expect(inclusionFiles.length).toBe(98);
    expect(consistencyFiles.length).toBe(98);
  });

  it.each(inclusionFiles.map((f) => [relative(testdata, f), f]))('inclusion %s', (_name, file) => {
    const p = readVectorJson<InclusionProbe>(relative(vectorPath(), file));
    const result = outcome(() => verifyInclusion(crypto, p.leafIdx, p.treeSize, b64(p.leafHash), (p.proof ?? []).map(b64), b64(p.root)));
    expect(result).toBe(p.wantErr ? 'error' : 'ok');
  });

  it.each(consistencyFiles.map((f) => [relative(testdata, f), f]))('consistency %s', (_name, file) => {
    const p = readVectorJson<ConsistencyProbe>(relative(vectorPath(), file));
    const result = outcome(() => verifyConsistency(crypto, p.size1, p.size2, (p.proof ?? []).map(b64), b64(p.root1), b64(p.root2)));
    expect(result).toBe(p.wantErr ? 'error' : 'ok');
  });

  it('generates exactly the happy-path proofs of the 8-leaf tree', async () => {
    const tree = treeOf(8);
    for (const folder of ['0', '1', '2', '3', '4']) {
      const inc = readVectorJson<InclusionProbe>('rfc6962', 'testdata', 'inclusion', folder, 'happy-path.json');
      expect((await tree.inclusionProof(inc.leafIdx, inc.treeSize)).map((h) => Buffer.from(h).toString('base64'))).toEqual(inc.proof ?? []);
      const con = readVectorJson<ConsistencyProbe>('rfc6962', 'testdata', 'consistency', folder, 'happy-path.json');
      expect((await tree.consistencyProof(con.size1, con.size2)).map((h) => Buffer.from(h).toString('base64'))).toEqual(con.proof ?? []);
    }
  });
});

describe('incremental tree against the recursive definition', () => {
  const leaves = Array.from({ length: 48 }, (_, i) => crypto.sha256(Uint8Array.of(i)));
  const tree = new MemoryMerkleTree(crypto);
  for (const leaf of leaves) tree.appendLeafInput(leaf);

  it('agrees on every root, inclusion proof and consistency proof up to 48 leaves', async () => {
    for (let size = 1; size <= leaves.length; size++) {
      const root = referenceRoot(leaves.slice(0, size));
      expect(toHex(await tree.rootAt(size))).toBe(toHex(root));
      for (let index = 0; index < size; index++) {
        verifyInclusion(crypto, index, size, leafHash(crypto, leaves[index]!), await tree.inclusionProof(index, size), root);
      }
      for (let older = 1; older <= size; older++) {
        verifyConsistency(crypto, older, size, await tree.consistencyProof(older, size), referenceRoot(leaves.slice(0, older)), root);
      }
    }
  });

  it('rejects a proof checked against the wrong leaf, index or size', async () => {
    const root = tree.root();
    const proof = await tree.inclusionProof(5);
    expect(() => verifyInclusion(crypto, 5, 48, leafHash(crypto, leaves[6]!), proof, root)).toThrow('does not lead to the root');
    expect(() => verifyInclusion(crypto, 4, 48, leafHash(crypto, leaves[5]!), proof, root)).toThrow();
    expect(() => verifyInclusion(crypto, 5, 200, leafHash(crypto, leaves[5]!), proof, root)).toThrow('shorter than the path');
    expect(() => verifyInclusion(crypto, 48, 48, leafHash(crypto, leaves[5]!), proof, root)).toThrow('is not below tree size');
  });

  it('resumes from a persisted compact range', () => {
    const first = new CompactRange(crypto);
    for (const leaf of leaves.slice(0, 37)) first.append(leafHash(crypto, leaf));
    expect(first.edge).toHaveLength(edgeNodeIds(37).length);
    const resumed = new CompactRange(crypto, first.size, first.edge);
    for (const leaf of leaves.slice(37)) resumed.append(leafHash(crypto, leaf));
    expect(toHex(resumed.root())).toBe(toHex(tree.root()));
    expect(() => new CompactRange(crypto, 37, first.edge.slice(1))).toThrow('needs 3 hashes');
  });

  it('stores about one node per leaf appended, never recomputing the tree', () => {
    const range = new CompactRange(crypto);
    let created = 0;
    for (let i = 0; i < 1024; i++) created += range.append(leafHash(crypto, leaves[i % 48]!)).length;
    expect(created).toBe(2047);
  });
});
