import { metrics, type Counter, type Meter } from '@opentelemetry/api';
import { LRUCache } from 'lru-cache';
import { TokenBucket } from './token-bucket.js';
import { uuidv7 } from './uuid.js';

/** A frame the bus dropped because it failed an envelope check. */
export interface Rejection {
  /** The envelope's rejection reason (`mac`, `replay`, `skew`, `shape`, ...). */
  readonly reason: string;
  /** The sender the frame claimed; unauthenticated, since the frame failed. */
  readonly sender: string | undefined;
  /** Where the frame arrived (without the namespace prefix). */
  readonly subject: string;
}

/** The `bulwark.evt.bus.rejected` event's body (DESIGN §4 event shape). */
export interface RejectionEvent {
  readonly event_id: string;
  readonly timestamp: string;
  readonly agent_id: string;
  readonly event_type: 'security_violation';
  readonly details: {
    readonly kind: 'bus.rejected';
    readonly reason: string;
    readonly claimed_sender: string | null;
    readonly subject: string;
    readonly reporter: string;
    /** Rejections with the same reason and sender that were not reported since the last report. */
    readonly suppressed: number;
  };
}

export interface RejectionReporterOptions {
  /** The reporting principal (goes into `details.reporter`). */
  reporter: string;
  /** Publishes the event (sealed to the ledger); a failure is counted, never thrown. */
  publish: (event: RejectionEvent) => Promise<void>;
  /** Per reason and sender (default 1 report/s, burst 5). */
  ratePerSecond?: number;
  burst?: number;
  /** Across all reasons and senders, so forged sender ids cannot multiply the budget (default 10/s, burst 20). */
  globalRatePerSecond?: number;
  globalBurst?: number;
  /** Reason/sender pairs tracked at once; the oldest is forgotten beyond it (default 10 000). */
  maxTrackedKeys?: number;
  now?: () => number;
  /** Also count into OpenTelemetry: `bulwark.bus.rejected_frames` and `bulwark.bus.suppressed_reports`, by reason. */
  meter?: Meter;
}

export interface RejectionMetrics {
  /** Every dropped frame, by reason, reported or not. */
  readonly rejectedByReason: Readonly<Record<string, number>>;
  readonly reported: number;
  readonly suppressed: number;
  readonly reportFailures: number;
}

interface KeyState {
  bucket: TokenBucket;
  suppressed: number;
}

/**
 * Counts every rejection and reports it as a security event, rate-limited so a flood of
 * bad frames costs at most a bounded number of events: a token bucket per
 * (reason, claimed sender), under a global bucket. Each report carries how many of its
 * kind were suppressed since the previous one, so no rejection goes uncounted.
 */
export class RejectionReporter {
  readonly #opts: Required<Omit<RejectionReporterOptions, 'publish' | 'reporter' | 'meter'>> & Pick<RejectionReporterOptions, 'publish' | 'reporter'>;
  readonly #rejectedCounter: Counter | undefined;
  readonly #suppressedCounter: Counter | undefined;
  readonly #keys: LRUCache<string, KeyState>;
  readonly #global: TokenBucket;
  readonly #byReason = new Map<string, number>();
  readonly #pending = new Set<Promise<void>>();
  #reported = 0;
  #suppressed = 0;
  #failures = 0;

  constructor(options: RejectionReporterOptions) {
    this.#opts = {
      ratePerSecond: 1,
      burst: 5,
      globalRatePerSecond: 10,
      globalBurst: 20,
      maxTrackedKeys: 10_000,
      now: Date.now,
      ...options,
    };
    this.#global = new TokenBucket(this.#opts.globalRatePerSecond, this.#opts.globalBurst, this.#opts.now);
    this.#keys = new LRUCache({ max: this.#opts.maxTrackedKeys });
    // Without a meter of its own, the global one a service's telemetry registers (a no-op until then).
    const meter = options.meter ?? metrics.getMeter('@bulwark/bus');
    this.#rejectedCounter = meter.createCounter('bulwark.bus.rejected_frames', { description: 'Frames dropped for failing an envelope check' });
    this.#suppressedCounter = meter.createCounter('bulwark.bus.suppressed_reports', { description: 'Rejections counted but not reported (rate limit)' });
  }

  /** Records one dropped frame; never throws and never waits on the network. */
  report(rejection: Rejection): void {
    this.#byReason.set(rejection.reason, (this.#byReason.get(rejection.reason) ?? 0) + 1);
    this.#rejectedCounter?.add(1, { reason: rejection.reason });
    const key = `${rejection.reason}\u0000${rejection.sender ?? ''}`;
    const state = this.#stateFor(key);
    if (!state.bucket.take() || !this.#global.take()) {
      state.suppressed += 1;
      this.#suppressed += 1;
      this.#suppressedCounter?.add(1, { reason: rejection.reason });
      return;
    }
    const suppressed = state.suppressed;
    state.suppressed = 0;
    this.#reported += 1;
    const event: RejectionEvent = {
      event_id: uuidv7(this.#opts.now()),
      timestamp: new Date(this.#opts.now()).toISOString(),
      agent_id: this.#opts.reporter,
      event_type: 'security_violation',
      details: {
        kind: 'bus.rejected',
        reason: rejection.reason,
        claimed_sender: rejection.sender ?? null,
        subject: rejection.subject,
        reporter: this.#opts.reporter,
        suppressed,
      },
    };
    const p = this.#opts.publish(event).catch(() => {
      this.#failures += 1;
    });
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  metrics(): RejectionMetrics {
    return {
      rejectedByReason: Object.fromEntries(this.#byReason),
      reported: this.#reported,
      suppressed: this.#suppressed,
      reportFailures: this.#failures,
    };
  }

  /** Waits for the reports already started (used before close and by tests). */
  async flush(): Promise<void> {
    await Promise.all([...this.#pending]);
  }

  #stateFor(key: string): KeyState {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { bucket: new TokenBucket(this.#opts.ratePerSecond, this.#opts.burst, this.#opts.now), suppressed: 0 };
      this.#keys.set(key, state);
    }
    return state;
  }
}
