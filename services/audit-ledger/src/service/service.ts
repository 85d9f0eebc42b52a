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
import { ledgerKeyChangeOf, type LedgerKeys, type LedgerKeySchedule } from '@bulwark/ledger-reader';
import { checkDatabase } from '@bulwark/store';
import type { Logger } from '@bulwark/telemetry';
import { isForbiddenProducerError, LedgerError } from '../errors.js';
import { AuditLedger, prepareEvent, type AppendResult, type LedgerDb, type PreparedEvent } from '../ledger.js';
import { namesLedgerKey } from '../signing-keys.js';

import { Batcher } from './batcher.js';
import { Checkpointer } from './checkpointer.js';
import { decodePayload } from './decode.js';
import { FullStreamSealer, withholdingUnsealable } from './full-stream.js';
import { commandHandlers } from './handlers.js';
import { applyKeyFact, rebuildKeys } from './key-state.js';
import { fixedOwnKeys, type LedgerOwnKeys } from './own-keys.js';
import { encodeReply } from './protocol.js';
import { republishCommand } from './recovery.js';
import { Republisher } from './republisher.js';
import type { LedgerSettings } from './settings.js';
import { DEFAULT_VIOLATION_BUDGET, ViolationRecorder, type OwnRotationRefusal, type ViolationBudget } from './violations.js';

export const LEDGER_DURABLE = 'audit-ledger';
export const SERVICE_VERSION = '0.1.0';

export interface LedgerServiceOptions {
  readonly bus: Bus;
  readonly db: LedgerDb;
  readonly crypto: CryptoProvider;
  /**
   * The ledger's principal (svc.audit-ledger), the live object a rotating service switches in place:
   * X25519 for the envelope and the sessions. Events and checkpoints are signed by `ownKeys`.
   */
  readonly identity: LocalIdentity & { readonly ed25519: Ed25519KeyPair };
  /**
   * The ledger's signing keys across its own rotations (own-keys.ts, from its key store); default:
   * only `identity`'s Ed25519 key, the genesis (a ledger that refuses every rotation of itself).
   */
  readonly ownKeys?: LedgerOwnKeys;
  /** Its X25519 public key of an identity version, from its store (a channel epoch wrapped to an earlier version is opened with it). */
  readonly ownKeyVersions?: (keyVersion: number) => Uint8Array | undefined;
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
  /** Re-published batches withheld because their reader could not be sealed to (its gap filled from the query). */
  readonly withheld: number;
  /** Signing requests that failed (their batches were not stored, their messages redelivered). */
  readonly signerFailures: number;
  /** Messages refused because they rotate the ledger to a key it does not hold, or out of order. */
  readonly rotationsRefused: number;
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
  /** The ledger's key schedule as committed so far (key-state.ts), mirrored here to judge a rotation fact before it is batched. */
  #schedule: LedgerKeySchedule | undefined;
  /** A rotation of the ledger passed on to the batcher and not seen committed yet. */
  #accepted: { readonly eventId: string; readonly version: number } | undefined;
  readonly #ownKeys: LedgerOwnKeys;
  #consumer: RunningConsumer | undefined;
  #server: CommandServer | undefined;
  readonly #violations: ViolationRecorder;
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #m = { appended: 0, duplicates: 0, transactions: 0, undecodable: 0, forbidden: 0, rotationsRefused: 0 };

