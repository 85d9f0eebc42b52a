/**
 * The ledger (DESIGN §4): appends batches of events to the hash chain, the Merkle tree
 * and (every N events) a signed checkpoint, all in one PostgreSQL transaction; serves
 * inclusion and consistency proofs; records witness cosignatures.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { CryptoProvider } from '@bulwark/crypto';
import { migrateToLatest, type MigrationReport } from '@bulwark/store';
import { InputError } from '@bulwark/errors';
import { HASH_LENGTH, SIGNATURE_LENGTH, checkProducer, computeEventHash, isPrincipalId, isUuidV7, validateEventCanonical, type AuditEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { ForbiddenProducerError, LedgerError } from './errors.js';
import { CompactRange, edgeNodeIds, foldRight } from './merkle/compact-range.js';
import { leafHash } from './merkle/hash.js';
import { consistencyPlan, inclusionPlan, resolvePlan, rootPlan } from './merkle/proofs.js';
import { parseCheckpoint, signCheckpoint, type Checkpoint } from './note/checkpoint.js';
import { LedgerKeySchedule, type LedgerKeyStep } from '@bulwark/ledger-reader';
import { ED25519_SIGNATURE_TYPE, verifierKey, type SignerKey, type VerifierKey } from './note/keys.js';
import { addSignatures, openNote, parseNote } from './note/signed-note.js';
import type { WorkerSignerOptions } from './signer/worker-signer.js';
import { namesLedgerKey, scheduleAfter, SignerPool, storedSchedule, type LedgerSigningKeys } from './signing-keys.js';
import { bytes, joinEdge, ledgerEventOfRow, splitEdge, toNumber } from './store/rows.js';
import { LEDGER_MIGRATIONS, type LedgerDatabase } from './store/schema.js';
import { treeNodeReader } from './store/tree-nodes.js';

export type LedgerDb = Kysely<LedgerDatabase>;

export interface LedgerOptions {
  readonly crypto: CryptoProvider;
  /** The log's name, the first line of every checkpoint (e.g. `bulwark.example/audit`). */
  readonly origin: string;
  /**
   * The ledger's Ed25519 key, for a ledger that never rotates it: signs every event_hash and every
   * checkpoint. Its name should be the origin. Give this or `signingKeys`.
   */
  readonly signer?: SignerKey;
  /**
   * The ledger's keys along its chain (signing-keys.ts): the first one and whichever later ones
   * this process holds; each event is signed by the key the chain puts in force at its seq.
   */
  readonly signingKeys?: LedgerSigningKeys;
  /** Sign a checkpoint when an append crosses a multiple of this many events (default 1000; 0: never automatically). */
  readonly checkpointEvery?: number;
  /**
   * Sign event hashes on worker threads (the service does: the next batch is hashed while
   * this one is signed); `close()` ends them. Default: in the calling thread.
   */
  readonly signingWorkers?: Omit<WorkerSignerOptions, 'crypto' | 'secretKey' | 'publicKey'>;
}

export interface StoredCheckpoint extends Checkpoint {
  /** The signed note, with any cosignatures. */
  readonly note: string;
}

/** An event as appended: sealed, with the RFC 8785 text of its details that was hashed and stored. */
export type StoredEvent = LedgerEvent & { readonly detailsJcs: string };

export interface AppendResult {
  /** The events this call added, in order, sealed. */
  readonly appended: readonly StoredEvent[];
  /** Event ids already in the ledger (or repeated within the batch): not appended again. */
  readonly duplicates: readonly string[];
  readonly size: number;
  /** The checkpoint this append signed, if it crossed a checkpoint boundary. */
  readonly checkpoint?: StoredCheckpoint;
}

export interface LedgerHead {
  readonly size: number;
  /** event_hash of the last event (32 zero bytes when empty). */
  readonly headHash: Uint8Array;
  readonly rootHash: Uint8Array;
}

export interface InclusionProof {
  readonly seq: number;
  readonly treeSize: number;
  /** SHA-256(0x00 || event_hash). */
  readonly leafHash: Uint8Array;
  readonly proof: readonly Uint8Array[];
}

declare const prepared: unique symbol;

/** PostgreSQL's SQLSTATE for a unique index refusing a row. */
const UNIQUE_VIOLATION = '23505';

