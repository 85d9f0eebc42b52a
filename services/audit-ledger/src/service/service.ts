/**
 * The audit-ledger service (DESIGN §2, §4): consumes BULWARK_EVENTS with a durable pull
 * consumer, appends in group-committed batches (ack after commit), re-publishes committed
 * events to BULWARK_LEDGER, signs and announces checkpoints, and answers the audit
 * commands over Noise sessions.
 *
 * Exactly once: the bus acknowledges a message only after its handler resolved, and the
 * handler resolves only after the transaction holding all of the message's events
 * committed. A message redelivered after a crash (to this or another process) finds its
 * event ids stored and appends nothing (the events table's unique event_id, checked in the
 * same transaction).
 *
 * The consumer hands up to `inFlight` messages to the handler at once, so that many
 * messages wait in one transaction (and the next batch is sealed while one commits). A
 * message is acknowledged after its own events committed; a frame redelivered while its
 * first delivery is still in hand is never appended twice: its event ids are deduplicated.
 */
import type { CryptoProvider, Ed25519KeyPair } from '@bulwark/crypto';
import { isBulwarkError } from '@bulwark/errors';
import {
  Commands,
  Events,
  LEDGER_PRINCIPAL,
  checkReadiness,
  createEventPublisher,
  createRejectionReporter,
  createStreamPublisher,
  ensureStreams,
  serveCommands,
  startStreamConsumer,
  type Bus,
  type CommandServer,
  type Delivery,
  type RunningConsumer,
} from '@bulwark/bus';
import { SealedReceiver, SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { encodeEvent, type AuditEvent, type LedgerEvent } from '@bulwark/events';
import type { LedgerKeys } from '@bulwark/ledger-reader';
import { checkDatabase } from '@bulwark/store';
import type { Logger } from '@bulwark/telemetry';
import { isForbiddenProducerError } from '../errors.js';
import { AuditLedger, prepareEvent, type AppendResult, type LedgerDb, type PreparedEvent } from '../ledger.js';
import { signerKey } from '../note/keys.js';

import { Batcher } from './batcher.js';
import { Checkpointer } from './checkpointer.js';
import { decodePayload } from './decode.js';
import { FullStreamSealer } from './full-stream.js';
import { commandHandlers } from './handlers.js';
import { applyKeyFact, rebuildKeys } from './key-state.js';
import { encodeReply } from './protocol.js';
import { republishCommand } from './recovery.js';
import { Republisher } from './republisher.js';
import type { LedgerSettings } from './settings.js';
import { DEFAULT_VIOLATION_BUDGET, ViolationRecorder, type ViolationBudget } from './violations.js';

export const LEDGER_DURABLE = 'audit-ledger';
export const SERVICE_VERSION = '0.1.0';

export interface LedgerServiceOptions {
  readonly bus: Bus;
  readonly db: LedgerDb;
  readonly crypto: CryptoProvider;
  /** The ledger's principal (svc.audit-ledger): X25519 for the envelope, Ed25519 signs events and checkpoints. */
  readonly identity: LocalIdentity & { readonly ed25519: Ed25519KeyPair };
  readonly directory: Directory;
  readonly settings: LedgerSettings;
  readonly log?: Logger;
  /** The signing worker script (tests substitute one that fails); default the ledger's own. */
  readonly signerScript?: URL;
  /** How many violations a producer's refused messages may record (default DEFAULT_VIOLATION_BUDGET). */
  readonly violationBudget?: ViolationBudget;
}

export interface LedgerReadiness {
  readonly ready: boolean;
  readonly natsConnected: boolean;
  readonly missingStreams: readonly string[];
  readonly database: boolean;
  readonly reason: string;
}

export interface LedgerServiceMetrics {
  readonly appended: number;
  readonly duplicates: number;
  readonly transactions: number;
  readonly undecodable: number;
  /** Messages refused because their producer may not produce one of their events (DESIGN §3a). */
  readonly forbidden: number;
  /** Refused messages over their producer's violation budget: counted, recorded in a later violation's counts. */
  readonly violationsSuppressed: number;
  readonly published: number;
  /** Signing requests that failed (their batches were not stored, their messages redelivered). */
  readonly signerFailures: number;
}

export class LedgerService {
  readonly ledger: AuditLedger;
  readonly #o: LedgerServiceOptions;
  readonly #batcher: Batcher;
  readonly #republisher: Republisher;
  /** A new sealer of the full batches (a re-publication from seq 0 replays the channel's epochs from the start). */
  readonly #fullStream: () => FullStreamSealer;
  readonly #checkpointer: Checkpointer;
  /** The key manager's committed facts (key-state.ts): producers and callers are judged by them. */
  #keys: LedgerKeys | undefined;
  #consumer: RunningConsumer | undefined;
  #server: CommandServer | undefined;
  readonly #violations: ViolationRecorder;
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #m = { appended: 0, duplicates: 0, transactions: 0, undecodable: 0, forbidden: 0 };

  private constructor(options: LedgerServiceOptions) {
    this.#o = options;
    const { bus, db, crypto, identity, directory, settings, log } = options;
    this.ledger = new AuditLedger(db, {
      crypto,
      origin: settings.origin,
      signer: signerKey(crypto, settings.origin, identity.ed25519.secretKey),
      checkpointEvery: 0,
      ...(settings.signerWorkers === 0 ? {} : { signingWorkers: { workers: settings.signerWorkers, ...(options.signerScript === undefined ? {} : { script: options.signerScript }) } }),
    });
    this.#violations = new ViolationRecorder({
      crypto,
      ledgerId: identity.id,
      secret: identity.ed25519.secretKey,
      ...(options.violationBudget === undefined ? {} : { budget: options.violationBudget }),
    });
    const fullStream = (): FullStreamSealer =>
      new FullStreamSealer({ bus, db, provider: crypto, identity, directory, republishTo: settings.republishTo, ...(settings.channel === undefined ? {} : { channel: settings.channel }) });
    this.#fullStream = fullStream;
    const toLedger = fullStream();
    this.#republisher = new Republisher({
      db,
      ledger: this.ledger,
      publisher: toLedger,
      endsChunk: FullStreamSealer.endsChunk,
      published: (events) => toLedger.applied(events),
      controlPublishers: settings.controlTo.map((recipient) => ({
        recipient,
        publisher: createStreamPublisher(bus, new SealedSender({ provider: crypto, self: identity, directory, recipientId: recipient }), 'ledger'),
      })),
      onError: (error) => log?.warn({ err: error }, 'ledger: re-publication to BULWARK_LEDGER failed; retrying'),
    });
    const toSelf = createEventPublisher(bus, new SealedSender({ provider: crypto, self: identity, directory, recipientId: LEDGER_PRINCIPAL }));
    this.#checkpointer = new Checkpointer({
      ledger: this.ledger,
      everyEvents: settings.checkpointEvents,
      everyMs: settings.checkpointMs,
      agentId: identity.id,
      encode: encodeEvent,
      announce: (eventId, payload) => toSelf.publish({ subject: Events.audit.checkpoint, eventId, payload }),
      onCheckpoint: (cp) => log?.info({ size: cp.size }, 'ledger: checkpoint signed'),
      onError: (error) => log?.warn({ err: error }, 'ledger: checkpoint failed'),
    });
    this.#batcher = new Batcher({
      maxEvents: settings.batchMaxEvents,
      maxWaitMs: settings.batchMaxWaitMs,
      maxInFlight: 2,
      append: (events) => this.ledger.appendPipelined(events),
      committed: (result) => this.#committed(result),
    });
  }

  /** Migrations are the caller's (main runs them first); this connects the consumer, the republisher and the commands. */
  static async start(options: LedgerServiceOptions): Promise<LedgerService> {
    const service = new LedgerService(options);
    await service.#start();
    return service;
  }

  async #start(): Promise<void> {
    const { bus, db, crypto, identity, settings, log } = this.#o;
    await ensureStreams(bus, settings.streams);
    // Before anything is received: a revoked key is refused from the first frame (issue 12).
    this.#keys = await rebuildKeys(this.ledger, crypto, identity.ed25519.publicKey, log);
    const directory = this.#keys.guard(this.#o.directory);
    const head = await this.ledger.head();
    const last = await this.ledger.latestCheckpoint();
    this.#checkpointer.start(head.size - (last?.size ?? 0));
    this.#republisher.start();
    // Suppressed violations are summarised as soon as their producer's budget allows one again.
    this.#flushTimer = setInterval(() => this.#flushViolations(), (this.#o.violationBudget ?? DEFAULT_VIOLATION_BUDGET).refillMs);
    this.#flushTimer.unref();

    const rejections = createRejectionReporter(createEventPublisher(bus, new SealedSender({ provider: crypto, self: identity, directory, recipientId: LEDGER_PRINCIPAL })), { reporter: identity.id });
    const spec = {
      stream: 'events' as const,
      durable: LEDGER_DURABLE,
      filterSubject: 'bulwark.evt.>',
      ackWaitMs: settings.ackWaitMs,
      maxAckPending: settings.maxAckPending,
      // A database outage must not use up a message's deliveries: it is retried (backoff capped at 30 s) until it commits.
      maxDeliver: 1_000_000,
      retryInitialMs: 200,
      retryMaxMs: 30_000,
    };
    // The stream + event-id dedupe is the replay protection here, so frames as old as the stream keeps are accepted.
    const receiver = new SealedReceiver({ provider: crypto, self: identity, directory, staleAfterMs: settings.staleAfterMs });
    this.#consumer = await startStreamConsumer(bus, receiver, { ...spec, concurrency: settings.inFlight }, (delivery) => this.#handle(delivery), rejections);
    this.#server = await serveCommands(bus, {
      service: 'audit',
      version: SERVICE_VERSION,
      description: 'Bulwark audit ledger: hash-chained, signed, Merkle-checkpointed events',
      sessions: { provider: crypto, self: identity, directory },
      rejections,
      handlers: {
        ...commandHandlers({ db, ledger: this.ledger, crypto }),
        [Commands.audit.republish]: async (request) =>
          encodeReply(await republishCommand({ bus, db, ledger: this.ledger, crypto, republisher: this.#republisher, fullStream: () => {
            const sealer = this.#fullStream();
            return { publisher: sealer, published: (events) => sealer.applied(events) };
          }, admins: settings.admins }, request)),
      },
    });
  }

  /**
   * One message from BULWARK_EVENTS. Its producer is the sender the envelope authenticated
   * (DESIGN §3a), whatever the message says. A message that does not decode, or that holds an
   * event its producer may not produce, will never become valid: retrying is pointless and
   * dropping it would hide it. It is refused whole (none of its events is appended) and
   * recorded as one `security.violation` by the ledger itself, within the producer's budget
   * (violations.ts). Acknowledged once that record committed (or, over budget, at once).
   */
  async #handle(delivery: Delivery): Promise<void> {
    let events: PreparedEvent[];
    try {
      events = decodePayload(delivery.subject, delivery.plaintext, delivery.meta.sender);
    } catch (error) {
      if (!isBulwarkError(error)) throw error;
      const where = { err: error, sender: delivery.meta.sender, subject: delivery.subject, streamSeq: delivery.streamSeq };
      let record: AuditEvent | undefined;
      if (isForbiddenProducerError(error)) {
        this.#m.forbidden += 1;
        this.#o.log?.warn(where, 'ledger: event refused (its producer may not produce it), recorded as security.violation');
        record = this.#violations.forbidden(delivery, error);
      } else {
        this.#m.undecodable += 1;
        this.#o.log?.warn(where, 'ledger: undecodable event message recorded as security.violation');
        record = this.#violations.undecodable(delivery, error);
      }
      events = record === undefined ? [] : [this.#own(record)];
    }
    await this.#batcher.submit(events);
  }

  /** An event the ledger produces itself, through the same checks as everyone's. */
  #own(event: AuditEvent): PreparedEvent {
    return prepareEvent(event, this.#o.identity.id);
  }

  #flushViolations(): void {
    const summaries = this.#violations.flush();
    if (summaries.length === 0) return;
    this.#batcher.submit(summaries.map((e) => this.#own(e))).catch((error: unknown) => this.#o.log?.warn({ err: error }, 'ledger: recording suppressed violations failed'));
  }

  #committed(result: AppendResult): void {
    this.#m.transactions += 1;
    this.#m.appended += result.appended.length;
    this.#m.duplicates += result.duplicates.length;
    if (result.appended.length > 0) {
      for (const event of result.appended) applyKeyFact(this.#keys!, event, this.#o.log);
      this.#republisher.remember(result.appended);
      this.#republisher.notify();
      this.#checkpointer.appended(result.appended as readonly LedgerEvent[]);
    }
  }

  get instanceId(): string | undefined {
    return this.#server?.instanceId;
  }

  metrics(): LedgerServiceMetrics {
    return { ...this.#m, violationsSuppressed: this.#violations.suppressed, published: this.#republisher.published, signerFailures: this.ledger.signerFailures };
  }

  async readiness(): Promise<LedgerReadiness> {
    const bus = await checkReadiness(this.#o.bus, ['events', 'ledger']);
    const db = await checkDatabase(this.#o.db);
    const reasons = [bus.reason, db.ready ? '' : `database: ${db.reason}`].filter((r) => r !== '');
    return { ready: bus.ready && db.ready, natsConnected: bus.natsConnected, missingStreams: bus.missingStreams, database: db.ready, reason: reasons.join('; ') };
  }

  /** Events [0, n) are re-published; resolves when everything committed so far is (tests, shutdown). */
  async publishCommitted(): Promise<number> {
    return this.#republisher.catchUp();
  }

  /** Graceful drain: stop taking messages, commit (and ack) what is in hand, publish it, stop. */
  async stop(): Promise<void> {
    await this.#consumer?.stop();
    clearInterval(this.#flushTimer);
    this.#flushViolations();
    await this.#batcher.drain();
    await this.#checkpointer.stop();
    await this.#republisher.stop();
    await this.#server?.stop();
    await this.ledger.close();
  }
}

