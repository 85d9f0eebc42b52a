/**
 * Re-publishes committed events to BULWARK_LEDGER, in seq order, as `AuditEventBatch`
 * messages of consecutive events with their chain fields set (seq, previous_hash,
 * event_hash, signature), on `bulwark.ledger.batch`, with `Nats-Msg-Id` = `<first seq>-<last seq>`.
 * Batches, because one JetStream publish per event cost as much CPU as the append itself.
 * A chunk holding control-plane events (policies, keys, pinned tools) is followed by a batch
 * of just those for each principal that replays them at start, sealed to it, on
 * `bulwark.ledger.control.<principal>` (`control:<principal>:<first seq>-<last seq>`), with
 * `control_previous_seq` = the seq of the last control event before the chunk (-1 if none),
 * read from the table, so a reader of the control subject alone sees that it missed none,
 * and a re-sent chunk is byte for byte the same message.
 *
 * Exactly once in the stream, across crashes: before a chunk is published its last seq is
 * written to `publish_state.pending_end`; after JetStream acknowledged it, `published` moves
 * past it and `pending_end` is cleared. A restart that finds `pending_end` set re-sends
 * exactly that chunk (same rows, same message ids: JetStream drops them as duplicates within
 * its 2-minute window) before going on. Events not yet in a chunk are simply published later.
 * Re-publication runs beside ingest: a stalled BULWARK_LEDGER never holds up appends.
 *
 * What this process committed it hands over (`remember`), exactly as written, so that a chunk
 * of its own events is published without reading them back; anything else (another
 * instance's events, a restart, a backlog beyond MAX_REMEMBERED) is read from the table.
 */
import { sql } from 'kysely';
import { LEDGER_BATCH_SUBJECT, ledgerControlSubject } from '@bulwark/bus';
import { EVENT_TYPES, isControlEventType } from '@bulwark/events';
import { isLedgerError } from '../errors.js';
import type { AuditLedger, LedgerDb } from '../ledger.js';
import { toNumber } from '../store/rows.js';
import { ledgerBatchOf, wireEventOfRow, type WireEvent } from './batch-wire.js';

/** A chunk stays well under NATS's default 1 MiB payload (details may be up to 64 KiB each). */
const MAX_CHUNK_BYTES = 512 * 1024;
const MAX_CHUNK_EVENTS = 1000;
/** Committed events kept in memory for publication; beyond this (BULWARK_LEDGER stalled) they are read back when their turn comes. */
const MAX_REMEMBERED = 100_000;
const CONTROL_TYPES: readonly string[] = EVENT_TYPES.filter(isControlEventType);

export interface LedgerPublisher {
  publish(message: { subject: string; msgId: string; payload: Uint8Array }): Promise<unknown>;
}

export interface RepublisherOptions {
  readonly db: LedgerDb;
  readonly ledger: AuditLedger;
  /** Seals to the full stream's reader (SYMBIONT_LEDGER_REPUBLISH_TO). */
  readonly publisher: LedgerPublisher;
  /** One per principal that replays control events (SYMBIONT_LEDGER_CONTROL_TO), sealing to it. */
  readonly controlPublishers?: readonly { readonly recipient: string; readonly publisher: LedgerPublisher }[];
  readonly onError?: (error: unknown) => void;
  /**
   * A batch its publisher withheld (E_LEDGER_WITHHELD: its reader cannot be sealed to now). The
   * chunk goes on without it: the other batches are published and the mark moves, and that
   * reader fills the gap from the ledger's query (readers never trust the stream for completeness).
   */
  readonly onWithheld?: (error: unknown, chunk: { readonly first: number; readonly last: number }) => void;
  /**
   * A chunk ends after an event for which this is true (a channel epoch announcement: the
   * chunks after it are sealed under the new epoch, full-stream.ts); `published` is told of
   * every chunk once it is on the stream.
   */
  readonly endsChunk?: (event: WireEvent) => boolean;
  readonly published?: (events: readonly WireEvent[]) => void;
  /** Wait after a failed round before the next (default 1000 ms). */
  readonly retryMs?: number;
}