/** The head a batch leaves if it commits, and the ids it adds. */
interface Projection {
  readonly size: number;
  readonly headHash: Uint8Array;
  readonly edgeBytes: Uint8Array;
  readonly range: CompactRange;
  readonly pendingIds: ReadonlySet<string>;
  /** The ledger's keys up to that head. */
  readonly schedule: LedgerKeySchedule;
}

/** A batch hashed and placed in the tree on top of a given head, its signatures under way, not yet written. */
interface SealedBatch {
  readonly size: number;
  readonly fresh: readonly PreparedEvent[];
  readonly duplicates: string[];
  /**
   * The head hash, then each event hash in seq order, 32 bytes each: event i's previous_hash
   * is slot i and its event_hash slot i + 1. Written to PostgreSQL as one bytea, sliced there.
   */
  readonly chain: Uint8Array;
  /** The signatures of the event hashes (64 bytes each), from the event signer. */
  readonly signatures: Promise<Uint8Array>;
  /** The tree nodes the batch completes: levels, indices, and their hashes concatenated. */
  readonly nodes: { readonly level: number[]; readonly idx: number[]; readonly hashes: Uint8Array };
  readonly newSize: number;
  readonly newHead: Uint8Array;
  readonly newEdge: Uint8Array;
  /** The range after the batch (owned by the batch). */
  readonly range: CompactRange;
  /** The ledger's keys after the batch (the one it started on, unless it holds a key change). */
  readonly schedule: LedgerKeySchedule;
}

/**
 * An event `prepareEvent` validated and found allowed for its producer, with the RFC 8785
 * text of its details (what is hashed and stored).
 */
export type PreparedEvent = AuditEvent & { readonly producer: string; readonly detailsJcs: string; readonly [prepared]: true };

/** An event as it reached the ledger: what the producer sent, and who the envelope says sent it. */
export interface ProducedEvent {
  /** The authenticated sender of the frame that delivered the event (DESIGN §3a), never a field of the event. */
  readonly producer: string;
  readonly event: unknown;
}

/**
 * Validates a producer's event (InputError on bad input), canonicalises its details once,
 * and checks that `producer` may produce it (`checkProducer`, DESIGN §3a): a
 * ForbiddenProducerError (E_EVENT_PRODUCER) otherwise, so nothing forbidden is ever sealed.
 * Any `producer` field of the input is ignored: the producer is the one given here.
 * `detailsText`: the JSON text `input.details` was just parsed from (validateEventCanonical).
 */
export function prepareEvent(input: unknown, producer: string, detailsText?: string): PreparedEvent {
  if (!isPrincipalId(producer)) throw new InputError('E_EVENT_PRODUCER', `ledger: producer ${JSON.stringify(String(producer).slice(0, 80))} is not a principal id`, { producer });
  const { event, detailsJcs } = validateEventCanonical(input, detailsText);
  const reason = checkProducer(producer, event.eventType, event.agentId);
  if (reason !== null) throw new ForbiddenProducerError({ producer, eventType: event.eventType, agentId: event.agentId, eventId: event.eventId, reason });
  return { ...event, producer, detailsJcs } as PreparedEvent;
}

export async function migrateLedger(db: LedgerDb): Promise<MigrationReport> {
  return migrateToLatest(db, LEDGER_MIGRATIONS);
}

export class AuditLedger {
  readonly #db: LedgerDb;
  readonly #readNodes: ReturnType<typeof treeNodeReader>;
  readonly #crypto: CryptoProvider;
  readonly #origin: string;
  readonly #keys: LedgerSigningKeys;
  readonly #checkpointEvery: number;
  readonly #signers: SignerPool;
  /** The compact range and key schedule this process last wrote, so an append need not rebuild them from the stored rows. */
  #range: { size: number; edgeBytes: Uint8Array; range: CompactRange; schedule: LedgerKeySchedule } | undefined;
  /** The state the last sealed batch leaves if it commits, and its ids (appendPipelined seals the next batch on it). */
  #projected: Projection | undefined;
  #pipeline: Promise<unknown> = Promise.resolve();
  #sealing: Promise<unknown> = Promise.resolve();

