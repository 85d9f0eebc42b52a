/**
 * Read-only access to a ledger for tools that hold only its public key (the CLI, an
 * auditor, the archiver): the latest signed checkpoint (verified before it is returned),
 * inclusion proofs against it, and export lines up to a stored checkpoint. Nothing here
 * signs, so it works without the ledger's private key; the price is that an export ends
 * at the latest signed checkpoint, not at the head.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { firstStoredSeq } from './archive-anchor.js';
import { treeNodeReader } from './store/tree-nodes.js';
import { LedgerError } from './errors.js';
import { exportCheckpointLine, exportEventLine, exportHeaderLine } from './export.js';
import type { LedgerDb, StoredCheckpoint } from './ledger.js';
import { edgeNodeIds } from './merkle/compact-range.js';
import { leafHash } from './merkle/hash.js';
import { consistencyPlan, inclusionPlan, resolvePlan, verifyConsistency, verifyInclusion } from './merkle/proofs.js';
import { openCheckpoint } from './note/checkpoint.js';
import { verifierKey, type VerifierKey } from './note/keys.js';
import { storedSchedule } from './signing-keys.js';
import { bytes, ledgerEventOfRow, toNumber } from './store/rows.js';

export interface LedgerReaderOptions {
  readonly crypto: CryptoProvider;
  readonly origin: string;
  /**
   * The ledger's first key (after an archive, the key in force at its anchor): every checkpoint
   * this reader returns verified with the key in force at its size, as the stored chain's key
   * changes (each checked under the key before it) name it.
   */
  readonly logKey: VerifierKey;
}

export interface VerifiedInclusionProof {
  readonly seq: number;
  readonly eventId: string;
  readonly treeSize: number;
  readonly leafHash: Uint8Array;
  readonly rootHash: Uint8Array;
  readonly proof: readonly Uint8Array[];
  /** The signed checkpoint of `treeSize` the proof is against. */
  readonly checkpoint: string;
}

export interface VerifiedConsistencyProof {
  readonly size1: number;
  readonly size2: number;
  readonly rootHash1: Uint8Array;
  readonly rootHash2: Uint8Array;
  readonly proof: readonly Uint8Array[];
  readonly checkpoint1: string;
  readonly checkpoint2: string;
}

export class LedgerReader {
  readonly #db: LedgerDb;
  readonly #options: LedgerReaderOptions;

  constructor(db: LedgerDb, options: LedgerReaderOptions) {
    this.#db = db;
    this.#options = options;
  }

  /** The stored checkpoint of this size, after checking its note and columns; undefined if none is stored. */
  async checkpointAt(size: number): Promise<StoredCheckpoint | undefined> {
    const row = await this.#db.selectFrom('checkpoints').selectAll().where('tree_size', '=', BigInt(size)).executeTakeFirst();
    return row === undefined ? undefined : await this.#open(row.note, toNumber(row.tree_size, 'checkpoints.tree_size'), bytes(row.root_hash));
  }

