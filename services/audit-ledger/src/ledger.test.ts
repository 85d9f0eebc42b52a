import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '@bulwark/crypto';
import { GENESIS_PREVIOUS_HASH, canonicalJson, checkSealedEvent, type LedgerEvent } from '@bulwark/events';
import { InputError } from '@bulwark/errors';
import { ORIGIN, crypto, makeEvents, openTestLedger, produced, type LedgerFixture } from './ledger.fixture.js';
import { MemoryMerkleTree } from './merkle/memory-tree.js';
import { verifyConsistency, verifyInclusion } from './merkle/proofs.js';
import { openCheckpoint, signCheckpoint } from './note/checkpoint.js';
import { COSIGNATURE_V1_TYPE, signerKey } from './note/keys.js';
import { AuditLedger } from './ledger.js';
import { verifyLedger } from './verify.js';
import { Witness } from './witness.js';

let fx: LedgerFixture;
const all: LedgerEvent[] = [];

beforeAll(async () => {
  fx = await openTestLedger('ledger', { checkpointEvery: 50 });
});
afterAll(async () => {
  await fx?.close();
});

const verifyOptions = () => ({ crypto, origin: ORIGIN, logKey: fx.ledger.verifierKey });

describe('append', () => {
  it('seals a batch: seq from 0, linked, hashed, signed', async () => {
    const result = await fx.ledger.append(produced(makeEvents(30)));
    all.push(...result.appended);
    expect(result.appended.map((e) => e.seq)).toEqual([...Array(30).keys()]);
    expect(result.duplicates).toEqual([]);
    expect(result.size).toBe(30);
    let previous = GENESIS_PREVIOUS_HASH;
    for (const event of result.appended) {
      expect(checkSealedEvent(crypto, fx.ledger.verifierKey.publicKey, event, previous)).toBeNull();
      previous = event.eventHash;
    }
    expect(toHex((await fx.ledger.head()).headHash)).toBe(toHex(previous));
  });

  it('stores events as they were sealed', async () => {
    // Appended events also carry the canonical details text: it is the stored details column.
    const withoutText = all.map((e) => {
      const { detailsJcs, ...event } = e as LedgerEvent & { detailsJcs?: string };
      if (detailsJcs !== undefined) expect(detailsJcs).toBe(canonicalJson(e.details));
      return event;
    });
    expect(await fx.ledger.events(0, 1000)).toEqual(withoutText);
    const rows = await fx.db.selectFrom('events').select('details').orderBy('seq').execute();
    expect(rows.map((r) => r.details)).toEqual(all.map((e) => canonicalJson(e.details)));
    expect(await fx.ledger.seqOf(all[17]!.eventId)).toBe(17);
    expect(await fx.ledger.seqOf(all[17]!.eventId.toUpperCase())).toBe(17);
    expect(await fx.ledger.seqOf('0192f5a0-1c00-7abc-8def-0123456789ab')).toBeUndefined();
    expect(await fx.ledger.seqOf('not-a-uuid')).toBeUndefined();
  });

  it('treats a redelivered event id as a no-op that uses no seq', async () => {
    const again = await fx.ledger.append(produced(all.slice(3, 6).map(({ eventId, timestamp, agentId, eventType, details }) => ({ eventId, timestamp, agentId, eventType, details }))));
    expect(again.appended).toEqual([]);
    expect(again.duplicates).toEqual(all.slice(3, 6).map((e) => e.eventId));
    const [fresh] = makeEvents(1);
    const mixed = await fx.ledger.append(produced([all[0]!, fresh!, fresh!]));
    expect(mixed.appended.map((e) => e.seq)).toEqual([30]);
    expect(mixed.duplicates).toEqual([all[0]!.eventId, fresh!.eventId]);
    all.push(...mixed.appended);
  });

  it('rejects a batch with one invalid event and appends none of it', async () => {
    const batch = makeEvents(3);
    const bad = { ...batch[1]!, details: { score: Number.NaN } };
    await expect(fx.ledger.append(produced([batch[0]!, bad, batch[2]!]))).rejects.toBeInstanceOf(InputError);
    expect((await fx.ledger.head()).size).toBe(31);
  });

  it('keeps seq gapless under concurrent appends', async () => {
    const results = await Promise.all([0, 1, 2, 3].map(() => fx.ledger.append(produced(makeEvents(5)))));
    const seqs = results.flatMap((r) => r.appended.map((e) => e.seq)).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => 31 + i));
    all.push(...(await fx.ledger.events(31, 20)));
  });

  it('signs a checkpoint when an append crosses a multiple of checkpointEvery', async () => {
    const result = await fx.ledger.append(produced(makeEvents(10)));
    all.push(...result.appended);
    expect(result.size).toBe(61);
    // 51 crossed 50 in the concurrent test; this one crossed nothing, so no checkpoint here.
    expect(result.checkpoint).toBeUndefined();
    const at50 = await fx.ledger.latestCheckpoint();
    expect(at50?.size).toBeGreaterThanOrEqual(50);
    const { checkpoint } = openCheckpoint(crypto, at50!.note, { origin: ORIGIN, logKey: fx.ledger.verifierKey });
    expect(toHex(checkpoint.rootHash)).toBe(toHex(await fx.ledger.rootAt(checkpoint.size)));
  });
});