export class Republisher {
  readonly #options: RepublisherOptions;
  #wake: (() => void) | undefined;
  #dirty = true;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #published = 0;
  #withheld = 0;
  /** Publication is held until then (recovery: while the operator re-creates the stream). */
  #heldUntil = 0;
  #round: Promise<unknown> | undefined;
  /** Committed events not yet published, by seq. */
  readonly #remembered = new Map<number, WireEvent>();

  /** The full batches' publisher and its callback (replaced by a re-publication from seq 0). */
  #full: { readonly publisher: LedgerPublisher; readonly published?: (events: readonly WireEvent[]) => void };

  constructor(options: RepublisherOptions) {
    this.#options = options;
    this.#full = { publisher: options.publisher, ...(options.published === undefined ? {} : { published: options.published }) };
  }

  /** Events [0, published) are known to be on BULWARK_LEDGER. */
  get published(): number {
    return this.#published;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Events this process just committed (with their stored fields): published from memory when their turn comes. */
  remember(events: readonly WireEvent[]): void {
    if (this.#remembered.size + events.length > MAX_REMEMBERED) return;
    for (const event of events) if (event.seq >= this.#published) this.#remembered.set(event.seq, event);
  }

  /** Something was committed: publish it. */
  notify(): void {
    this.#dirty = true;
    this.#wake?.();
  }

  /**
   * Holds publication for up to `ms` (the loop publishes nothing new) and resolves once a round
   * in progress ended: the operator can then re-create or purge BULWARK_LEDGER without the
   * loop putting newer events in before the re-publication (recovery.ts). `release` ends it.
   */
  async hold(ms: number): Promise<void> {
    this.#heldUntil = Date.now() + ms;
    await this.#round?.catch(() => undefined);
  }

  release(): void {
    this.#heldUntil = 0;
    this.notify();
  }

  /** Publishes what is committed up to now, then stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
  }

  /** Publishes until everything committed when it started is on the stream; returns the mark. */
  async catchUp(): Promise<number> {
    const { db, ledger } = this.#options;
    const state = await db.selectFrom('publish_state').select(['published', 'pending_end']).executeTakeFirstOrThrow();
    let next = toNumber(state.published, 'publish_state.published');
    this.#forget(next);
    if (state.pending_end !== null) {
      // A chunk was being published when the last process stopped: send exactly that one again.
      const end = toNumber(state.pending_end, 'publish_state.pending_end');
      const rows = await this.#rows(next, end - next + 1);
      if (rows.length !== end - next + 1) throw new Error(`republish: pending chunk ${next}-${end} has ${rows.length} stored events`);
      next = await this.#publishChunk(rows, true);
    }
    const size = (await ledger.head()).size;
    while (next < size) {
      const limit = Math.min(MAX_CHUNK_EVENTS, size - next);
      const held = this.#held(next, limit);
      const rows = held.length > 0 ? held : await this.#rows(next, limit);
      if (rows.length === 0) break;
      let bytes = 0;
      let take = 0;
      while (take < rows.length && (take === 0 || bytes + rows[take]!.detailsJcs.length + 200 <= MAX_CHUNK_BYTES)) {
        bytes += rows[take]!.detailsJcs.length + 200;
        take += 1;
        if (this.#options.endsChunk?.(rows[take - 1]!) === true) break;
      }
      next = await this.#publishChunk(rows.slice(0, take), false);
    }
    this.#published = Math.max(this.#published, next);
    return next;
  }

  /**
   * Publishes every committed event again from seq 0 (recovery of a lost BULWARK_LEDGER,
   * recovery.ts): the mark goes back to 0, then the usual write-ahead chunks follow, so a
   * crash midway resumes like any other publication. A round of the loop racing it loses its
   * claim and retries; this retries the same way.
   */
  async republishAll(fresh?: { readonly publisher: LedgerPublisher; readonly published?: (events: readonly WireEvent[]) => void }): Promise<number> {
    // A full-stream publisher whose state only moves forward (the channel's epochs) starts over with the stream.
    if (fresh !== undefined) this.#full = fresh;
    await sql`update publish_state set published = 0, pending_end = null`.execute(this.#options.db);
    this.#published = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.catchUp();
      } catch (error) {
        if (attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }

  async #rows(from: number, limit: number): Promise<WireEvent[]> {
    const rows = await this.#options.db.selectFrom('events').selectAll().where('seq', '>=', BigInt(from)).orderBy('seq').limit(limit).execute();
    return rows.map(wireEventOfRow);
  }

  /** Drops remembered events below `seq` (published, by this instance or another); they were remembered in seq order. */
  #forget(seq: number): void {
    for (const remembered of this.#remembered.keys()) {
      if (remembered >= seq) break;
      this.#remembered.delete(remembered);
    }
  }

  /** The remembered events from `from` on, as long as they run without a gap, at most `limit`. */
  #held(from: number, limit: number): WireEvent[] {
    const run: WireEvent[] = [];
    for (let seq = from; run.length < limit; seq++) {
      const event = this.#remembered.get(seq);
      if (event === undefined) break;
      run.push(event);
    }
    return run;
  }

  /** Write-ahead the chunk's end, publish, then move the mark; returns the new mark. */
  async #publishChunk(rows: readonly WireEvent[], pending: boolean): Promise<number> {
    const { db } = this.#options;
    const { publisher, published } = this.#full;
    const first = rows[0]!.seq;
    const last = rows[rows.length - 1]!.seq;
    if (!pending) {
      const claimed = await sql`update publish_state set pending_end = ${last}::int8 where published = ${first}::int8 and pending_end is null`.execute(db);
      // Another instance moved the mark or holds a pending chunk: it publishes; this round ends.
      if (claimed.numAffectedRows !== 1n) throw new Error(`republish: publish_state moved under this instance at seq ${first}`);
    }
    await this.#unlessWithheld(publisher.publish({ subject: LEDGER_BATCH_SUBJECT, msgId: `${first}-${last}`, payload: ledgerBatchOf(rows) }), first, last);
    const control = rows.filter((row) => isControlEventType(row.eventType));
    if (control.length > 0) {
      const payload = ledgerBatchOf(control, { controlPreviousSeq: await this.#lastControlSeqBefore(first) });
      for (const { recipient, publisher: to } of this.#options.controlPublishers ?? []) {
        await this.#unlessWithheld(to.publish({ subject: ledgerControlSubject(recipient), msgId: `control:${recipient}:${first}-${last}`, payload }), first, last);
      }
    }
    await sql`update publish_state set published = ${last + 1}::int8, pending_end = null where published = ${first}::int8`.execute(db);
    published?.(rows);
    this.#published = last + 1;
    this.#forget(last + 1);
    return last + 1;
  }

  /** A publication that failed as withheld is reported and passed over; any other failure fails the chunk (retried). */
  async #unlessWithheld(publishing: Promise<unknown>, first: number, last: number): Promise<void> {
    try {
      await publishing;
    } catch (error) {
      if (!isLedgerError(error, 'E_LEDGER_WITHHELD')) throw error;
      this.#withheld += 1;
      this.#options.onWithheld?.(error, { first, last });
    }
  }

  /** Batches withheld so far (their readers filled the gap from the query). */
  get withheld(): number {
    return this.#withheld;
  }

  /**
   * The seq of the last control event below `seq`, -1 if there is none: one backward probe
   * of the (event_type, seq) index per control type. A function of the stored chain alone.
   */
  async #lastControlSeqBefore(seq: number): Promise<number> {
    const { rows } = await sql<{ last: string | null }>`
      select max(m)::text as last from (
        select (select max(e.seq) from events e where e.event_type = t and e.seq < ${seq}::int8) as m
        from unnest(${CONTROL_TYPES}::text[]) as t
      ) as per_type`.execute(this.#options.db);
    const last = rows[0]?.last ?? null;
    return last === null ? -1 : toNumber(BigInt(last), 'control seq');
  }

  async #run(): Promise<void> {
    const retryMs = this.#options.retryMs ?? 1000;
    while (!this.#stopped || this.#dirty) {
      const held = this.#heldUntil - Date.now();
      if (held > 0 && !this.#stopped) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          setTimeout(resolve, Math.min(held, 1000)).unref();
        });
        this.#wake = undefined;
        continue;
      }
      if (!this.#dirty) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          // A periodic look also covers appends made by another instance.
          setTimeout(resolve, 1000).unref();
        });
        this.#wake = undefined;
        continue;
      }
      this.#dirty = false;
      try {
        this.#round = this.catchUp();
        await this.#round;
      } catch (error) {
        this.#dirty = true;
        this.#options.onError?.(error);
        if (this.#stopped) return;
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
      }
    }
  }
}
