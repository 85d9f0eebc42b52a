/**
 * Signed checkpoints every `everyEvents` events or every `everyMs` milliseconds (whichever
 * comes first, and only if the log grew), announced as `bulwark.evt.audit.checkpoint`.
 *
 * The announcement is an event like any other: the ledger seals it to itself on
 * BULWARK_EVENTS, consumes it and chains it, so the log records its own checkpoints (and
 * BULWARK_LEDGER carries them to every reader). That would loop (checkpoint → event → the
 * log grew → checkpoint ...) if checkpoint events counted as growth: they do not. Only
 * events of other types move the counter, so a quiet ledger signs nothing and a checkpoint
 * event alone never causes another checkpoint.
 */
import { newEvent, type LedgerEvent } from '@bulwark/events';
import type { AuditLedger, StoredCheckpoint } from '../ledger.js';
import { toBase64 } from './hex.js';

export interface CheckpointerOptions {
  readonly ledger: AuditLedger;
  readonly everyEvents: number;
  readonly everyMs: number;
  /** The ledger's principal (`svc.audit-ledger`): the checkpoint event's agent. */
  readonly agentId: string;
  /** Publishes the checkpoint event (encoded AuditEvent) on bulwark.evt.audit.checkpoint. */
  readonly announce: (eventId: string, payload: Uint8Array) => Promise<unknown>;
  readonly encode: (event: ReturnType<typeof newEvent>) => Uint8Array;
  readonly onCheckpoint?: (checkpoint: StoredCheckpoint) => void;
  readonly onError?: (error: unknown) => void;
}

export const CHECKPOINT_EVENT_TYPE = 'audit.checkpoint';

export class Checkpointer {
  readonly #o: CheckpointerOptions;
  /** Events other than checkpoint announcements since the last checkpoint. */
  #growth = 0;
  #timer: NodeJS.Timeout | undefined;
  #signing: Promise<void> | undefined;

  constructor(options: CheckpointerOptions) {
    this.#o = options;
  }

  start(initialGrowth: number): void {
    this.#growth = initialGrowth;
    if (this.#o.everyMs > 0) {
      this.#timer = setInterval(() => {
        if (this.#growth > 0) this.#sign();
      }, this.#o.everyMs);
      this.#timer.unref();
    }
  }

  /** After each commit. */
  appended(events: readonly LedgerEvent[]): void {
    for (const e of events) if (e.eventType !== CHECKPOINT_EVENT_TYPE) this.#growth += 1;
    if (this.#o.everyEvents > 0 && this.#growth >= this.#o.everyEvents) this.#sign();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#signing;
  }

  #sign(): void {
    if (this.#signing !== undefined) return;
    const growth = this.#growth;
    this.#signing = (async () => {
      try {
        const checkpoint = await this.#o.ledger.checkpoint();
        this.#growth = Math.max(0, this.#growth - growth);
        this.#o.onCheckpoint?.(checkpoint);
        const event = newEvent({
          agentId: this.#o.agentId,
          eventType: CHECKPOINT_EVENT_TYPE,
          details: { origin: checkpoint.origin, tree_size: checkpoint.size, root_hash: toBase64(checkpoint.rootHash), note: checkpoint.note },
        });
        await this.#o.announce(event.eventId, this.#o.encode(event));
      } catch (error) {
        this.#o.onError?.(error);
      } finally {
        this.#signing = undefined;
      }
    })();
  }
}