  constructor(db: LedgerDb, options: LedgerOptions) {
    const every = options.checkpointEvery ?? 1000;
    if (!Number.isSafeInteger(every) || every < 0) throw new LedgerError('E_LEDGER', `checkpointEvery ${every} is not a non-negative integer`);
    if (options.origin.length === 0 || options.origin.includes('\n')) throw new LedgerError('E_LEDGER', 'origin must be one non-empty line');
    if ((options.signer === undefined) === (options.signingKeys === undefined)) throw new LedgerError('E_KEY', 'ledger: give either signer or signingKeys');
    const single = options.signer;
    this.#keys = options.signingKeys ?? { genesis: single!.publicKey, held: (publicKey) => (options.crypto.equal(publicKey, single!.publicKey) ? single : undefined) };
    this.#db = db;
    this.#readNodes = treeNodeReader(db);
    this.#crypto = options.crypto;
    this.#origin = options.origin;
    this.#checkpointEvery = every;
    this.#signers = new SignerPool(options.crypto, options.signingWorkers);
    if (single !== undefined) this.#signerFor(new LedgerKeySchedule(single.publicKey).current);
  }

  /** Signing requests that failed (a signing worker crashed, timed out or answered wrongly); each failed its batch. */
  get signerFailures(): number {
    return this.#signers.failures;
  }

  /** Ends the signing workers, if any (appends after this fail). The database is the caller's. */
  async close(): Promise<void> {
    await this.#signers.close();
  }

  get origin(): string {
    return this.#origin;
  }