describe('tree and proofs', () => {
  it('has the same root as a tree rebuilt from the event hashes', async () => {
    const tree = new MemoryMerkleTree(crypto);
    for (const e of all) tree.appendLeafInput(e.eventHash);
    const head = await fx.ledger.head();
    expect(head.size).toBe(all.length);
    expect(toHex(head.rootHash)).toBe(toHex(tree.root()));
    for (const size of [1, 2, 7, 33, all.length]) expect(toHex(await fx.ledger.rootAt(size))).toBe(toHex(await tree.rootAt(size)));
  });

  it('serves inclusion proofs that verify against a signed checkpoint', async () => {
    const cp = await fx.ledger.checkpoint();
    expect(cp.size).toBe(all.length);
    for (const seq of [0, 1, 17, 49, all.length - 1]) {
      const p = await fx.ledger.inclusionProof(seq, cp.size);
      verifyInclusion(crypto, seq, cp.size, p.leafHash, p.proof, cp.rootHash);
    }
    await expect(fx.ledger.inclusionProof(0, all.length + 1)).rejects.toThrow('is not between 0 and the current size');
  });

  it('serves consistency proofs between any two sizes', async () => {
    for (const [a, b] of [[1, 2], [3, 50], [50, all.length], [17, 33]] as const) {
      verifyConsistency(crypto, a, b, await fx.ledger.consistencyProof(a, b), await fx.ledger.rootAt(a), await fx.ledger.rootAt(b));
    }
  });
});

