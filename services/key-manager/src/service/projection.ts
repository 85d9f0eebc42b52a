/**
 * The key manager's state from the ledger (DESIGN §3a, CONTRACTS §5): the verified reader
 * replays the control events the ledger seals to `svc.key-manager`; each key fact it hands over
 * is decoded and applied to the KeyBook in ledger order. A fact the rules refuse is logged and
 * skipped (it changed nothing); an event the reader cannot verify halts the reader, and then the
 * service refuses every command (fail secure). Commands wait here for their own event.
 */
import { Events, type Bus, type EventPublisher, type RejectionReporter } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import type { ChannelReceiver, Directory, LocalIdentity, SealedReceiver } from '@bulwark/envelope';
import { encodeEvent, type LedgerEvent } from '@bulwark/events';
import { AppliedEvents, LedgerKeys, startLedgerReader, type ApplyOutcome, type AppliedWait, type KeyBook, type KeyFact, type KeyFactApplied, type LedgerReader, type ReaderHaltedError } from '@bulwark/ledger-reader';
import { PinLedger } from '@bulwark/schemapin';
import type { Logger } from '@bulwark/telemetry';

export interface KeyProjectionOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  readonly receiver: SealedReceiver | ChannelReceiver;
  readonly ledgerPublicKey: Uint8Array;
  readonly rejections: RejectionReporter;
  readonly events: EventPublisher;
  readonly logger?: Logger;
  readonly syncIntervalMs?: number;
  /** Called after each applied fact (the side effects: directory entry, NATS revocations). */
  readonly onApplied: (fact: KeyFact, event: LedgerEvent) => void;
  /** Channel epoch announcements (`keys.channel_epoch`), in ledger order (channels/desk.ts). */
  readonly onChannelEpoch?: (event: LedgerEvent) => void;
}

export class KeyProjection {
  /** The key state every Bulwark service keeps (@bulwark/ledger-reader): the book here is the one its directory guard reads. */
  readonly keys = new LedgerKeys();
  readonly book: KeyBook = this.keys.book;
  /** The external keys of the hierarchy: SchemaPin provider keys as svc.schemapin's committed pin events leave them (the schemapin service enforces the pins; this records them). */
  readonly providers: PinLedger;
  readonly #applied = new AppliedEvents<ApplyOutcome>();
  #reader: LedgerReader | undefined;
  #halt: ReaderHaltedError | undefined;
  skipped = 0;

  get halted(): ReaderHaltedError | undefined {
    return this.#halt;
  }

  private constructor(logger: Logger | undefined) {
    this.providers = new PinLedger({ onRefused: (event, why) => logger?.warn({ eventId: event.eventId, seq: event.seq, why }, 'pin event committed but not recorded') });
  }

  static async start(options: KeyProjectionOptions): Promise<KeyProjection> {
    const p = new KeyProjection(options.logger);
    p.#reader = await startLedgerReader({
      bus: options.bus,
      provider: options.provider,
      identity: options.identity,
      directory: options.directory,
      receiver: options.receiver,
      ledgerPublicKey: options.ledgerPublicKey,
      reader: `${options.identity.id}/keys`,
      mode: 'control',
      durablePrefix: 'key-manager',
      rejections: options.rejections,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
      keys: p.keys,
      onEvent: (event, key) => p.#apply(event, key, options),
      onHalt: (halt) => {
        p.#halt = halt;
        options.logger?.error({ code: halt.code, seq: halt.seq, problem: halt.problem }, 'key manager ledger reader halted: every command is refused until the service restarts from a ledger it can verify');
      },
      raise: (event) => options.events.publish({ subject: Events.security.violation, eventId: event.eventId, payload: encodeEvent(event) }),
    });
    return p;
  }

  #apply(event: LedgerEvent, key: KeyFactApplied | undefined, options: KeyProjectionOptions): void {
    if (event.eventType === 'keys.channel_epoch') return options.onChannelEpoch?.(event);
    if (this.providers.apply(event) !== undefined) return;
    // Policy events share the control subject: verified by the reader, not ours.
    if (key === undefined) return;
    const { fact, outcome } = key;
    if (fact !== undefined && outcome.kind === 'applied') options.onApplied(fact, event);
    if (outcome.kind === 'refused') {
      this.skipped++;
      options.logger?.warn({ eventId: event.eventId, seq: event.seq, why: outcome.why }, 'key event committed but not applied');
    }
    this.#applied.settle(event.eventId, outcome);
  }

  /** Resolves with the outcome of the event `eventId` once the reader applied it (undefined after `timeoutMs`). */
  waitFor(eventId: string, timeoutMs: number): AppliedWait<ApplyOutcome> {
    return this.#applied.wait(eventId, timeoutMs);
  }

  caughtUp(timeoutMs: number): Promise<void> {
    return this.#reader!.caughtUp(timeoutMs);
  }

  async stop(): Promise<void> {
    await this.#reader?.stop();
  }
}
