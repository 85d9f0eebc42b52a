/**
 * `verify` (DESIGN §4, seed S4.2 verify_integrity): recomputes every event hash, chain
 * link and signature, rebuilds the Merkle tree and compares it with every stored node,
 * stored checkpoint, held checkpoint and the head row, and reports the FIRST problem in
 * sequence order. It streams the events table in keyset pages (`seq >= next order by
 * seq limit page`), so memory does not grow with the ledger.
 *
 * It reads one snapshot: outside a transaction it opens a read-only REPEATABLE READ one,
 * so appends during a long verify neither show up as rows beyond the head nor as a gap.
 */
import type { Kysely, Transaction } from 'kysely';
import type { CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { GENESIS_PREVIOUS_HASH, checkProducer, computeEventHash } from '@bulwark/events';
import { LedgerKeySchedule } from '@bulwark/ledger-reader';
import { olderCheckpointProblem, openArchiveAnchor } from './archive-anchor.js';
import { isLedgerError, LedgerError } from './errors.js';
import { CompactRange, type NodeId } from './merkle/compact-range.js';
import { leafHash } from './merkle/hash.js';
import { openCheckpoint, parseCheckpoint, type Checkpoint } from './note/checkpoint.js';
import { verifierKey, type VerifierKey } from './note/keys.js';
import { parseNote } from './note/signed-note.js';
import { observeStored } from './signing-keys.js';
import { bytes, hashedFieldsOfRow, joinEdge, nodeKey, toNumber, type EventRow } from './store/rows.js';
import type { LedgerDatabase } from './store/schema.js';

export interface VerifyOptions {
  readonly crypto: CryptoProvider;
  readonly origin: string;
  /**
   * The ledger's first key (after an archive, the key in force at its anchor): the events and
   * checkpoints up to the chain's first key change must verify with it, and the later ones with
   * the keys the chain's changes name (signing-keys.ts).
   */
  readonly logKey: VerifierKey;
  /** Signed checkpoints held outside the database (by clients, witnesses, an auditor): they detect truncation and rewrites. */
  readonly heldCheckpoints?: readonly string[];
  /** Rows per page (default 2000). */
  readonly pageSize?: number;
  /** Called after each page with the events verified so far and the head's size (for a progress bar). */
  readonly onProgress?: (verified: number, headSize: number) => void;
}

export type VerifyProblem =
  | 'gap'
  | 'event_hash mismatch'
  | 'previous_hash does not link'
  | 'signature invalid'
  | 'forbidden producer'
  | 'ledger key change'
  | 'beyond head'
  | 'tree node mismatch'
  | 'checkpoint invalid'
  | 'checkpoint mismatch'
  | 'truncated'
  | 'head mismatch';

export type VerifyReport =
  | {
      readonly ok: true;
      readonly size: number;
      readonly rootHash: Uint8Array;
      readonly checkpointsChecked: number;
      readonly heldCheckpointsChecked: number;
    }
  | {
      readonly ok: false;
      /** The first bad sequence number, when the problem is one event (or a missing one). */
      readonly seq?: number;
      readonly problem: VerifyProblem;
      /** One line: "seq 1234: event_hash mismatch", "gap: seq 500 missing", ... */
      readonly message: string;
    };

type Db = Kysely<LedgerDatabase> | Transaction<LedgerDatabase>;

/**
 * A checkpoint met when the rebuilt tree reaches its size, and only then opened: it is signed by
 * the key in force at that size, which the chain names on the way.
 */
interface PendingCheckpoint {
  readonly size: number;
  readonly source: string;
  /** The signed note; undefined when the stored row already failed (`invalid`). */
  readonly note?: string;
  /** The verifier's own input, not the database's: a note that does not verify is bad usage, not a finding. */
  readonly held?: number;
  /** The stored root hash column, compared with the signed note. */
  readonly rootColumn?: Uint8Array;
  readonly invalid?: string;
}

class Failure {
  constructor(readonly report: Extract<VerifyReport, { ok: false }>) {}
}

function fail(problem: VerifyProblem, message: string, seq?: number): Failure {
  return new Failure(seq === undefined ? { ok: false, problem, message } : { ok: false, seq, problem, message });
}

export async function verifyLedger(db: Db, options: VerifyOptions): Promise<VerifyReport> {
  if (db.isTransaction) return run(db, options);
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((trx) => run(trx, options));
}

async function run(db: Db, options: VerifyOptions): Promise<VerifyReport> {
  try {
    return await verifyInSnapshot(db, options);
  } catch (err) {
    if (err instanceof Failure) return err.report;
    throw err;
  }
}

function openHeld(options: VerifyOptions): PendingCheckpoint[] {
  return (options.heldCheckpoints ?? []).map((note, i) => {
    try {
      const checkpoint = parseCheckpoint(parseNote(note).text);
      if (checkpoint.origin !== options.origin) throw new LedgerError('E_CHECKPOINT', `checkpoint: origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(options.origin)}`);
      return { size: checkpoint.size, source: `held checkpoint ${i + 1} (size ${checkpoint.size})`, note, held: i };
    } catch (cause) {
      throw heldProblem(i, cause);
    }
  });
}

function heldProblem(index: number, cause: unknown): InputError {
  return new InputError('E_CHECKPOINT', `held checkpoint ${index + 1} does not verify: ${isLedgerError(cause) ? cause.message : String(cause)}`, { index }, { cause });
}

async function storedCheckpoints(db: Db): Promise<PendingCheckpoint[]> {
  const rows = await db.selectFrom('checkpoints').select(['tree_size', 'root_hash', 'note']).orderBy('tree_size').execute();
  // A size out of the safe range can only come from tampering; it still sorts, and the note check fails it.
  return rows.map((row) => ({ size: Number(row.tree_size), source: `stored checkpoint ${row.tree_size}`, note: row.note, rootColumn: bytes(row.root_hash) }));
}

/** Opens a pending checkpoint under the key in force at its size: its checkpoint, or the finding (a held one that does not verify throws). */
function openPending(cp: PendingCheckpoint, options: VerifyOptions, key: Uint8Array): Checkpoint {
  if (cp.invalid !== undefined || cp.note === undefined) throw fail('checkpoint invalid', `${cp.source}: ${cp.invalid ?? 'no note'}`);
  let checkpoint: Checkpoint;
  try {
    checkpoint = openCheckpoint(options.crypto, cp.note, { origin: options.origin, logKey: verifierKey(options.crypto, options.origin, key) }).checkpoint;
  } catch (cause) {
    if (cp.held !== undefined) throw heldProblem(cp.held, cause);
    throw fail('checkpoint invalid', `${cp.source}: ${isLedgerError(cause) ? cause.message : String(cause)}`);
  }
  if (cp.rootColumn !== undefined && (checkpoint.size !== cp.size || !options.crypto.equal(checkpoint.rootHash, cp.rootColumn))) {
    throw fail('checkpoint invalid', `${cp.source}: its columns disagree with its signed note`);
  }
  return checkpoint;
}

/** Stored nodes completed by leaves [first, last]: node (L, I) is completed by leaf (I+1)·2^L − 1. */
async function nodesCompletedBy(db: Db, first: number, last: number): Promise<Map<string, Uint8Array>> {
  const ranges: { level: number; from: number; to: number }[] = [];
  for (let level = 0; 2 ** level <= last + 1; level++) {
    const width = 2 ** level;
    const from = Math.ceil((first + 1) / width) - 1;
    const to = Math.floor((last + 1) / width) - 1;
    if (from <= to) ranges.push({ level, from, to });
  }
  if (ranges.length === 0) return new Map();
  const rows = await db
    .selectFrom('tree_nodes')
    .select(['level', 'idx', 'hash'])
    .where((eb) => eb.or(ranges.map((r) => eb.and([eb('level', '=', r.level), eb('idx', '>=', BigInt(r.from)), eb('idx', '<=', BigInt(r.to))]))))
    .execute();
  return new Map(rows.map((r) => [nodeKey({ level: r.level, index: toNumber(r.idx, 'tree_nodes.idx') }), bytes(r.hash)]));
}

function describeNode(id: NodeId): string {
  const width = 2 ** id.level;
  return `tree node level ${id.level} index ${id.index} (seq ${id.index * width}..${(id.index + 1) * width - 1})`;
}

async function verifyInSnapshot(db: Db, options: VerifyOptions): Promise<VerifyReport> {
  const { crypto } = options;
  const pageSize = options.pageSize ?? 2000;
  const held = openHeld(options);
  const head = await db.selectFrom('ledger_head').selectAll().executeTakeFirst();
  if (head === undefined) return { ok: false, problem: 'head mismatch', message: 'ledger_head: the row is missing' };
  const headSize = Number(head.size);
  if (!Number.isSafeInteger(headSize) || headSize < 0) return { ok: false, problem: 'head mismatch', message: `ledger_head: size ${head.size} is out of range` };
  const stored = await storedCheckpoints(db);
  // Checkpoints are checked when the rebuilt tree reaches their size; sort by size so the first problem in seq order wins.
  const pending = [...stored, ...held].sort((a, b) => a.size - b.size);
  let nextCheckpoint = 0;

  // After an archive, events start at the anchor F (archive-anchor.ts): continue the tree and chain from there.
  const opened = await openArchiveAnchor(db, options);
  if (!opened.ok) throw fail(opened.problem.kind, opened.problem.message, opened.problem.seq);
  const anchor = opened.anchor;
  const range = anchor === undefined ? new CompactRange(crypto) : new CompactRange(crypto, anchor.size, anchor.edge);
  let previous: Uint8Array = anchor === undefined ? GENESIS_PREVIOUS_HASH : anchor.previousHash;
  if (anchor !== undefined) {
    while (nextCheckpoint < pending.length && pending[nextCheckpoint]!.size < anchor.size) {
      const cp = pending[nextCheckpoint]!;
      nextCheckpoint += 1;
      // Signed before the anchor: by the key in force there as far as this verifier knows (the keys before it went with the archive).
      const checkpoint = openPending(cp, options, options.logKey.publicKey);
      const why = await olderCheckpointProblem(db, crypto, cp.size, checkpoint.rootHash, anchor);
      if (why !== undefined) throw fail('checkpoint mismatch', `${cp.source}: not consistent with the archive anchor at ${anchor.size}: ${why}`);
    }
  }

  // The ledger's keys as its chain names them, from the first stored event on.
  const schedule = new LedgerKeySchedule(options.logKey.publicKey, range.size);
  const checkCheckpointsAt = (size: number): void => {
    // Called at every size 0, 1, 2, ... in turn, so each pending checkpoint is met at exactly its size.
    while (nextCheckpoint < pending.length && pending[nextCheckpoint]!.size <= size) {
      const cp = pending[nextCheckpoint]!;
      nextCheckpoint += 1;
      const checkpoint = openPending(cp, options, schedule.keyFor(size));
      if (!crypto.equal(checkpoint.rootHash, range.root())) {
        throw fail('checkpoint mismatch', `${cp.source}: root hash does not match the events (history rewritten after it was signed)`);
      }
    }
  };
  checkCheckpointsAt(range.size);

  for (;;) {
    const next = range.size;
    const rows: EventRow[] = await db.selectFrom('events').selectAll().where('seq', '>=', BigInt(next)).orderBy('seq').limit(pageSize).execute();
    if (rows.length === 0) break;
    const nodes = await nodesCompletedBy(db, next, next + rows.length - 1);

    for (const row of rows) {
      const seq = range.size;
      // Compared as bigint: a seq moved beyond 2^53 is still just a gap here, not a crash.
      if (BigInt(row.seq) !== BigInt(seq)) throw fail('gap', `gap: seq ${seq} missing`, seq);

      let recomputed: Uint8Array | undefined;
      try {
        recomputed = computeEventHash(crypto, hashedFieldsOfRow(row));
      } catch {
        recomputed = undefined; // a field that cannot even be encoded (wrong hash length, say) is a mismatch
      }
      const eventHash = bytes(row.event_hash);
      if (recomputed === undefined || !crypto.equal(recomputed, eventHash)) throw fail('event_hash mismatch', `seq ${seq}: event_hash mismatch`, seq);
      if (!crypto.equal(bytes(row.previous_hash), previous)) {
        throw fail('previous_hash does not link', seq === 0 ? 'seq 0: previous_hash is not the genesis value (32 zero bytes)' : `seq ${seq}: previous_hash does not link to seq ${seq - 1}`, seq);
      }
      if (!crypto.ed25519.verify(schedule.keyFor(seq), eventHash, bytes(row.signature))) throw fail('signature invalid', `seq ${seq}: signature invalid`, seq);
      // Hashed and signed, yet its producer may not produce it: the ingest check was bypassed (DESIGN §3a).
      const forbidden = checkProducer(row.producer, row.event_type, row.agent_id);
      if (forbidden !== null) throw fail('forbidden producer', `seq ${seq}: forbidden producer: ${forbidden}`, seq);
      const change = observeStored(schedule, { seq, producer: row.producer, eventType: row.event_type, agentId: row.agent_id, detailsJcs: row.details });
      if (change !== null) throw fail('ledger key change', `seq ${seq}: ${change}`, seq);
      if (seq >= headSize) throw fail('beyond head', `seq ${seq}: beyond the ledger head (size ${headSize}): appended outside the ledger`, seq);

      for (const node of range.append(leafHash(crypto, eventHash))) {
        const storedHash = nodes.get(nodeKey(node));
        if (storedHash === undefined || !crypto.equal(storedHash, node.hash)) {
          throw fail('tree node mismatch', `${describeNode(node)}: ${storedHash === undefined ? 'missing' : 'hash mismatch'}`);
        }
      }
      previous = eventHash;
      checkCheckpointsAt(range.size);
    }
    options.onProgress?.(range.size, headSize);
  }

  const count = range.size;
  const beyond = pending[nextCheckpoint];
  if (beyond !== undefined) {
    openPending(beyond, options, schedule.keyFor(beyond.size));
    throw fail('truncated', `truncated: seq ${count} missing: the ledger ends after ${count} events but ${beyond.source} covers ${beyond.size}`, count);
  }
  if (count < headSize) throw fail('truncated', `truncated: seq ${count} missing: the ledger ends after ${count} events but its head says ${headSize}`, count);
  if (!crypto.equal(bytes(head.head_hash), previous) || !crypto.equal(bytes(head.edge), joinEdge(range.edge))) {
    throw fail('head mismatch', 'ledger_head: head hash or Merkle edge does not match the events');
  }
  return { ok: true, size: count, rootHash: range.root(), checkpointsChecked: stored.length, heldCheckpointsChecked: held.length };
}