  /**
   * The key that verifies this ledger's events and checkpoints from its head on, as this process
   * last wrote or read it (`keyInForce` asks the database); the first key until then.
   */
  get verifierKey(): VerifierKey {
    return verifierKey(this.#crypto, this.#origin, this.#range?.schedule.current.ed25519PublicKey ?? this.#keys.genesis);
  }

  /** The ledger's first key: a verifier of the whole chain starts from it (`verifyLedger`'s `logKey`). */
  get genesisKey(): VerifierKey {
    return verifierKey(this.#crypto, this.#origin, this.#keys.genesis);
  }

  /** The key in force at the stored head, with its version and the seq it signs from. */
  async keyInForce(): Promise<{ readonly key: VerifierKey; readonly version: number; readonly fromSeq: number }> {
    const { size } = await this.head();
    const step = (await storedSchedule(this.#crypto, this.#db, this.#keys.genesis, size)).current;
    return { key: verifierKey(this.#crypto, this.#origin, step.ed25519PublicKey), version: step.version, fromSeq: step.fromSeq };
  }

  /** The key that signs event `seq` (and checkpoints of size `seq`), as the stored chain names it; for `seq` up to the head. */
  async keyAt(seq: number): Promise<VerifierKey> {
    return verifierKey(this.#crypto, this.#origin, (await storedSchedule(this.#crypto, this.#db, this.#keys.genesis, seq)).keyFor(seq));
  }

  /** The key pair of a key the chain puts in force; E_KEY if this process does not hold it (nothing is signed then). */
  #signerFor(step: LedgerKeyStep): SignerKey {
    const key = this.#keys.held(step.ed25519PublicKey);
    if (key === undefined || !this.#crypto.equal(key.publicKey, step.ed25519PublicKey)) {
      throw new LedgerError('E_KEY', `ledger: the key in force from seq ${step.fromSeq} (version ${step.version}) is not held by this process: nothing can be signed`, { fromSeq: step.fromSeq, version: step.version });
    }
    // The ledger signs plain notes (type 0x01); a cosignature/v1 key (0x04) is a witness's.
    if (key.type !== ED25519_SIGNATURE_TYPE) throw new LedgerError('E_KEY', `ledger key ${key.name} must be a plain Ed25519 note key (type 0x01)`);
    return key;
  }

  /**
   * Validates (they are producers' input), checks each producer's authority, seals and
   * stores `events` in one transaction. An event id already stored (or repeated in the
   * batch) is skipped without using a seq. Bad input or a forbidden producer throws an
   * InputError before the database is touched; any failure rolls the whole batch back.
   */
  async append(events: readonly ProducedEvent[]): Promise<AppendResult> {
    return this.appendPrepared(events.map(({ event, producer }) => prepareEvent(event, producer)));
  }

  /**
   * `append` for events that `prepareEvent` already validated and canonicalised (the
   * service decodes and prepares each message as it arrives, so the batch path does not
   * canonicalise details twice).
   *
   * One transaction, a fixed number of round trips whatever the batch size: lock the head,
   * look up the batch's ids, insert every event row and every tree node with one
   * `insert ... select from unnest(arrays)` each, update the head, maybe a checkpoint.
   */
  async appendPrepared(events: readonly PreparedEvent[]): Promise<AppendResult> {
    if (events.length === 0) return { appended: [], duplicates: [], size: (await this.head()).size };
    return this.#db.transaction().execute((trx) => this.#appendInTransaction(trx, events));
  }

  /**
   * `appendPrepared` for a stream of batches: the hashing and signing of this batch overlap
   * the commit of the previous one. The batch is sealed against the state the previous
   * pipelined append will leave, and committed after it, in call order. Its transaction
   * checks under the head lock that the head is exactly that state (the previous batch
   * committed and nobody else appended); otherwise it recomputes everything there, as
   * `appendPrepared` does. So the result is the same as calling `appendPrepared` in turn.
   */
  appendPipelined(events: readonly PreparedEvent[]): Promise<AppendResult> {
    const previousCommit = this.#pipeline;
    // Seals run in call order (each on the projection the one before left); commits too.
    const sealing = this.#sealing.then(() => this.#sealOnProjection(events, previousCommit));
    this.#sealing = sealing.catch(() => undefined);
    const run = (async (): Promise<AppendResult> => {
      let ready: Awaited<typeof sealing>;
      let signatures: Uint8Array | undefined;
      let failure: { error: unknown } | undefined;
      try {
        ready = await sealing;
        // Signed (off this thread, with signing workers) while the previous batch commits.
        signatures = ready === undefined ? undefined : await ready.sealed.signatures;
      } catch (error) {
        failure = { error };
        this.#projected = undefined;
      }
      // Even a batch that failed settles only after the one before it: the next one's transaction must not overtake that.
      await previousCommit.catch(() => undefined);
      try {
        if (failure !== undefined) throw failure.error;
        if (events.length === 0) return { appended: [], duplicates: [], size: (await this.head()).size };
        return await this.#db.transaction().execute(async (trx) => {
          if (ready !== undefined && signatures !== undefined) {
            const { basis, sealed } = ready;
            const head = await trx.selectFrom('ledger_head').selectAll().forUpdate().executeTakeFirstOrThrow();
            // The head hash commits to the whole chain: equal means exactly the projected events are stored.
            if (toNumber(head.size, 'ledger_head.size') === basis.size && this.#crypto.equal(bytes(head.head_hash), basis.headHash) && this.#crypto.equal(bytes(head.edge), basis.edgeBytes)) {
              return this.#write(trx, sealed, signatures);
            }
          }
          return this.#appendInTransaction(trx, events);
        });
      } catch (error) {
        // Whatever was sealed on this batch's outcome will find the head different and recompute.
        this.#projected = undefined;
        throw error;
      }
    })();
    this.#pipeline = run;
    return run;
  }

  /** Hashes and signs a batch on the projected head (undefined when there is none: the transaction then does it all). */
  async #sealOnProjection(events: readonly PreparedEvent[], previousCommit: Promise<unknown>): Promise<{ basis: Projection; sealed: SealedBatch } | undefined> {
    if (events.length === 0) return undefined;
    // No projection yet (the first batch, or the one after a failure): the batch before leaves
    // one when it commits. Waiting for it keeps this batch's hashing and signing out of its
    // own transaction, and so the batches after it pipelined.
    if (this.#projected === undefined) await previousCommit.catch(() => undefined);
    const ids = [...new Set(events.map((e) => e.eventId))];
    // Ids committed before this read are in `found`; those of the batch still committing are its projection's pendingIds.
    const found = await sql<{ event_id: string }>`select event_id from events where event_id = any(${ids}::uuid[])`.execute(this.#db);
    const basis = this.#projected;
    if (basis === undefined) return undefined;
    const stored = new Set(found.rows.map((r) => r.event_id));
    for (const id of basis.pendingIds) stored.add(id);
    const sealed = this.#seal(events, stored, basis.size, basis.headHash, basis.range.clone(), basis.schedule);
    this.#projected = { size: sealed.newSize, headHash: sealed.newHead, edgeBytes: sealed.newEdge, range: sealed.range, pendingIds: new Set(sealed.fresh.map((e) => e.eventId)), schedule: sealed.schedule };
    return { basis, sealed };
  }

  async #appendInTransaction(trx: Transaction<LedgerDatabase>, events: readonly PreparedEvent[]): Promise<AppendResult> {
    const head = await trx.selectFrom('ledger_head').selectAll().forUpdate().executeTakeFirstOrThrow();
    const size = toNumber(head.size, 'ledger_head.size');
    const headHash = bytes(head.head_hash);
    const edge = bytes(head.edge);
    // The head row is the truth (another instance may have appended); the cached range is
    // reused only when the row still says what this process last wrote.
    const cached = this.#range;
    const fromCache = cached !== undefined && cached.size === size && this.#crypto.equal(cached.edgeBytes, edge);
    const range = fromCache ? cached.range.clone() : new CompactRange(this.#crypto, size, splitEdge(edge));
    const schedule = fromCache ? cached.schedule : await storedSchedule(this.#crypto, trx, this.#keys.genesis, size);
    const ids = [...new Set(events.map((e) => e.eventId))];
    const found = await sql<{ event_id: string }>`select event_id from events where event_id = any(${ids}::uuid[])`.execute(trx);
    const sealed = this.#seal(events, new Set(found.rows.map((r) => r.event_id)), size, headHash, range, schedule);
    if (sealed.fresh.length === 0) {
      this.#projected = { size, headHash, edgeBytes: edge, range: range.clone(), pendingIds: new Set(), schedule };
      return { appended: [], duplicates: sealed.duplicates, size };
    }
    this.#projected = { size: sealed.newSize, headHash: sealed.newHead, edgeBytes: sealed.newEdge, range: sealed.range.clone(), pendingIds: new Set(sealed.fresh.map((e) => e.eventId)), schedule: sealed.schedule };
    return this.#write(trx, sealed, await sealed.signatures);
  }

  /**
   * Dedupe, seqs, hashes and Merkle nodes of a batch on top of (size, headHash, range), on
   * this thread; the signatures are requested from the event signer at the end, so a
   * worker signs this batch while this thread goes on with the next.
   */
  #seal(events: readonly PreparedEvent[], stored: ReadonlySet<string>, size: number, headHash: Uint8Array, range: CompactRange, startSchedule: LedgerKeySchedule): SealedBatch {
    const duplicates: string[] = [];
    const fresh: PreparedEvent[] = [];
    const seen = new Set<string>();
    for (const event of events) {
      if (stored.has(event.eventId) || seen.has(event.eventId)) duplicates.push(event.eventId);
      else fresh.push(event);
      seen.add(event.eventId);
    }
    const n = fresh.length;
    const chain = new Uint8Array((n + 1) * HASH_LENGTH);
    chain.set(headHash, 0);
    // Each append completes its leaf plus one node per trailing 1 bit of the size: fewer than 2n + 64 in all.
    let nodeHashes: Uint8Array = new Uint8Array((2 * n + 64) * HASH_LENGTH);
    const level: number[] = [];
    const idx: number[] = [];
    // Runs of events under one key: a key change is signed by the key it retires, the events after it by the one it names.
    let schedule = startSchedule;
    const runs: { from: number; key: SignerKey }[] = [{ from: 0, key: this.#signerFor(schedule.current) }];
    for (let i = 0; i < n; i++) {
      const event = fresh[i]!;
      // The stored details are the very text that was hashed: verify recomputes from the row.
      const eventHash = computeEventHash(this.#crypto, {
        seq: size + i,
        eventId: event.eventId,
        timestamp: event.timestamp,
        producer: event.producer,
        agentId: event.agentId,
        eventType: event.eventType,
        detailsJcs: event.detailsJcs,
        previousHash: chain.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH),
      });
      chain.set(eventHash, (i + 1) * HASH_LENGTH);
      if (namesLedgerKey(event)) {
        const next = scheduleAfter(schedule, { seq: size + i, producer: event.producer, eventType: event.eventType, agentId: event.agentId, details: event.details }, this.#keys);
        if (typeof next === 'string') throw new LedgerError('E_KEY', `append: ${next}; batch not stored`, { seq: size + i, eventId: event.eventId });
        if (next !== schedule) {
          schedule = next;
          runs.push({ from: i + 1, key: this.#signerFor(schedule.current) });
        }
      }
      for (const node of range.append(leafHash(this.#crypto, eventHash))) {
        if ((level.length + 1) * HASH_LENGTH > nodeHashes.length) nodeHashes = grow(nodeHashes);
        nodeHashes.set(node.hash, level.length * HASH_LENGTH);
        level.push(node.level);
        idx.push(node.index);
      }
    }
    const hashes = chain.subarray(HASH_LENGTH);
    const signatures = n === 0 ? Promise.resolve(new Uint8Array(0)) : this.#signRuns(hashes, runs, n);
    // Awaited before the batch is written; a batch dropped unwritten (recomputed) must not leave an unhandled rejection.
    signatures.catch(() => undefined);
    const newHead = chain.slice(n * HASH_LENGTH);
    const nodes = { level, idx, hashes: nodeHashes.subarray(0, level.length * HASH_LENGTH) };
    return { size, fresh, duplicates, chain, signatures, nodes, newSize: range.size, newHead, newEdge: joinEdge(range.edge), range, schedule };
  }

  /** The signatures of `n` hashes, each run of them by its key's signer, concatenated in order. */
  async #signRuns(hashes: Uint8Array, runs: readonly { from: number; key: SignerKey }[], n: number): Promise<Uint8Array> {
    const parts = runs
      .map((run, r) => ({ run, to: runs[r + 1]?.from ?? n }))
      .filter(({ run, to }) => to > run.from)
      .map(({ run, to }) => this.#signers.for(run.key).sign(hashes.subarray(run.from * HASH_LENGTH, to * HASH_LENGTH)));
    if (parts.length === 1) return parts[0]!;
    const signed = await Promise.all(parts);
    const out = new Uint8Array(n * SIGNATURE_LENGTH);
    let at = 0;
    for (const part of signed) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /**
   * Inserts a sealed batch with its signatures, moves the head, maybe signs a checkpoint: a
   * fixed number of round trips whatever the batch size. Hashes and signatures go as one
   * binary bytea each, sliced by PostgreSQL (no per-row hex text to build and parse).
   */
  async #write(trx: Transaction<LedgerDatabase>, b: SealedBatch, signatures: Uint8Array): Promise<AppendResult> {
    const { fresh, chain, nodes } = b;
    const n = fresh.length;
    if (n === 0) return { appended: [], duplicates: b.duplicates, size: b.size };
    // No row without its signature: the signer answers for every hash or fails the batch.
    if (signatures.length !== n * SIGNATURE_LENGTH) throw new LedgerError('E_SIGNER', `append: ${signatures.length} bytes of signatures for ${n} events; batch not stored`);
    const appended: StoredEvent[] = new Array<StoredEvent>(n);
    const cols = { id: new Array<string>(n), ts: new Array<number>(n), producer: new Array<string>(n), agent: new Array<string>(n), type: new Array<string>(n), details: new Array<string>(n) };
    for (let i = 0; i < n; i++) {
      const event = fresh[i]!;
      appended[i] = {
        eventId: event.eventId,
        timestamp: event.timestamp,
        producer: event.producer,
        agentId: event.agentId,
        eventType: event.eventType,
        details: event.details,
        detailsJcs: event.detailsJcs,
        seq: b.size + i,
        previousHash: chain.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH),
        eventHash: chain.subarray((i + 1) * HASH_LENGTH, (i + 2) * HASH_LENGTH),
        signature: signatures.subarray(i * SIGNATURE_LENGTH, (i + 1) * SIGNATURE_LENGTH),
      };
      cols.id[i] = event.eventId;
      cols.ts[i] = event.timestamp;
      cols.producer[i] = event.producer;
      cols.agent[i] = event.agentId;
      cols.type[i] = event.eventType;
      cols.details[i] = event.detailsJcs;
    }
    // Row k (from 1) is seq size + k − 1; its previous_hash is chain slot k − 1, its event_hash slot k.
    // A plain insert: the ids were looked up under the head lock, so none can be stored (no
    // speculative `on conflict` insertion per row). If one is anyway, the table changed behind
    // the lock: the unique index refuses it and the whole batch rolls back (a gap in seq must
    // never be committed).
    try {
      await sql`
        insert into events (seq, event_id, timestamp_ms, producer, agent_id, event_type, details, previous_hash, event_hash, signature)
        select ${b.size}::int8 + k - 1, id, ts, producer, agent, type, details,
               substring(${chain}::bytea from (k::int - 1) * 32 + 1 for 32),
               substring(${chain}::bytea from k::int * 32 + 1 for 32),
               substring(${signatures}::bytea from (k::int - 1) * 64 + 1 for 64)
        from unnest(${cols.id}::uuid[], ${cols.ts}::int8[], ${cols.producer}::text[], ${cols.agent}::text[], ${cols.type}::text[], ${cols.details}::text[]) with ordinality as r(id, ts, producer, agent, type, details, k)`.execute(trx);
    } catch (error) {
      if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw new LedgerError('E_LEDGER', 'append: an event id appeared during the transaction; batch rolled back', {}, { cause: error });
      throw error;
    }
    await sql`
      insert into tree_nodes (level, idx, hash)
      select level, idx, substring(${nodes.hashes}::bytea from (k::int - 1) * 32 + 1 for 32)
      from unnest(${nodes.level}::int2[], ${nodes.idx}::int8[]) with ordinality as r(level, idx, k)`.execute(trx);
    await trx.updateTable('ledger_head').set({ size: b.newSize, head_hash: b.newHead, edge: b.newEdge }).execute();

    let checkpoint: StoredCheckpoint | undefined;
    if (this.#checkpointEvery > 0 && Math.floor(b.newSize / this.#checkpointEvery) > Math.floor(b.size / this.#checkpointEvery)) {
      checkpoint = await this.#storeCheckpoint(trx, b.newSize, b.range.root(), b.schedule);
    }
    // Remembered now; if the commit fails, the head row will not match it and it is not used.
    this.#range = { size: b.newSize, edgeBytes: b.newEdge, range: b.range.clone(), schedule: b.schedule };
    return checkpoint === undefined ? { appended, duplicates: b.duplicates, size: b.newSize } : { appended, duplicates: b.duplicates, size: b.newSize, checkpoint };
  }

  async head(): Promise<LedgerHead> {
    const head = await this.#db.selectFrom('ledger_head').selectAll().executeTakeFirstOrThrow();
    return {
      size: toNumber(head.size, 'ledger_head.size'),
      headHash: bytes(head.head_hash),
      rootHash: foldRight(this.#crypto, splitEdge(bytes(head.edge))),
    };
  }

  /** Signs a checkpoint of the current tree (or returns the one already stored at this size). */
  async checkpoint(): Promise<StoredCheckpoint> {
    return this.#db.transaction().execute(async (trx) => {
      const head = await trx.selectFrom('ledger_head').selectAll().forUpdate().executeTakeFirstOrThrow();
      const size = toNumber(head.size, 'ledger_head.size');
      const existing = await this.#checkpointRow(trx, size);
      return existing ?? this.#storeCheckpoint(trx, size, foldRight(this.#crypto, splitEdge(bytes(head.edge))), await storedSchedule(this.#crypto, trx, this.#keys.genesis, size));
    });
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const row = await this.#db.selectFrom('checkpoints').selectAll().orderBy('tree_size', 'desc').limit(1).executeTakeFirst();
    return row === undefined ? undefined : checkpointOfRow(row);
  }

  async checkpointAt(size: number): Promise<StoredCheckpoint | undefined> {
    return this.#checkpointRow(this.#db, size);
  }

  /**
   * Adds a witness's cosignature to the stored checkpoint of the same text. The witness
   * key must be known to the caller; its signature is verified before it is stored.
   */
  async addCosignature(cosignedNote: string, witnessKey: VerifierKey): Promise<StoredCheckpoint> {
    const opened = openNote(this.#crypto, cosignedNote, [witnessKey]);
    const line = opened.verified[0]!;
    const { size } = parseCheckpoint(opened.text);
    return this.#db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('checkpoints').selectAll().where('tree_size', '=', BigInt(size)).forUpdate().executeTakeFirst();
      if (row === undefined || parseNote(row.note).text !== opened.text) {
        throw new LedgerError('E_LEDGER', `cosignature: no stored checkpoint of size ${size} with this text`, { witness: witnessKey.name, size });
      }
      const already = parseNote(row.note).signatures.some((s) => s.name === line.name && s.keyId === line.keyId);
      if (already) return checkpointOfRow(row);
      const note = addSignatures(row.note, [line]);
      await trx.updateTable('checkpoints').set({ note }).where('tree_size', '=', row.tree_size).execute();
      return checkpointOfRow({ ...row, note });
    });
  }

  /** The root hash the tree had at `size` (computed from stored nodes). */
  async rootAt(size: number): Promise<Uint8Array> {
    await this.#checkTreeSize(size);
    const [root] = await resolvePlan(this.#crypto, rootPlan(size), this.#readNodes);
    return root!;
  }

  async inclusionProof(seq: number, treeSize?: number): Promise<InclusionProof> {
    const size = treeSize ?? (await this.head()).size;
    await this.#checkTreeSize(size);
    const row = await this.#db.selectFrom('events').select('event_hash').where('seq', '=', BigInt(seq)).executeTakeFirst();
    if (row === undefined) throw new LedgerError('E_PROOF', `inclusion proof: no event at seq ${seq}`, { seq });
    const proof = await resolvePlan(this.#crypto, inclusionPlan(seq, size), this.#readNodes);
    return { seq, treeSize: size, leafHash: leafHash(this.#crypto, bytes(row.event_hash)), proof };
  }

  async consistencyProof(size1: number, size2?: number): Promise<Uint8Array[]> {
    const to = size2 ?? (await this.head()).size;
    await this.#checkTreeSize(to);
    return resolvePlan(this.#crypto, consistencyPlan(size1, to), this.#readNodes);
  }

  /** The compact range (right-edge subtree hashes, left to right) of the tree at `size`: lets a reader continue the tree from there. */
  async edgeAt(size: number): Promise<Uint8Array[]> {
    await this.#checkTreeSize(size);
    return resolvePlan(this.#crypto, edgeNodeIds(size).map((id) => [id]), this.#readNodes);
  }

  /** The seq of a stored event, undefined if the ledger does not hold it. */
  async seqOf(eventId: string): Promise<number | undefined> {
    if (!isUuidV7(eventId.toLowerCase())) return undefined;
    const row = await this.#db.selectFrom('events').select('seq').where('event_id', '=', eventId.toLowerCase()).executeTakeFirst();
    return row === undefined ? undefined : toNumber(row.seq, 'seq');
  }

  /** Events of `types` from `fromSeq` on, in seq order, at most `limit` (the (event_type, seq) index). */
  async eventsOfTypes(types: readonly EventType[], fromSeq: number, limit: number): Promise<LedgerEvent[]> {
    const rows = await this.#db.selectFrom('events').selectAll().where('event_type', 'in', [...types]).where('seq', '>=', BigInt(fromSeq)).orderBy('seq').limit(limit).execute();
    return rows.map(ledgerEventOfRow);
  }

  /** Events from `fromSeq` on, in seq order, at most `limit`. */
  async events(fromSeq: number, limit: number): Promise<LedgerEvent[]> {
    const rows = await this.#db.selectFrom('events').selectAll().where('seq', '>=', BigInt(fromSeq)).orderBy('seq').limit(limit).execute();
    return rows.map(ledgerEventOfRow);
  }

  async #checkTreeSize(size: number): Promise<void> {
    const { size: current } = await this.head();
    if (!Number.isSafeInteger(size) || size < 0 || size > current) {
      throw new LedgerError('E_PROOF', `tree size ${size} is not between 0 and the current size ${current}`, { size, current });
    }
  }


  /** A checkpoint of tree size `size` is signed by the key that signs event `size`: the one in force after the tree's last event. */
  async #storeCheckpoint(trx: Transaction<LedgerDatabase>, size: number, rootHash: Uint8Array, schedule: LedgerKeySchedule): Promise<StoredCheckpoint> {
    const checkpoint: Checkpoint = { origin: this.#origin, size, rootHash, extensions: [] };
    const note = signCheckpoint(this.#crypto, checkpoint, [this.#signerFor(schedule.stepFor(size))]);
    await trx.insertInto('checkpoints').values({ tree_size: size, root_hash: rootHash, note }).onConflict((oc) => oc.column('tree_size').doNothing()).execute();
    const stored = await this.#checkpointRow(trx, size);
    return stored!;
  }

  async #checkpointRow(db: LedgerDb | Transaction<LedgerDatabase>, size: number): Promise<StoredCheckpoint | undefined> {
    const row = await db.selectFrom('checkpoints').selectAll().where('tree_size', '=', BigInt(size)).executeTakeFirst();
    return row === undefined ? undefined : checkpointOfRow(row);
  }

}

function checkpointOfRow(row: { note: string }): StoredCheckpoint {
  return { ...parseCheckpoint(parseNote(row.note).text), note: row.note };
}

function grow(buffer: Uint8Array): Uint8Array {
  const bigger = new Uint8Array(buffer.length * 2);
  bigger.set(buffer);
  return bigger;
}
