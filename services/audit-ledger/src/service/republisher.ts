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
import { create, toBinary } from '@bufbuild/protobuf';
import { sql } from 'kysely';
import { AuditEventSchema } from '@bulwark/proto';
import type { AuditLedger, LedgerDb } from '../ledger.js';
import { toNumber, type EventRow } from '../store/rows.js';

/**
 * The AuditEvent message of a stored row. details_json is the stored RFC 8785 text, the
 * very bytes that were hashed, so a reader recomputes event_hash from the message alone;
 * nothing is parsed or re-canonicalised on the way out.
 */
export function ledgerMessageOfRow(row: EventRow): Uint8Array {
  return toBinary(
    AuditEventSchema,
    create(AuditEventSchema, {
      eventId: row.event_id,
      timestampMs: BigInt(row.timestamp_ms),
      agentId: row.agent_id,
      eventType: row.event_type,
      detailsJson: row.details,
      seq: BigInt(row.seq),
      previousHash: row.previous_hash,
      eventHash: row.event_hash,
      signature: row.signature,
    }),
  );
}

export interface LedgerPublisher {
  publish(message: { subject: string; msgId: string; payload: Uint8Array }): Promise<unknown>;
}

export interface RepublisherOptions {
  readonly db: LedgerDb;
  readonly ledger: AuditLedger;
  readonly publisher: LedgerPublisher;
  /** Subject of an event of this type on BULWARK_LEDGER (un-namespaced). */
  readonly subjectOf: (eventType: string) => string;
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
      const rows = await db.selectFrom('events').selectAll().where('seq', '>=', BigInt(next)).orderBy('seq').limit(Math.min(pageSize, size - next)).execute();
      if (rows.length === 0) break;
      await Promise.all(rows.map((row) => publisher.publish({ subject: subjectOf(row.event_type), msgId: String(row.seq), payload: ledgerMessageOfRow(row) })));
      next = toNumber(rows[rows.length - 1]!.seq, 'seq') + 1;
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
