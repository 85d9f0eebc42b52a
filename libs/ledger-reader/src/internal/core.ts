/**
 * The reader's decisions, without the bus (DESIGN §3a "Readers verify what they replay"):
 * for each batch of the ledger stream, which events to apply, which to skip, what to fetch
 * from the ledger to fill a gap, and when to stop for good. The bus wiring (../reader.ts)
 * feeds it decoded messages; tests feed it in-memory batches and an in-memory ledger.
 *
 * Rules, in order, for every event:
 * 1. At or before the position (already applied: a late or repeated message): skipped, unless
 *    it contradicts what was applied there (a fork), which halts.
 * 2. After the position, its predecessor (chain.ts) must be the position. If the predecessor
 *    is later, the events in between are missing: they are fetched from the ledger
 *    (`GapSource`), each checked like a streamed one, until the position reaches the
 *    predecessor; a ledger that cannot be asked, or does not supply exactly them, halts.
 * 3. Its seal (hash, signature) and producer are checked (`verify`); any failure halts.
 * 4. Then it is applied and becomes the position.
 * A halted reader applies nothing more, ever (a new reader must start from a checked position).
 */
import { isControlEventType, type LedgerEvent } from '@bulwark/events';
import { ReaderHaltedError, type ReaderHaltCode } from '../errors.js';
import { batchOrder, ChainCursor, type ChainBatch, type OrderProblem, type ReaderMode, type ReaderPosition } from './chain.js';

/** What the seal and producer checks found wrong with one event, or null. */
export type EventProblem = { readonly code: 'E_READER_SEAL' | 'E_READER_PRODUCER' | 'E_READER_LEDGER_KEY'; readonly why: string } | null;

/** A range of the ledger, as `bulwark.audit.query` serves it: `toSeq` inclusive, absent = to the end. */
export interface GapRange {
  readonly fromSeq: number;
  readonly toSeq?: number;
  /** Only control-plane events (control mode). */
  readonly control: boolean;
  /** Only these event types (a query-fed reader of a few control types, query-reader.ts). */
  readonly eventTypes?: readonly string[];
}

/** The ledger's own answer for a range, in seq order. Throws when the ledger cannot be asked. */
export interface GapSource {
  fetch(range: GapRange): AsyncIterable<LedgerEvent>;
}

export interface ReaderCoreOptions {
  readonly reader: string;
  readonly mode: ReaderMode;
  readonly start?: ReaderPosition;
  readonly verify: (event: LedgerEvent) => EventProblem;
  readonly source: GapSource;
  readonly apply: (event: LedgerEvent) => void | Promise<void>;
  readonly onHalt: (halt: ReaderHaltedError) => void;
  /**
   * Only these event types are read (control mode only): every query asks for them alone and an
   * event of another type in a reply halts. Default: every type of the mode.
   */
  readonly eventTypes?: readonly string[];
  /** Tries at filling one gap before the reader halts (default 3), `retryDelayMs` apart (default 500). */
  readonly fillAttempts?: number;
  readonly retryDelayMs?: number;
}

export interface CoreMetrics {
  readonly applied: number;
  /** Events of late or repeated messages, already applied. */
  readonly skipped: number;
  /** Events that came from the ledger's query rather than the stream. */
  readonly filled: number;
  readonly gaps: number;
}

/** Events of a tail check's answer applied at a time (one queue turn each). */
const SYNC_PAGE = 1000;

const ORDER_CODES: Record<OrderProblem['kind'], ReaderHaltCode> = { link: 'E_READER_LINK', fork: 'E_READER_FORK', message: 'E_READER_MESSAGE' };

export class ReaderCore {
  readonly #options: ReaderCoreOptions;
  readonly #cursor: ChainCursor;
  #halted: ReaderHaltedError | undefined;
  /** Batches and syncs run one at a time, in the order they were asked for. */
  #queue: Promise<unknown> = Promise.resolve();
  #applied = 0;
  #skipped = 0;
  #filled = 0;
  #gaps = 0;