  private constructor(options: LedgerServiceOptions) {
    this.#o = options;
    const { bus, db, crypto, identity, directory, settings, log } = options;
    const own = options.ownKeys ?? fixedOwnKeys(crypto, settings.origin, identity.ed25519);
    this.#ownKeys = own;
    if (own.held(own.genesis) === undefined) throw new LedgerError('E_KEY', `ledger: ${identity.id} does not hold its genesis key (version 1)`, { principal: identity.id });
    this.ledger = new AuditLedger(db, {
      crypto,
      origin: settings.origin,
      // The key in force is the chain's (a committed rotation of the ledger puts its key in force from the next seq).
      signingKeys: { genesis: own.genesis, held: (publicKey) => own.held(publicKey) },
      checkpointEvery: 0,
      ...(settings.signerWorkers === 0 ? {} : { signingWorkers: { workers: settings.signerWorkers, ...(options.signerScript === undefined ? {} : { script: options.signerScript }) } }),
    });
    this.#violations = new ViolationRecorder({
      crypto,
      ledgerId: identity.id,
      // The genesis key's: the same across rotations, so a refused frame redelivered after one gets the same id.
      secret: own.stableSecret,
      ...(options.violationBudget === undefined ? {} : { budget: options.violationBudget }),
    });
    // An epoch wrapped to one of the ledger's versions is opened with the key held for that version: the key facts say which it is (else its store).
    const versionKey = (v: number): Uint8Array | undefined => {
      const x = this.#keys?.book.key(identity.id)?.versions.find((k) => k.version === v)?.keys.x25519;
      return x === undefined ? options.ownKeyVersions?.(v) : new Uint8Array(Buffer.from(x, 'base64'));
    };
    const fullStream = (): FullStreamSealer =>
      new FullStreamSealer({ bus, db, provider: crypto, identity, directory, versionKey, republishTo: settings.republishTo, ...(settings.channel === undefined ? {} : { channel: settings.channel }) });
    this.#fullStream = fullStream;
    const toLedger = fullStream();
    let lastWithheldLog = 0;
    this.#republisher = new Republisher({
      db,
      ledger: this.ledger,
      publisher: toLedger,
      endsChunk: FullStreamSealer.endsChunk,
      published: (events) => toLedger.applied(events),
      controlPublishers: settings.controlTo.map((recipient) => ({
        recipient,
        publisher: withholdingUnsealable(createStreamPublisher(bus, new SealedSender({ provider: crypto, self: identity, directory, recipientId: recipient }), 'ledger'), recipient),
      })),
      onError: (error) => log?.warn({ err: error }, 'ledger: re-publication to BULWARK_LEDGER failed; retrying'),
      // Logged at most once a minute: an absent reader withholds every chunk until it is back.
      onWithheld: (error, chunk) => {
        const now = Date.now();
        if (now - lastWithheldLog < 60_000) return;
        lastWithheldLog = now;
        log?.warn({ err: error, first: chunk.first, last: chunk.last, withheld: this.#republisher.withheld }, 'ledger: a re-published batch was withheld; the other readers are served and its reader fills the gap from the query');
      },
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
    const rebuilt = await rebuildKeys(this.ledger, crypto, this.#ownKeys.genesis, log);
    this.#keys = rebuilt.keys;
    this.#schedule = rebuilt.schedule;
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
    const refused = await this.#refusedOwnRotation(events);
    if (refused !== undefined) {
      this.#m.rotationsRefused += 1;
      this.#o.log?.warn({ sender: delivery.meta.sender, subject: delivery.subject, streamSeq: delivery.streamSeq, kind: refused.kind, why: refused.why }, 'ledger: rotation of the ledger key refused, recorded as security.violation');
      const record = this.#violations.ownRotation(delivery, refused, events.length);
      events = record === undefined ? [] : [this.#own(record)];
    }
    try {
      await this.#batcher.submit(events);
    } catch (error) {
      // Not committed: its redelivery is judged again from the committed schedule.
      if (this.#accepted !== undefined && events.some((e) => e.eventId === this.#accepted!.eventId)) this.#accepted = undefined;
      throw error;
    }
  }

  /**
   * A message rotating the ledger's own key is refused whole unless the ledger holds the new key
   * (its store: versions and the pending slot) and the version is the next one: the core signs
   * every later event with that key, so a key it does not hold would stop every append (the core
   * refuses to seal it), and the ledger must never sign under a key it cannot use.
   */
  async #refusedOwnRotation(events: readonly PreparedEvent[]): Promise<OwnRotationRefusal | undefined> {
    const schedule = this.#schedule!;
    for (const event of events) {
      // The cheap test first: every message passes here, and only a ledger key change needs the head.
      if (!namesLedgerKey(event)) continue;
      // Its seq is not known before the commit: the head is where it goes at the earliest.
      const candidate = { seq: (await this.ledger.head()).size, producer: event.producer, eventType: event.eventType, agentId: event.agentId, details: event.details };
      const change = ledgerKeyChangeOf(candidate);
      if (change === undefined) continue;
      if (typeof change === 'string') return { kind: 'ledger.rotation_malformed', eventId: event.eventId, version: null, why: change };
      // Committed already (a redelivery) or in hand: the event-id dedupe makes it a no-op.
      if (this.#accepted?.eventId === event.eventId || (await this.ledger.seqOf(event.eventId)) !== undefined) continue;
      const next = (this.#accepted?.version ?? schedule.current.version) + 1;
      if (change.version !== next) {
        return { kind: 'ledger.rotation_version_not_next', eventId: event.eventId, version: change.version, why: `rotation of the ledger key to version ${change.version}; the next version is ${next}` };
      }
      // The readers' own rules (a key the ledger used before), on a copy: nothing is committed yet.
      const refused = schedule.clone().observe(candidate);
      if (refused !== null) return { kind: 'ledger.rotation_key_reused', eventId: event.eventId, version: change.version, why: refused };
      if (!(await this.#ownKeys.find(change.ed25519PublicKey))) {
        return { kind: 'ledger.rotation_key_not_held', eventId: event.eventId, version: change.version, why: `rotation of the ledger key to version ${change.version}: ${this.#o.identity.id} does not hold its private key (neither a stored version nor its staged rotation)` };
      }
      this.#accepted = { eventId: event.eventId, version: change.version };
    }
    return undefined;
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
      for (const event of result.appended) {
        this.#observeCommitted(event);
        applyKeyFact(this.#keys!, event, this.#o.log);
      }
      this.#republisher.remember(result.appended);
      this.#republisher.notify();
      this.#checkpointer.appended(result.appended as readonly LedgerEvent[]);
    }
  }

  /** The schedule follows what the core sealed (it switched its key after the same event). */
  #observeCommitted(event: LedgerEvent): void {
    const refused = this.#schedule!.observe(event);
    // The core sealed it under the same rules: a disagreement is a bug, logged; the next rotation is judged from what was observed.
    if (refused !== null) this.#o.log?.error({ seq: event.seq, refused }, 'ledger: a committed rotation of the ledger key does not follow its schedule');
    if (this.#accepted !== undefined && this.#schedule!.current.version >= this.#accepted.version) this.#accepted = undefined;
  }

  get instanceId(): string | undefined {
    return this.#server?.instanceId;
  }

  metrics(): LedgerServiceMetrics {
    return { ...this.#m, violationsSuppressed: this.#violations.suppressed, published: this.#republisher.published, withheld: this.#republisher.withheld, signerFailures: this.ledger.signerFailures };
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