  /** The latest stored checkpoint, verified; undefined when the ledger has signed none. */
  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const row = await this.#db.selectFrom('checkpoints').selectAll().orderBy('tree_size', 'desc').limit(1).executeTakeFirst();
    return row === undefined ? undefined : await this.#open(row.note, toNumber(row.tree_size, 'checkpoints.tree_size'), bytes(row.root_hash));
  }

  /**
   * Inclusion of `seq` in the tree of the latest checkpoint (or of the stored checkpoint of
   * `treeSize`), checked against it before it is returned.
   */
  async inclusionProof(seq: number, treeSize?: number): Promise<VerifiedInclusionProof> {
    const checkpoint = treeSize === undefined ? await this.latestCheckpoint() : await this.#storedCheckpoint(treeSize);
    if (checkpoint === undefined) throw new LedgerError('E_PROOF', 'inclusion proof: the ledger has no signed checkpoint yet', { seq });
    if (seq >= checkpoint.size) {
      throw new LedgerError('E_PROOF', `inclusion proof: seq ${seq} is not covered by the latest checkpoint (size ${checkpoint.size}); wait for the next one`, { seq, size: checkpoint.size });
    }
    const row = await this.#db.selectFrom('events').select(['event_hash', 'event_id']).where('seq', '=', BigInt(seq)).executeTakeFirst();
    if (row === undefined) throw new LedgerError('E_PROOF', `inclusion proof: no event at seq ${seq} (archived or never appended)`, { seq });
    const leaf = leafHash(this.#options.crypto, bytes(row.event_hash));
    const proof = await resolvePlan(this.#options.crypto, inclusionPlan(seq, checkpoint.size), this.#readNodes());
    // A proof that does not verify against the signed root is never handed out.
    verifyInclusion(this.#options.crypto, seq, checkpoint.size, leaf, proof, checkpoint.rootHash);
    return { seq, eventId: row.event_id, treeSize: checkpoint.size, leafHash: leaf, rootHash: checkpoint.rootHash, proof, checkpoint: checkpoint.note };
  }

  /**
   * The RFC 9162 consistency proof from the stored checkpoint of `size1` to that of `size2`
   * (default the latest), checked against both signed roots before it is returned.
   */
  async consistencyProof(size1: number, size2?: number): Promise<VerifiedConsistencyProof> {
    const first = await this.#storedCheckpoint(size1);
    const second = size2 === undefined ? await this.latestCheckpoint() : await this.#storedCheckpoint(size2);
    if (second === undefined) throw new LedgerError('E_PROOF', 'consistency proof: the ledger has no signed checkpoint yet', { size1 });
    const proof = await resolvePlan(this.#options.crypto, consistencyPlan(first.size, second.size), this.#readNodes());
    verifyConsistency(this.#options.crypto, first.size, second.size, proof, first.rootHash, second.rootHash);
    return { size1: first.size, size2: second.size, rootHash1: first.rootHash, rootHash2: second.rootHash, proof, checkpoint1: first.note, checkpoint2: second.note };
  }

  async #storedCheckpoint(size: number): Promise<StoredCheckpoint> {
    const checkpoint = await this.checkpointAt(size);
    if (checkpoint === undefined) throw new LedgerError('E_PROOF', `no signed checkpoint of size ${size} is stored (bulwark audit checkpoint shows the latest)`, { size });
    return checkpoint;
  }

  /** The first stored seq (0 unless an archive pruned older events). */
  async firstSeq(): Promise<number> {
    return (await firstStoredSeq(this.#db)) ?? 0;
  }

  /**
   * Export lines (format of export.ts, verified by verifyExport) for events [fromSeq, checkpoint.size),
   * ending with that stored checkpoint. Streams in pages.
   */
  async *exportLines(checkpoint: StoredCheckpoint, fromSeq: number, pageSize = 1000): AsyncGenerator<string> {
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 0 || fromSeq > checkpoint.size) {
      throw new LedgerError('E_LEDGER', `export: from seq ${fromSeq} is not between 0 and the checkpoint size ${checkpoint.size}`, { fromSeq });
    }
    const startEdge = fromSeq === 0 ? [] : await this.#readNodes()(edgeNodeIds(fromSeq));
    yield exportHeaderLine({ origin: this.#options.origin, logKey: await this.#keyAt(fromSeq), fromSeq, size: checkpoint.size, startEdge });
    for (let next = fromSeq; next < checkpoint.size; ) {
      const rows = await this.#db
        .selectFrom('events')
        .selectAll()
        .where('seq', '>=', BigInt(next))
        .where('seq', '<', BigInt(checkpoint.size))
        .orderBy('seq')
        .limit(pageSize)
        .execute();
      if (rows.length === 0) break;
      // The stored text is what was hashed: it goes out as it is (details_jcs).
      for (const row of rows) yield exportEventLine(ledgerEventOfRow(row), row.details);
      next = toNumber(rows[rows.length - 1]!.seq, 'seq') + 1;
    }
    yield exportCheckpointLine(checkpoint.note);
  }

  #readNodes(): ReturnType<typeof treeNodeReader> {
    return treeNodeReader(this.#db);
  }

  /** The key that signs event `seq` and checkpoints of size `seq`: `logKey` until the stored chain's first key change, then the keys it names. */
  async #keyAt(seq: number): Promise<VerifierKey> {
    const { crypto, origin, logKey } = this.#options;
    return verifierKey(crypto, origin, (await storedSchedule(crypto, this.#db, logKey.publicKey, seq)).keyFor(seq));
  }

  async #open(note: string, size: number, rootHash: Uint8Array): Promise<StoredCheckpoint> {
    const { crypto, origin } = this.#options;
    const { checkpoint } = openCheckpoint(crypto, note, { origin, logKey: await this.#keyAt(size) });
    if (checkpoint.size !== size || !crypto.equal(checkpoint.rootHash, rootHash)) {
      throw new LedgerError('E_CHECKPOINT', `stored checkpoint ${size}: its columns disagree with its signed note`, { size });
    }
    return { ...checkpoint, note };
  }
}

