/**
 * Re-publishes committed events to BULWARK_LEDGER, in seq order, as `AuditEvent` messages
 * with their chain fields set (seq, previous_hash, event_hash, signature), on
 * `bulwark.ledger.<type>` with `Nats-Msg-Id` = the seq.
 *
 * The database remembers how far it got (`publish_state.published`): it advances only after
 * JetStream acknowledged every message below it. A crash between commit and publish, or
 * between publish and the update, is caught up on the next start: events not yet marked
 * are published again, and JetStream drops the ones it already holds (same seq = same
 * message id, within the stream's duplicate window; readers key on seq in any case).
 * Re-publication runs beside ingest: a stalled BULWARK_LEDGER never holds up appends.
 */
import { sql } from 'kysely';
import { encodeEvent, type LedgerEvent } from '@bulwark/events';
import type { AuditLedger, LedgerDb } from '../ledger.js';
import { toNumber } from '../store/rows.js';

export interface LedgerPublisher {
  publish(message: { subject: string; msgId: string; payload: Uint8Array }): Promise<unknown>;
}

export interface RepublisherOptions {
  readonly db: LedgerDb;
  readonly ledger: AuditLedger;
  readonly publisher: LedgerPublisher;
  /** Subject of an event on BULWARK_LEDGER (un-namespaced). */
  readonly subjectOf: (event: LedgerEvent) => string;
  /** Events read and published per round (default 1000), all in flight at once. */
  readonly pageSize?: number;
  readonly onError?: (error: unknown) => void;
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

  constructor(options: RepublisherOptions) {
    this.#options = options;
  }

  /** Events [0, published) are known to be on BULWARK_LEDGER. */
  get published(): number {
    return this.#published;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Something was committed: publish it. */
  notify(): void {
    this.#dirty = true;
    this.#wake?.();
  }

  /** Publishes what is committed up to now, then stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
  }

  /** Until nothing is left (used by stop, and by tests). */
  async catchUp(): Promise<number> {
    const { db, ledger, publisher, subjectOf } = this.#options;
    const pageSize = this.#options.pageSize ?? 1000;
    const state = await db.selectFrom('publish_state').select('published').executeTakeFirstOrThrow();
    let next = toNumber(state.published, 'publish_state.published');
    const size = (await ledger.head()).size;
    while (next < size) {
      const events = await ledger.events(next, Math.min(pageSize, size - next));
      if (events.length === 0) break;
      await Promise.all(events.map((event) => publisher.publish({ subject: subjectOf(event), msgId: String(event.seq), payload: encodeEvent(event) })));
      next = events[events.length - 1]!.seq + 1;
      // greatest(): two instances catching up at once never move the mark backwards.
      await sql`update publish_state set published = greatest(published, ${next}::int8)`.execute(db);
      this.#published = next;
    }
    this.#published = Math.max(this.#published, next);
    return next;
  }

  async #run(): Promise<void> {
    const retryMs = this.#options.retryMs ?? 1000;
    while (!this.#stopped || this.#dirty) {
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
        await this.catchUp();
      } catch (error) {
        this.#dirty = true;
        this.#options.onError?.(error);
        if (this.#stopped) return;
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
      }
    }
  }
}