describe('witnesses', () => {
  it('do not lend their key type to the ledger: the ledger key must be a plain note key', () => {
    const cosigner = signerKey(crypto, ORIGIN, crypto.randomBytes(32), COSIGNATURE_V1_TYPE);
    expect(() => new AuditLedger(fx.db, { crypto, origin: ORIGIN, signer: cosigner })).toThrow('must be a plain Ed25519 note key (type 0x01)');
  });

  it('cosign each checkpoint that extends the last one, and the ledger keeps the cosignature', async () => {
    const witness = new Witness({ crypto, key: signerKey(crypto, 'bulwark.test/witness', crypto.randomBytes(32), COSIGNATURE_V1_TYPE), origin: ORIGIN, logKey: fx.ledger.verifierKey, now: () => 1764115200 });
    const first = await fx.ledger.checkpoint();
    const cosigned = witness.cosign(first.note, []);
    await fx.ledger.addCosignature(cosigned.note, witness.verifierKey);

    all.push(...(await fx.ledger.append(produced(makeEvents(7)))).appended);
    const second = await fx.ledger.checkpoint();
    const proof = await fx.ledger.consistencyProof(first.size, second.size);
    const again = witness.cosign(second.note, proof);
    const stored = await fx.ledger.addCosignature(again.note, witness.verifierKey);
    expect(stored.note.split('\n').filter((l) => l.startsWith('\u2014'))).toHaveLength(2);
    const opened = openCheckpoint(crypto, stored.note, { origin: ORIGIN, logKey: fx.ledger.verifierKey, witnesses: [witness.verifierKey], minWitnesses: 1 });
    expect(opened.checkpoint.size).toBe(second.size);
    expect(opened.note.verified.find((v) => v.name === 'bulwark.test/witness')?.timestamp).toBe(1764115200);
    expect(witness.lastSeen?.size).toBe(second.size);
  });

  it('refuse a rollback, a fork and a bad proof', async () => {
    // A plain note key (type 0x01) works as a witness key too.
    const witness = new Witness({ crypto, key: signerKey(crypto, 'bulwark.test/witness2', crypto.randomBytes(32)), origin: ORIGIN, logKey: fx.ledger.verifierKey });
    const latest = await fx.ledger.checkpoint();
    witness.cosign(latest.note, []);
    const firstSize = (await fx.db.selectFrom('checkpoints').select('tree_size').orderBy('tree_size').executeTakeFirstOrThrow()).tree_size;
    const older = await fx.ledger.checkpointAt(Number(firstSize));
    expect(() => witness.cosign(older!.note, [])).toThrow('rollback');
    // The log key itself signs another tree (a rewritten history): same size with another root, or a larger
    // tree that the honest tree is not a prefix of. The witness cosigns neither.
    const forkSame = signCheckpoint(crypto, { origin: ORIGIN, size: latest.size, rootHash: crypto.sha256(Uint8Array.of(1)), extensions: [] }, [fx.signer]);
    expect(() => witness.cosign(forkSame, [])).toThrow('same size, different root (fork)');
    all.push(...(await fx.ledger.append(produced(makeEvents(3)))).appended);
    const honestProof = await fx.ledger.consistencyProof(latest.size);
    const forkBigger = signCheckpoint(crypto, { origin: ORIGIN, size: latest.size + 3, rootHash: crypto.sha256(Uint8Array.of(2)), extensions: [] }, [fx.signer]);
    expect(() => witness.cosign(forkBigger, honestProof)).toThrow(`not consistent with size ${latest.size}`);
    // Signed by another key under the log's name: refused before any proof is looked at.
    const otherLog = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
    const impostor = signCheckpoint(crypto, { origin: ORIGIN, size: latest.size + 3, rootHash: await fx.ledger.rootAt(latest.size + 3), extensions: [] }, [otherLog]);
    expect(() => witness.cosign(impostor, honestProof)).toThrow('no signature from a known key');
    // The honest checkpoint with its proof is still cosigned after all the refusals.
    expect(witness.cosign((await fx.ledger.checkpoint()).note, honestProof).checkpoint.size).toBe(latest.size + 3);
    const current = (await fx.ledger.checkpoint()).note;
    expect(() => witness.cosign(current, [crypto.sha256(Uint8Array.of(2))])).toThrow('sizes are equal');
  });
});

describe('verify', () => {
  it('passes an untouched ledger, checking every stored checkpoint', async () => {
    const report = await verifyLedger(fx.db, verifyOptions());
    expect(report).toMatchObject({ ok: true, size: all.length });
    if (report.ok) {
      expect(report.checkpointsChecked).toBeGreaterThanOrEqual(3);
      expect(toHex(report.rootHash)).toBe(toHex((await fx.ledger.head()).rootHash));
    }
  });

  it('pages through the table without changing the outcome, reporting progress per page', async () => {
    const progress: number[] = [];
    expect(await verifyLedger(fx.db, { ...verifyOptions(), pageSize: 7, onProgress: (done) => progress.push(done) })).toMatchObject({ ok: true, size: all.length });
    expect(progress).toHaveLength(Math.ceil(all.length / 7));
    expect(progress.at(-1)).toBe(all.length);
  });

  it('fails with a key that is not the ledger key', async () => {
    const other = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
    const report = await verifyLedger(fx.db, { ...verifyOptions(), logKey: other });
    // The first thing signed is event 0, so that is the first failure in sequence order.
    expect(report).toEqual({ ok: false, seq: 0, problem: 'signature invalid', message: 'seq 0: signature invalid' });
  });
});
