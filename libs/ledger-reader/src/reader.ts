/**
 * The verified reader of BULWARK_LEDGER (DESIGN §3a "Readers verify what they replay"): the
 * bus around internal/core.ts. It consumes one ledger subject on a durable of its own, hands
 * each authentic message to the core, fills gaps with `bulwark.audit.query` over an
 * authenticated session to the ledger, and on a halt raises a Critical `security.violation`.
 */
import { randomUUID } from 'node:crypto';
import {
  Commands,
  consumerBacklog,
  LEDGER_BATCH_SUBJECT,
  LEDGER_PRINCIPAL,
  ledgerControlSubject,
  startStreamConsumer,
  type Bus,
  type Delivery,
  type RejectionReporter,
  type RunningConsumer,
} from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import type { Directory, LocalIdentity, StreamReceiver } from '@bulwark/envelope';
import { decodeLedgerBatch, newEvent, type AuditEvent, type LedgerEvent } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import type { KeyFactApplied, LedgerKeys } from './keys/ledger-keys.js';
import { LedgerReaderTimeoutError, LedgerReaderUsageError, type ReaderHaltedError } from './errors.js';
import type { ReaderMode, ReaderPosition } from './internal/chain.js';
import { ReaderCore, type CoreMetrics, type GapSource } from './internal/core.js';
import { queryGapSource } from './internal/query-source.js';
import { startPeriodicSync } from './internal/periodic-sync.js';
import { eventVerifier } from './internal/verify.js';
import { ledgerQuery } from './query-reader.js';

export interface LedgerReaderOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** The reading service's principal and keys: it opens sessions to the ledger for gap filling. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** Opens the ledger's re-published frames (SealedReceiver for `identity`, or the ledger channel's receiver). */
  readonly receiver: StreamReceiver;
  /**
   * The ledger's Ed25519 key in force at the start (its first key, from seq 0; at `resumeFrom`,
   * the key in force after it): the trust anchor, never taken from the data. Its later keys are
   * the chain's own key changes, followed in order (keys/ledger-key-schedule.ts).
   */
  readonly ledgerPublicKey: Uint8Array;
  /** Names the reader in its halt report and logs, e.g. `svc.policy/policies`. */
  readonly reader: string;
  /**
   * `control`: `bulwark.ledger.control.<identity.id>`, the control-plane events only (what a
   * service replays to rebuild its configuration). `full`: `bulwark.ledger.batch`, every event.
   */
  readonly mode: ReaderMode;
  /**
   * Resume after this verified position (the caller persisted `position()` with its state).
   * Default: from the ledger's start (seq -1). Never the stream's word for where it was.
   */
  readonly resumeFrom?: ReaderPosition;
  /**
   * Each verified event, in ledger order, exactly once per reader. A throw halts the reader.
   * With `keys`, a key fact is applied there first and what it made of it comes along.
   */
  readonly onEvent: (event: LedgerEvent, key: KeyFactApplied | undefined) => void | Promise<void>;
  /**
   * The service's key state (issue 12, keys/ledger-keys.ts): the reader applies every key fact to
   * it before `onEvent`, makes it live once `caughtUp` succeeds and halts it with the reader. The
   * service's sessions then ask `keys.guard(directory)`; the reader itself keeps `directory`.
   */
  readonly keys?: LedgerKeys;
  /** Called once when the reader halts (after that nothing more is applied). */
  readonly onHalt?: (halt: ReaderHaltedError) => void;
  /** Publishes the Critical `security.violation` the reader raises when it halts (sealed to the ledger by the service's event publisher). */
  readonly raise: (event: AuditEvent) => Promise<unknown>;
  readonly rejections: RejectionReporter;
  readonly logger?: Logger;
  /** Durable name prefix (default `reader`); the durable is `<prefix>-<uuid>`, deleted by the server a minute after the reader is gone. */
  readonly durablePrefix?: string;
  /** How often a live reader asks the ledger for events after its position (default 10 000 ms; 0: never). Catches a deleted tail. */
  readonly syncIntervalMs?: number;
  /** Per query request (default 5000 ms). */
  readonly queryTimeoutMs?: number;
  /** Tries at filling one gap before halting (default 3), `retryDelayMs` apart (default 500). */
  readonly fillAttempts?: number;
  readonly retryDelayMs?: number;
  /** Replaces `bulwark.audit.query` as the gap source (tests). */
  readonly gapSource?: GapSource;
}

export interface LedgerReaderMetrics extends CoreMetrics {
  readonly halted: boolean;
}

export interface LedgerReader {
  /** Why the reader stopped, or undefined while it runs. A halted reader applies nothing more. */
  readonly halted: ReaderHaltedError | undefined;
  /** The last event verified and applied (persist it with the projection's state to resume). */
  position(): ReaderPosition;
  /**
   * Resolves once every message in the stream at the call has been handled and the ledger's
   * query has nothing after the position (a deleted tail is filled, not missed), or once the
   * reader halted: check `halted`. Throws `E_READER_CATCHUP` after `timeoutMs`.
   */
  caughtUp(timeoutMs: number): Promise<void>;
  metrics(): LedgerReaderMetrics;
  stop(): Promise<void>;
}

