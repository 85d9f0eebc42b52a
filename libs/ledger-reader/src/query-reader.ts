/**
 * A verified reader fed by the ledger's query alone, no stream (DESIGN §3a): for a principal
 * that reads a few control event types and has no control subject of its own (an analyst
 * following its channel epoch keys, libs/channel `followChannelEpochs`). It asks the ledger
 * for the events of those types after its position, over an authenticated session to
 * svc.audit-ledger, and checks every served event exactly as the stream reader checks a fill
 * (internal/core.ts): hash, ledger signature, producer, order (seqs increasing from the
 * position, adjacent seqs linked by previous_hash, only the types asked for). Any failure
 * halts it for good; nothing after the failure is applied.
 */
import { CommandClient, type Bus, type CommandSubject, type RejectionReporter } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import type { Directory, LocalIdentity } from '@bulwark/envelope';
import type { LedgerEvent } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import type { ReaderHaltedError } from './errors.js';
import type { ReaderPosition } from './internal/chain.js';
import { ReaderCore, type CoreMetrics, type GapSource } from './internal/core.js';
import { queryGapSource, type AuditQuery } from './internal/query-source.js';
import { startPeriodicSync } from './internal/periodic-sync.js';
import { eventVerifier } from './internal/verify.js';
import { LEDGER_KEY_CHANGE_TYPE } from './keys/ledger-key-schedule.js';

/** `bulwark.audit.query`-shaped requests over an authenticated session to the ledger's principal, on `subject`. */
export function ledgerQuery(
  bus: Bus,
  sessions: { readonly provider: CryptoProvider; readonly identity: LocalIdentity; readonly directory: Directory; readonly rejections: RejectionReporter },
  subject: CommandSubject,
  timeoutMs: number,
): AuditQuery {
  const client = new CommandClient(bus, { sessions: { provider: sessions.provider, self: sessions.identity, directory: sessions.directory }, rejections: sessions.rejections });
  return async (body) => {
    const reply = await client.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs, idempotent: true });
    return JSON.parse(new TextDecoder().decode(reply)) as unknown;
  };
}

export interface QueryReaderOptions {
  readonly provider: CryptoProvider;
  /**
   * The ledger's Ed25519 key in force at the start (its first key, from seq 0): the trust anchor,
   * never taken from the data. Its later keys are the chain's own key changes, followed in order.
   */
  readonly ledgerPublicKey: Uint8Array;
  /** Names the reader in its halt report and logs, e.g. `analyst.ann/channels`. */
  readonly reader: string;
  /**
   * The control event types read, e.g. `keys.channel_epoch`: asked for alone (with `keys.rotated`,
   * which carries the ledger's own key changes), anything else served halts.
   */
  readonly eventTypes: readonly string[];
  /** Sends one query body to the ledger (`ledgerQuery`); tests may pass `gapSource` instead. */
  readonly query?: AuditQuery;
  readonly gapSource?: GapSource;
  readonly resumeFrom?: ReaderPosition;
  /** Each verified event, in ledger order, once. A throw halts the reader. */
  readonly onEvent: (event: LedgerEvent) => void | Promise<void>;
  /** Called once when the reader halts. A principal that may publish events raises the Critical report here. */
  readonly onHalt?: (halt: ReaderHaltedError) => void;
  readonly logger?: Logger;
  /** How often the reader asks the ledger for new events (default 5000 ms; 0: only on `refresh`). */
  readonly syncIntervalMs?: number;
}

export interface QueryReader {
  readonly halted: ReaderHaltedError | undefined;
  position(): ReaderPosition;
  /**
   * Asks the ledger for the events after the position and applies them; resolves when done or
   * halted (check `halted`). Throws (without halting) when the ledger cannot be asked.
   */
  refresh(): Promise<void>;
  metrics(): CoreMetrics & { readonly halted: boolean };
  stop(): Promise<void>;
}

export function startQueryReader(options: QueryReaderOptions): QueryReader {
  const source = options.gapSource ?? (options.query === undefined ? undefined : queryGapSource(options.query));
  if (source === undefined) throw new RangeError(`ledger reader ${options.reader}: give query or gapSource`);
  const { logger } = options;
  // The ledger's own key changes (keys.rotated of svc.audit-ledger) are read whatever the caller
  // asks for: without them the reader could not verify what the ledger signed after one. Only
  // the asked types are applied.
  const asked = new Set(options.eventTypes);
  const eventTypes = asked.has(LEDGER_KEY_CHANGE_TYPE) ? options.eventTypes : [...options.eventTypes, LEDGER_KEY_CHANGE_TYPE];
  const core = new ReaderCore({
    reader: options.reader,
    // The query serves the asked types in ledger order: each event's predecessor is the last one applied, as in a control fill.
    mode: 'control',
    eventTypes,
    ...(options.resumeFrom === undefined ? {} : { start: options.resumeFrom }),
    verify: eventVerifier(options.provider, options.ledgerPublicKey, (options.resumeFrom?.seq ?? -1) + 1),
    source,
    apply: (event) => (asked.has(event.eventType) ? options.onEvent(event) : undefined),
    onHalt: (halt) => {
      logger?.fatal({ reader: halt.reader, seq: halt.seq, code: halt.code, problem: halt.problem }, 'ledger query reader halted: nothing more is applied');
      try {
        options.onHalt?.(halt);
      } catch (e) {
        logger?.error({ err: e }, 'ledger query reader: onHalt failed');
      }
    },
  });
  const sync = startPeriodicSync(core, { intervalMs: options.syncIntervalMs ?? 5000, reader: options.reader, ...(logger === undefined ? {} : { logger }) });
  return {
    get halted() {
      return core.halted;
    },
    position: () => core.position,
    refresh: () => core.sync(),
    metrics: () => ({ ...core.metrics(), halted: core.halted !== undefined }),
    async stop() {
      sync.stop();
    },
  };
}