  constructor(options: ReaderCoreOptions) {
    this.#options = options;
    if (options.eventTypes !== undefined && (options.mode !== 'control' || options.eventTypes.length === 0 || !options.eventTypes.every((t) => isControlEventType(t)))) {
      throw new RangeError(`ledger reader ${options.reader}: eventTypes needs control mode and one or more control event types`);
    }
    this.#cursor = new ChainCursor(options.mode, options.start);
  }

  get halted(): ReaderHaltedError | undefined {
    return this.#halted;
  }

  get position(): ReaderPosition {
    return this.#cursor.position;
  }

  metrics(): CoreMetrics {
    return { applied: this.#applied, skipped: this.#skipped, filled: this.#filled, gaps: this.#gaps };
  }

  /** Stops the reader for good (first reason wins) and reports it once. */
  halt(code: ReaderHaltCode, seq: number, problem: string): ReaderHaltedError {
    if (this.#halted !== undefined) return this.#halted;
    this.#halted = new ReaderHaltedError(code, this.#options.reader, seq, problem, this.#cursor.seq);
    this.#options.onHalt(this.#halted);
    return this.#halted;
  }

  /** One decoded ledger message. Resolves when its events are applied or skipped, or the reader halted. */
  handleBatch(batch: ChainBatch<LedgerEvent>): Promise<void> {
    return this.#serial(() => this.#batch(batch));
  }

  /**
   * Applies whatever the ledger holds after the position, to its end, from the query: what a
   * replay must do once the stream is exhausted, since a message deleted from the stream's
   * tail leaves nothing after it to reveal the gap. Throws (and does not halt) when the
   * ledger cannot be asked; halts on an event that fails a check.
   *
   * The ledger is asked outside the queue and each page of its answer applied in it: a live
   * message never waits for a tail check's query (up to the query's timeout when the ledger is
   * slow or a request is lost). What the stream applied meanwhile comes back in the answer and
   * is checked like a late copy (a different event there is a fork).
   */
  async sync(): Promise<void> {
    if (this.#halted !== undefined) return;
    const range = this.#range(this.#cursor.seq + 1);
    const order = { last: range.fromSeq - 1 };
    let page: LedgerEvent[] = [];
    for await (const event of this.#options.source.fetch(range)) {
      page.push(event);
      if (page.length < SYNC_PAGE) continue;
      const full = page;
      page = [];
      await this.#serial(() => this.#fillFrom(range, full, order));
      if (this.#halted !== undefined) return;
    }
    const last = page;
    await this.#serial(() => this.#fillFrom(range, last, order));
  }

  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #batch(batch: ChainBatch<LedgerEvent>): Promise<void> {
    if (this.#halted !== undefined) return;
    const order = batchOrder(this.#options.mode, batch);
    if (!Array.isArray(order)) {
      this.halt(ORDER_CODES[order.kind], order.seq, order.why);
      return;
    }
    for (let i = 0; i < batch.events.length; i++) {
      const event = batch.events[i]!;
      const predecessor = order[i]!;
      if (event.seq <= this.#cursor.seq) {
        if (!this.#late(event)) return;
        continue;
      }
      if (predecessor > this.#cursor.seq && !(await this.#fill(predecessor))) return;
      if (!(await this.#accept(event, predecessor))) return;
    }
  }

  /** An event at or behind the position, come again: checked, then skipped; false once halted. */
  #late(event: LedgerEvent): boolean {
    const replay = this.#cursor.replayProblem(event);
    if (replay !== null) {
      this.halt(ORDER_CODES[replay.kind], replay.seq, replay.why);
      return false;
    }
    // A recent event comes again (a late or copied message): checked all the same, since a
    // forged copy is an attack even when it would not be applied. Older ones (a resumed
    // reader passing over the stream's start) are only skipped.
    const problem = this.#cursor.remembers(event.seq) ? this.#options.verify(event) : null;
    if (problem !== null) {
      this.halt(problem.code, event.seq, problem.why);
      return false;
    }
    this.#skipped++;
    return true;
  }

  /** Fills [position + 1, predecessor] from the ledger; false once halted. */
  async #fill(predecessor: number): Promise<boolean> {
    this.#gaps++;
    const attempts = this.#options.fillAttempts ?? 3;
    const missingFrom = this.#cursor.seq + 1;
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const range = this.#range(this.#cursor.seq + 1, predecessor);
        await this.#fillFrom(range, this.#options.source.fetch(range), { last: range.fromSeq - 1 });
        if (this.#halted !== undefined) return false;
        if (this.#cursor.seq === predecessor) return true;
        this.halt('E_READER_GAP', this.#cursor.seq + 1, `events ${missingFrom}..${predecessor} are missing from the stream and the ledger's query served up to seq ${this.#cursor.seq}, not ${predecessor}`);
        return false;
      } catch (e) {
        if (this.#halted !== undefined) return false;
        lastError = e instanceof Error ? e.message : String(e);
        if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, this.#options.retryDelayMs ?? 500));
      }
    }
    this.halt('E_READER_GAP', this.#cursor.seq + 1, `events ${missingFrom}..${predecessor} are missing from the stream and the ledger could not be asked (${attempts} tries): ${lastError}`);
    return false;
  }

  #range(fromSeq: number, toSeq?: number): GapRange {
    const { mode, eventTypes } = this.#options;
    return { fromSeq, ...(toSeq === undefined ? {} : { toSeq }), control: mode === 'control', ...(eventTypes === undefined ? {} : { eventTypes }) };
  }

  /**
   * Applies the ledger's answer for a range; each event must follow the one before it (the
   * ledger's order is authoritative; `order.last` carries the last seq served across pages).
   * An event the stream applied after the range was asked for (a tail check asks outside the
   * queue) is checked like a late copy and skipped.
   */
  async #fillFrom(range: GapRange, events: AsyncIterable<LedgerEvent> | Iterable<LedgerEvent>, order: { last: number }): Promise<void> {
    for await (const event of events) {
      if (this.#halted !== undefined) return;
      if (event.seq <= order.last || (range.toSeq !== undefined && event.seq > range.toSeq)) {
        this.halt('E_READER_GAP', event.seq, `the ledger's query for seq ${range.fromSeq}..${range.toSeq ?? 'end'} served seq ${event.seq}, outside it or out of order`);
        return;
      }
      order.last = event.seq;
      if (range.control && !isControlEventType(event.eventType)) {
        this.halt('E_READER_GAP', event.seq, `the ledger's query for control events served ${event.eventType} at seq ${event.seq}`);
        return;
      }
      if (range.eventTypes !== undefined && !range.eventTypes.includes(event.eventType)) {
        this.halt('E_READER_GAP', event.seq, `the ledger's query for ${range.eventTypes.join(', ')} served ${event.eventType} at seq ${event.seq}`);
        return;
      }
      if (event.seq <= this.#cursor.seq) {
        if (!this.#late(event)) return;
        continue;
      }
      // In control mode the ledger's query lists every control event of the range: the one
      // before this one is the position. In full mode it must be seq - 1 and link.
      const predecessor = this.#options.mode === 'control' ? this.#cursor.seq : event.seq - 1;
      if (!(await this.#accept(event, predecessor))) return;
      this.#filled++;
    }
  }

  /** Order, seal and producer checks, then apply; false once halted. */
  async #accept(event: LedgerEvent, predecessor: number): Promise<boolean> {
    const order = this.#cursor.nextProblem(event, predecessor);
    if (order !== null) {
      this.halt(ORDER_CODES[order.kind], order.seq, order.why);
      return false;
    }
    const problem = this.#options.verify(event);
    if (problem !== null) {
      this.halt(problem.code, event.seq, problem.why);
      return false;
    }
    try {
      await this.#options.apply(event);
    } catch (e) {
      this.halt('E_READER_APPLY', event.seq, `the projection failed to apply event ${event.eventId}: ${e instanceof Error ? e.message : String(e)}`);
      return false;
    }
    this.#cursor.advance(event);
    this.#applied++;
    return true;
  }
}

