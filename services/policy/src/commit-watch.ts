import { consumerBacklog, LEDGER_DURABLE, type Bus } from '@bulwark/bus';

/**
 * Where the ledger has committed up to on BULWARK_EVENTS: a stream sequence such that every
 * message at or below it that the ledger consumes is committed.
 */
export type CommitSignal = () => Promise<number>;

/**
 * The ledger's durable consumer's ack floor on BULWARK_EVENTS. The ledger acknowledges a
 * message only after the transaction holding all of its events committed
 * (services/audit-ledger, service.ts), and only the ledger may consume its durable
 * (DESIGN §3a), so the floor is a commit watermark: one `CONSUMER.INFO` call, whatever the
 * decision rate. Its one blind spot: a frame the ledger *terminates* (it failed an envelope
 * check) moves the floor without a commit; the ledger reports those as `bus.rejected`.
 */
export function ledgerAckFloor(bus: Bus, durable: string = LEDGER_DURABLE): CommitSignal {
  return async () => (await consumerBacklog(bus, 'events', durable)).ackFloor;
}

export interface CommitWatchOptions {
  readonly signal: CommitSignal;
  /** How often the signal is read while some batch is not known to be committed (default 1000 ms). */
  readonly pollMs?: number;
  /** Called when reading the signal starts failing (once until a read succeeds again): the batches stay uncommitted, the lag grows. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Tracks this service's decision batches from their publish acknowledgement (their
 * BULWARK_EVENTS sequence) until the ledger is known to have committed them, so strict mode
 * can tell how far behind the audit trail is: `oldestUncommittedAt()` is when the oldest
 * decision of the oldest batch not yet known committed was made. The signal is read only
 * while something is outstanding; when it cannot be read nothing is confirmed.
 */
export class CommitWatch {
  readonly #o: CommitWatchOptions;
  /** Published batches not yet known committed, in publish (= stream) order. */
  #outstanding: { seq: number; oldestAt: number }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #polling = false;
  #failures = 0;
  #failing = false;

  constructor(options: CommitWatchOptions) {
    this.#o = options;
  }

  /** A batch was stored in BULWARK_EVENTS at `seq`; its oldest decision was made at `oldestAt`. */
  published(seq: number, oldestAt: number): void {
    const last = this.#outstanding[this.#outstanding.length - 1];
    // A retried batch that JetStream deduplicated comes back with its first sequence.
    if (last !== undefined && seq <= last.seq) return;
    this.#outstanding.push({ seq, oldestAt });
  }

  oldestUncommittedAt(): number | undefined {
    return this.#outstanding[0]?.oldestAt;
  }

  metrics(): { outstanding: number; signalFailures: number } {
    return { outstanding: this.#outstanding.length, signalFailures: this.#failures };
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.poll(), this.#o.pollMs ?? 1000);
    this.#timer.unref();
  }

  /** Reads the signal once and forgets the batches it covers. */
  async poll(): Promise<void> {
    if (this.#polling || this.#outstanding.length === 0) return;
    this.#polling = true;
    try {
      const floor = await this.#o.signal();
      let committed = 0;
      while (committed < this.#outstanding.length && this.#outstanding[committed]!.seq <= floor) committed++;
      if (committed > 0) this.#outstanding = this.#outstanding.slice(committed);
      this.#failing = false;
    } catch (e) {
      this.#failures++;
      if (!this.#failing) this.#o.onError?.(e);
      this.#failing = true;
    } finally {
      this.#polling = false;
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