/** Sends the reader's Critical report, a few times if the events stream refuses it. */
async function raiseHalt(options: LedgerReaderOptions, halt: ReaderHaltedError): Promise<void> {
  const event = newEvent({
    agentId: options.identity.id,
    eventType: 'security.violation',
    details: { kind: 'reader.halted', severity: 'critical', reader: options.reader, seq: halt.seq, problem: `${halt.code}: ${halt.problem}` },
  });
  for (let attempt = 1; ; attempt++) {
    try {
      await options.raise(event);
      return;
    } catch (e) {
      if (attempt >= 5) {
        options.logger?.error({ err: e, reader: options.reader }, 'ledger reader halted and its security event could not be published');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  }
}

export async function startLedgerReader(options: LedgerReaderOptions): Promise<LedgerReader> {
  if (options.mode !== 'full' && options.mode !== 'control') throw new LedgerReaderUsageError('E_READER_OPTIONS', `ledger reader ${options.reader}: mode must be 'full' or 'control'`);
  const { bus, logger } = options;
  const queryTimeoutMs = options.queryTimeoutMs ?? 5000;
  const source: GapSource = options.gapSource ?? queryGapSource(ledgerQuery(bus, options, Commands.audit.query, queryTimeoutMs));
  let raising: Promise<void> = Promise.resolve();
  const core = new ReaderCore({
    reader: options.reader,
    mode: options.mode,
    ...(options.resumeFrom === undefined ? {} : { start: options.resumeFrom }),
    verify: eventVerifier(options.provider, options.ledgerPublicKey, (options.resumeFrom?.seq ?? -1) + 1),
    source,
    apply: (event) => options.onEvent(event, options.keys?.apply(event)),
    ...(options.fillAttempts === undefined ? {} : { fillAttempts: options.fillAttempts }),
    ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }),
    onHalt: (halt) => {
      logger?.fatal({ reader: halt.reader, seq: halt.seq, code: halt.code, problem: halt.problem }, 'ledger reader halted: nothing more is applied');
      raising = raiseHalt(options, halt);
      options.keys?.halt();
      try {
        options.onHalt?.(halt);
      } catch (e) {
        logger?.error({ err: e }, 'ledger reader: onHalt failed');
      }
    },
  });

  const subject = options.mode === 'control' ? ledgerControlSubject(options.identity.id) : LEDGER_BATCH_SUBJECT;
  const durable = `${options.durablePrefix ?? 'reader'}-${randomUUID()}`;
  const handle = async (delivery: Delivery): Promise<void> => {
    if (core.halted !== undefined) return;
    // Everything on a ledger subject must be the ledger's: anything else means the stream is not what the ledger wrote.
    if (delivery.meta.sender !== LEDGER_PRINCIPAL) {
      core.halt('E_READER_MESSAGE', core.position.seq + 1, `stream message ${delivery.streamSeq} on ${delivery.subject} was sealed by ${delivery.meta.sender}, not ${LEDGER_PRINCIPAL}`);
      return;
    }
    let batch;
    try {
      batch = decodeLedgerBatch(delivery.plaintext);
    } catch (e) {
      core.halt('E_READER_MESSAGE', core.position.seq + 1, `stream message ${delivery.streamSeq}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (options.mode === 'full' && batch.controlPreviousSeq !== undefined) {
      core.halt('E_READER_MESSAGE', core.position.seq + 1, `stream message ${delivery.streamSeq} on ${delivery.subject} is a control batch`);
      return;
    }
    await core.handleBatch(batch);
  };
  const consumer: RunningConsumer = await startStreamConsumer(
    bus,
    options.receiver,
    // The handler never throws (every failure halts), so nothing is redelivered out of order.
    { stream: 'ledger', durable, filterSubject: subject, inactiveThresholdMs: 60_000, maxDeliver: 3, retryInitialMs: 50 },
    async (delivery) => {
      try {
        await handle(delivery);
      } catch (e) {
        core.halt('E_READER_APPLY', core.position.seq + 1, `reader failed on stream message ${delivery.streamSeq}: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
    options.rejections,
  );

  let live = false;
  const sync = startPeriodicSync(core, { intervalMs: options.syncIntervalMs ?? 10_000, reader: options.reader, ready: () => live, ...(logger === undefined ? {} : { logger }) });

  return {
    get halted() {
      return core.halted;
    },
    position: () => core.position,
    metrics: () => ({ ...core.metrics(), halted: core.halted !== undefined }),
    async caughtUp(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const late = (what: string, context: Record<string, unknown>) =>
        new LedgerReaderTimeoutError('E_READER_CATCHUP', `ledger reader ${options.reader}: ${what} within ${timeoutMs} ms`, { ...context, timeoutMs });
      for (;;) {
        if (core.halted !== undefined) return;
        const backlog = await consumerBacklog(bus, 'ledger', durable);
        if (backlog.pending === 0 && backlog.ackPending === 0) break;
        if (Date.now() > deadline) throw late(`the stream replay did not catch up (${backlog.pending} pending)`, { ...backlog });
        await new Promise((r) => setTimeout(r, 25));
      }
      for (;;) {
        try {
          await core.sync();
          live = true;
          options.keys?.caughtUp();
          return;
        } catch (e) {
          if (Date.now() > deadline) throw late(`the ledger could not be asked for events after seq ${core.position.seq} (${e instanceof Error ? e.message : String(e)})`, {});
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    },
    async stop() {
      sync.stop();
      await consumer.stop();
      await raising;
    },
  };
}
