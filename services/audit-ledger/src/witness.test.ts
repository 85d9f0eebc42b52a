import { describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { MemoryMerkleTree } from './merkle/memory-tree.js';
import { signCheckpoint } from './note/checkpoint.js';
import { COSIGNATURE_V1_TYPE, publicPart, signerKey } from './note/keys.js';
import { openNote } from './note/signed-note.js';
import { Witness, cosignCheckpoint } from './witness.js';

const crypto = createCryptoProvider('node');
const origin = 'bulwark.test/log';
const log = signerKey(crypto, origin, crypto.randomBytes(32));
const config = { crypto, key: signerKey(crypto, 'bulwark.test/w', crypto.randomBytes(32), COSIGNATURE_V1_TYPE), origin, logKey: publicPart(log), now: () => 1764115200 };

const tree = new MemoryMerkleTree(crypto);
async function grow(n: number): Promise<{ size: number; note: string }> {
  for (let i = 0; i < n; i++) tree.appendLeafInput(crypto.sha256(Uint8Array.of(tree.size % 256, 7)));
  return { size: tree.size, note: signCheckpoint(crypto, { origin, size: tree.size, rootHash: tree.root(), extensions: [] }, [log]) };
}

describe('witness', () => {
  it('cosigns a first checkpoint without a proof, then only consistent growth', async () => {
    const witness = new Witness(config);
    const first = await grow(5);
    const cosigned = witness.cosign(first.note, []);
    expect(openNote(crypto, cosigned.note, [publicPart(log), witness.verifierKey]).verified.map((s) => s.timestamp)).toEqual([undefined, 1764115200]);
    const second = await grow(9);
    expect(witness.cosign(second.note, await tree.consistencyProof(first.size, second.size)).checkpoint.size).toBe(14);
    expect(witness.lastSeen?.size).toBe(14);
  });

  it('refuses a proof when it has nothing to check it against, and a checkpoint of another origin', async () => {
    const cp = await grow(1);
    expect(() => cosignCheckpoint(config, undefined, cp.note, [crypto.sha256(Uint8Array.of(1))])).toThrow('no earlier checkpoint');
    expect(() => cosignCheckpoint({ ...config, origin: 'bulwark.test/other' }, undefined, cp.note, [])).toThrow('is not the expected');
  });

  it('refuses a proof between the wrong sizes', async () => {
    const a = await grow(3);
    const witness = new Witness(config);
    witness.cosign(a.note, []);
    const b = await grow(4);
    const wrongProof = await tree.consistencyProof(a.size - 1, b.size);
    expect(() => witness.cosign(b.note, wrongProof)).toThrow(`not consistent with size ${a.size}`);
    expect(witness.lastSeen?.size).toBe(a.size);
  });
});
