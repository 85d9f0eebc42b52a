/**
 * The boundary an archive leaves behind (see archive.ts). Pruning deletes event rows
 * [0, F) only; tree_nodes, checkpoints and the head stay. The boundary is anchored by the
 * signed checkpoint stored at size F: the Merkle edge at F, read from tree_nodes, must
 * rebuild that checkpoint's root, and the first remaining event's previous_hash must be
 * the leaf at F − 1 of that tree (an inclusion proof from tree_nodes against the same
 * root). Then verification continues from F exactly as if it had replayed [0, F).
 *
 * Older checkpoints (size < F) can no longer be rebuilt from events; each is checked
 * with a consistency proof (from tree_nodes) against the anchor's root, so a rewritten
 * prefix is still caught by any checkpoint signed or held before the archive.
 */
import type { Kysely, Transaction } from 'kysely';
import type { CryptoProvider } from '@bulwark/crypto';
import { isLedgerError } from './errors.js';
import { edgeNodeIds, foldRight } from './merkle/compact-range.js';
import { emptyRoot, leafHash } from './merkle/hash.js';
import { consistencyPlan, inclusionPlan, resolvePlan, verifyConsistency, verifyInclusion } from './merkle/proofs.js';
import { openCheckpoint } from './note/checkpoint.js';
import type { VerifierKey } from './note/keys.js';
import { bytes, toNumber } from './store/rows.js';
import { treeNodeReader } from './store/tree-nodes.js';
import type { LedgerDatabase } from './store/schema.js';

type Db = Kysely<LedgerDatabase> | Transaction<LedgerDatabase>;

export interface AnchorOptions {
  readonly crypto: CryptoProvider;
  readonly origin: string;
  readonly logKey: VerifierKey;
}

export interface ArchiveAnchor {
  /** F: the first seq still stored; events [0, F) are archived. */
  readonly size: number;
  /** The checkpoint's root at F. */
  readonly rootHash: Uint8Array;
  /** The compact range of the tree at F (edgeNodeIds(F)), authenticated by the checkpoint. */
  readonly edge: Uint8Array[];
  /** event_hash of seq F − 1 (the first remaining event's previous_hash, authenticated). */
  readonly previousHash: Uint8Array;
}

/** Why the anchor does not hold, with the seq a verifier should name. */
export interface AnchorProblem {
  readonly kind: 'gap' | 'tree node mismatch' | 'previous_hash does not link' | 'checkpoint invalid';
  readonly seq?: number;
  readonly message: string;
}

export type AnchorResult = { readonly ok: true; readonly anchor: ArchiveAnchor | undefined } | { readonly ok: false; readonly problem: AnchorProblem };

/** The first stored seq (undefined when the events table is empty). */
export async function firstStoredSeq(db: Db): Promise<number | undefined> {
  const row = await db.selectFrom('events').select((eb) => eb.fn.min('seq').as('first')).executeTakeFirst();
  const first = row?.first;
  return first === null || first === undefined ? undefined : toNumber(first as bigint | number, 'events.seq');
}

/**
 * Opens the anchor of an archived ledger: undefined anchor when nothing was archived
 * (the first stored seq is 0, or the table is empty).
 */
export async function openArchiveAnchor(db: Db, options: AnchorOptions): Promise<AnchorResult> {
  const row0 = await db.selectFrom('events').select((eb) => eb.fn.min('seq').as('first')).executeTakeFirst();
  if (row0?.first === null || row0?.first === undefined || BigInt(row0.first as bigint | number) === 0n) return { ok: true, anchor: undefined };
  const first = Number(row0.first);
  // A first seq beyond 2^53 can only be tampering; it is a finding, not a crash.
  if (!Number.isSafeInteger(first)) return { ok: false, problem: { kind: 'gap', seq: 0, message: 'gap: seq 0 missing' } };
  const { crypto } = options;
  const row = await db.selectFrom('checkpoints').select(['tree_size', 'root_hash', 'note']).where('tree_size', '=', BigInt(first)).executeTakeFirst();
  if (row === undefined) {
    return { ok: false, problem: { kind: 'gap', seq: 0, message: `gap: seq 0..${first - 1} missing and no stored checkpoint of size ${first} anchors an archive boundary` } };
  }
  let rootHash: Uint8Array;
  try {
    const { checkpoint } = openCheckpoint(crypto, row.note, { origin: options.origin, logKey: options.logKey });
    if (checkpoint.size !== first || !crypto.equal(checkpoint.rootHash, bytes(row.root_hash))) throw new Error('its columns disagree with its signed note');
    rootHash = checkpoint.rootHash;
  } catch (cause) {
    const why = isLedgerError(cause) || cause instanceof Error ? cause.message : String(cause);
    return { ok: false, problem: { kind: 'checkpoint invalid', message: `archive anchor: stored checkpoint ${first}: ${why}` } };
  }
  const read = treeNodeReader(db);
  let edge: Uint8Array[];
  try {
    edge = await read(edgeNodeIds(first));
  } catch (cause) {
    return { ok: false, problem: { kind: 'tree node mismatch', message: `archive anchor at ${first}: ${cause instanceof Error ? cause.message : String(cause)}` } };
  }
  if (!crypto.equal(foldRight(crypto, edge), rootHash)) {
    return { ok: false, problem: { kind: 'tree node mismatch', message: `archive anchor at ${first}: the stored tree nodes do not rebuild the checkpoint's root` } };
  }
  const next = await db.selectFrom('events').select('previous_hash').where('seq', '=', BigInt(first)).executeTakeFirstOrThrow();
  const previousHash = bytes(next.previous_hash);
  try {
    const proof = await resolvePlan(crypto, inclusionPlan(first - 1, first), read);
    verifyInclusion(crypto, first - 1, first, leafHash(crypto, previousHash), proof, rootHash);
  } catch {
    return {
      ok: false,
      problem: { kind: 'previous_hash does not link', seq: first, message: `seq ${first}: previous_hash does not link to the archived seq ${first - 1} anchored by checkpoint ${first}` },
    };
  }
  return { ok: true, anchor: { size: first, rootHash, edge, previousHash } };
}

/** Checks a checkpoint older than the anchor against it; returns why not, or undefined when consistent. */
export async function olderCheckpointProblem(db: Db, crypto: CryptoProvider, size: number, rootHash: Uint8Array, anchor: ArchiveAnchor): Promise<string | undefined> {
  if (size === 0) return crypto.equal(rootHash, emptyRoot(crypto)) ? undefined : 'root hash of size 0 is not the empty root';
  try {
    const proof = await resolvePlan(crypto, consistencyPlan(size, anchor.size), treeNodeReader(db));
    verifyConsistency(crypto, size, anchor.size, proof, rootHash, anchor.rootHash);
    return undefined;
  } catch (cause) {
    return cause instanceof Error ? cause.message : String(cause);
  }
}
