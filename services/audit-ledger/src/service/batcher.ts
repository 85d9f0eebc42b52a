/**
 * Group commit: events from many bus messages go into one ledger transaction, bounded by
 * size (`maxEvents`) and time (`maxWaitMs`, how long the first event of an idle ledger
 * waits for company). Each submitter's promise settles only when the transaction holding
 * ALL of its events committed (or failed): the consumer acknowledges a message after that,
 * never before (DESIGN §4, exactly-once append).
 */
import type { AppendResult, PreparedEvent } from '../ledger.js';

export interface BatcherOptions {
  readonly maxEvents: number;
  readonly maxWaitMs: number;
  readonly append: (events: readonly PreparedEvent[]) => Promise<AppendResult>;
  /**
   * Appends running at once (default 1). With 2 and an `append` that pipelines
   * (`AuditLedger.appendPipelined`), the next batch is hashed and signed while the
   * previous one commits; commits still happen one after the other, in order.
   */
  readonly maxInFlight?: number;
  /** Called after each commit (re-publication, checkpoints, metrics); must not throw. */
  readonly committed?: (result: AppendResult) => void;
}

interface Waiting {
  readonly events: readonly PreparedEvent[];
  resolve(): void;
  reject(error: unknown): void;
}

export class Batcher {
  readonly #options: BatcherOptions;
  #queue: Waiting[] = [];
  #queued = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Wakes the running loop when events arrive during a commit. */
  #arrived: (() => void) | undefined;

  constructor(options: BatcherOptions) {
    this.#options = options;
  }

  /** Resolves once every one of `events` is committed (appended now or found already stored). */
  submit(events: readonly PreparedEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ events, resolve, reject });
      this.#queued += events.length;
      this.#schedule();
    });
  }

  /** Commits whatever is queued and waits for the transaction in progress. */
  async drain(): Promise<void> {
    while (this.#running !== undefined || this.#queue.length > 0) {
      if (this.#running === undefined) this.#start();
      await this.#running;
    }
  }

  #schedule(): void {
    if (this.#running !== undefined) {
      this.#arrived?.(); // the loop decides whether to start another batch now or after its commit
      return;
    }
    if (this.#queued >= this.#options.maxEvents) {
      this.#start();
    } else {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        if (this.#running === undefined) this.#start();
      }, this.#options.maxWaitMs);
    }
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  async #loop(): Promise<void> {
    const maxInFlight = this.#options.maxInFlight ?? 1;
    const inFlight = new Set<Promise<void>>();
    // Whatever queued up during a commit has already waited: it goes at once (group commit);
    // a second batch starts during a commit only once it is worth it (half a batch).
    while (this.#queue.length > 0 || inFlight.size > 0) {
      const canStart = this.#queue.length > 0 && (inFlight.size === 0 || (inFlight.size < maxInFlight && this.#queued >= this.#options.maxEvents / 2));
      if (!canStart) {
        const arrival = new Promise<void>((resolve) => {
          this.#arrived = resolve;
        });
        await Promise.race([...inFlight, arrival]);
        this.#arrived = undefined;
        continue;
      }
      const taken: Waiting[] = [];
      let count = 0;
      while (this.#queue.length > 0 && (taken.length === 0 || count + this.#queue[0]!.events.length <= this.#options.maxEvents)) {
        const next = this.#queue.shift()!;
        taken.push(next);
        count += next.events.length;
      }
      this.#queued -= count;
      const events = taken.length === 1 ? taken[0]!.events : taken.flatMap((w) => w.events);
      const done = (async () => {
        try {
          const result = await this.#options.append(events);
          this.#options.committed?.(result);
          for (const w of taken) w.resolve();
        } catch (error) {
          for (const w of taken) w.reject(error);
        }
      })();
      inFlight.add(done);
      void done.finally(() => inFlight.delete(done));
    }
  }
}
