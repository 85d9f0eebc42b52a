// Test support for the policy service against the real NATS (NATS_URL): identities in a
// directory signed by a test root, and a stand-in for the audit ledger's runtime.
//
// The ledger runtime (services/audit-ledger/src/service) did not exist when these tests
// were written, so `LedgerStandIn` does its part of the contract here: it consumes
// `bulwark.evt.policy.>` from the test namespace's BULWARK_EVENTS (frames sealed to
// svc.audit-ledger), chains and signs each event as the ledger does (`sealEvent`: seq,
// previous_hash, event_hash, Ed25519 signature), and re-publishes it as a protobuf
// `AuditEvent` with its chain fields on `bulwark.ledger.<event>` of the test namespace's
// BULWARK_LEDGER, sealed to svc.policy. It also keeps the decision batches it receives.
// Control events also go out on `bulwark.ledger.control.svc.policy` with the ledger's
// `control_previous_seq`, and it answers `bulwark.audit.query` (seq range, event types,
// pages, `producer` and `detailsJcs`) so the verified reader can fill gaps (CONTRACTS §3, §4).
import { connect as connectNats } from '@nats-io/transport-node';
import { createCryptoProvider } from '@bulwark/crypto';
import {
  Commands,
  connectBus,
  createStreamPublisher,
  ensureStreams,
  LEDGER_BATCH_SUBJECT,
  ledgerControlSubject,
  LEDGER_PRINCIPAL,
  removeNamespaceStreams,
  startStreamConsumer,
  uniqueNamespace,
  RejectionReporter,
  serveCommands,
  type Bus,
  type CommandServer,
  type Namespace,
  type RunningConsumer,
  type StreamSpec,
} from '@bulwark/bus';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld, type TestWorld } from '@bulwark/envelope/testing';
import { canonicalDetails, decodeEvent, decodeEventBatch, encodeEventBatch, GENESIS_PREVIOUS_HASH, isControlEventType, newEvent, sealEvent, type AuditEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { ledgerAckFloor, startPolicyService, type PolicyService, type PolicyServiceOptions } from '../src/index.js';

export const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
export const provider = createCryptoProvider();
export const POLICY = 'svc.policy';
export const ADMIN = 'analyst.admin';
export const AGENT = 'agent.a1';
const DAY_MS = 86_400_000;

export const silentReporter = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

export class LedgerStandIn {
  static readonly DURABLE = 'ledger-standin';
  readonly decisions: AuditEvent[] = [];
  readonly committed: LedgerEvent[] = [];
  /** While true, policy change events are consumed but not committed (a ledger that is down). */
  holding = false;
  #seq = 0;
  #previous: Uint8Array = GENESIS_PREVIOUS_HASH;
  /** The seq of the last control event committed (-1: none): each control batch's control_previous_seq. */
  #lastControl = -1;
  #consumer: RunningConsumer | undefined;
  #queries: CommandServer | undefined;
  readonly #publisher;

  constructor(
    private readonly bus: Bus,
    private readonly world: TestWorld,
  ) {
    const sender = new SealedSender({ provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory, recipientId: POLICY });
    this.#publisher = createStreamPublisher(bus, sender, 'ledger');
  }

  async start(): Promise<void> {
    const receiver = new SealedReceiver({ provider, self: this.world.identity(LEDGER_PRINCIPAL), directory: this.world.directory, staleAfterMs: DAY_MS });
    this.#consumer = await startStreamConsumer(
      this.bus,
      receiver,
      { stream: 'events', durable: LedgerStandIn.DURABLE, filterSubject: 'bulwark.evt.policy.>', retryInitialMs: 20 },
      async (d) => {
        if (d.subject === 'bulwark.evt.policy.decision') {
          this.decisions.push(...decodeEventBatch(d.plaintext));
          return;
        }
        if (this.holding) throw new Error('ledger stand-in is holding');
        const event = decodeEvent(d.plaintext);
        await this.commit(event, d.meta.sender);
      },
      silentReporter(LEDGER_PRINCIPAL),
    );
    // The ledger's query, as far as readers use it to fill gaps: a seq range, any of some types, pages.
    this.#queries = await serveCommands(this.bus, {
      service: 'audit',
      version: '0.1.0',
      rejections: silentReporter(LEDGER_PRINCIPAL),
      sessions: { provider, self: this.world.identity(LEDGER_PRINCIPAL), directory: this.world.directory },
      handlers: { [Commands.audit.query]: async (req) => new TextEncoder().encode(JSON.stringify(this.query(JSON.parse(new TextDecoder().decode(req.body)) as QueryBody))) },
    });
  }

  /** `bulwark.audit.query` over the committed events (the reply shape of services/audit-ledger protocol.ts). */
  query(body: QueryBody): { events: unknown[]; nextCursor?: string } {
    const from = Math.max(body.fromSeq ?? 0, body.cursor === undefined ? 0 : Number(body.cursor));
    const limit = body.limit ?? 100;
    const rows = this.committed.filter((e) => e.seq >= from && (body.toSeq === undefined || e.seq <= body.toSeq) && (body.eventTypes === undefined || body.eventTypes.includes(e.eventType)));
    const page = rows.slice(0, limit);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const events = page.map((e) => ({
      seq: e.seq,
      eventId: e.eventId,
      timestamp: e.timestamp,
      producer: e.producer,
      agentId: e.agentId,
      eventType: e.eventType,
      details: e.details,
      detailsJcs: canonicalDetails(e.details),
      previousHash: hex(e.previousHash),
      eventHash: hex(e.eventHash),
      signature: hex(e.signature),
    }));
    return rows.length > limit ? { events, nextCursor: String(page.at(-1)!.seq + 1) } : { events };
  }

  /** Chains, signs and re-publishes one event on BULWARK_LEDGER in a batch of one, as the ledger does after its commit. */
  async commit(event: AuditEvent, producer: string = POLICY): Promise<LedgerEvent> {
    const sealed = sealEvent(provider, this.world.identity(LEDGER_PRINCIPAL).ed25519.secretKey, event, producer, this.#seq, this.#previous);
    this.#seq++;
    this.#previous = sealed.eventHash;
    this.committed.push(sealed);
    await this.#publisher.publish({ subject: LEDGER_BATCH_SUBJECT, msgId: `${sealed.seq}-${sealed.seq}`, payload: encodeEventBatch([sealed]) });
    if (isControlEventType(sealed.eventType)) {
      await this.#publisher.publish({ subject: ledgerControlSubject(POLICY), msgId: `control:${POLICY}:${sealed.seq}-${sealed.seq}`, payload: encodeEventBatch([sealed], { controlPreviousSeq: this.#lastControl }) });
      this.#lastControl = sealed.seq;
    }
    return sealed;
  }

  async commitNew(eventType: EventType, details: Record<string, string | number>): Promise<LedgerEvent> {
    return this.commit(newEvent({ agentId: ADMIN, eventType, details }));
  }

  async stop(): Promise<void> {
    await this.#consumer?.stop();
    await this.#queries?.stop();
  }
}

interface QueryBody {
  readonly fromSeq?: number;
  readonly toSeq?: number;
  readonly eventTypes?: readonly string[];
  readonly limit?: number;
  readonly cursor?: string;
}

export interface Harness {
  readonly world: TestWorld;
  readonly ns: Namespace;
  readonly bus: Bus;
  readonly ledger: LedgerStandIn;
  start(overrides?: Partial<PolicyServiceOptions>): Promise<PolicyService>;
  connect(name: string): Promise<Bus>;
  /** Opens, as the ledger, the single events on BULWARK_EVENTS under `filterSubject` (e.g. alerts): a live list. */
  watchEvents(filterSubject: string): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** A namespace with its streams (`streams`: e.g. a small BULWARK_EVENTS; the service is started with the same), a ledger stand-in, and a way to start service instances in it. */
export async function harness(options: { streams?: readonly StreamSpec[] } = {}): Promise<Harness> {
  // The ledger principal's Ed25519 key is the one that signs the chain, as in production.
  const world = testWorld({ provider, ids: [POLICY, LEDGER_PRINCIPAL, ADMIN, AGENT] });
  const ns = uniqueNamespace();
  const buses: Bus[] = [];
  const services: PolicyService[] = [];
  const watchers: RunningConsumer[] = [];
  const connect = async (name: string) => {
    const b = await connectBus({ url: NATS_URL, name, namespace: ns });
    buses.push(b);
    return b;
  };
  const bus = await connect('ledger-standin');
  await ensureStreams(bus, options.streams);
  const ledger = new LedgerStandIn(bus, world);
  await ledger.start();
  return {
    world,
    ns,
    bus,
    ledger,
    async start(overrides = {}) {
      const own = await connect('policy');
      const service = await startPolicyService({
        bus: own,
        provider,
        identity: world.identity(POLICY),
        directory: world.directory,
        ledgerPublicKey: world.identity(LEDGER_PRINCIPAL).ed25519.publicKey,
        admins: [ADMIN],
        applyWaitMs: 5000,
        ...(options.streams === undefined ? {} : { streams: options.streams }),
        ...overrides,
        // The stand-in's durable acknowledges decision batches once it holds them: its ack floor is the commit mark.
        audit: { commitSignal: ledgerAckFloor(own, LedgerStandIn.DURABLE), ...overrides.audit },
      });
      services.push(service);
      return service;
    },
    connect,
    async watchEvents(filterSubject) {
      const seen: AuditEvent[] = [];
      const receiver = new SealedReceiver({ provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory, staleAfterMs: DAY_MS });
      const durable = `watch-${watchers.length}`;
      watchers.push(await startStreamConsumer(bus, receiver, { stream: 'events', durable, filterSubject }, async (d) => void seen.push(decodeEvent(d.plaintext)), silentReporter(LEDGER_PRINCIPAL)));
      return seen;
    },
    async close() {
      await Promise.all(services.map((s) => s.stop()));
      await Promise.all(watchers.map((w) => w.stop()));
      await ledger.stop();
      await removeNamespaceStreams(bus);
      await Promise.all(buses.map((b) => b.close()));
    },
  };
}

/** The readiness a policy instance answers on `$SRV.STATS.bulwark-policy.<instance id>` (cached by the bus for 1 s). */
export async function serviceStats(instanceId: string): Promise<{ ready: boolean; reason: string }> {
  const nc = await connectNats({ servers: NATS_URL, name: 'stats-probe' });
  try {
    const reply = await nc.request(`$SRV.STATS.bulwark-policy.${instanceId}`, '', { timeout: 2000 });
    const stats = reply.json<{ endpoints?: { data?: { ready: boolean; reason: string } }[] }>();
    const data = stats.endpoints?.[0]?.data;
    if (data === undefined) throw new Error(`$SRV.STATS of ${instanceId} carried no readiness`);
    return data;
  } finally {
    await nc.close();
  }
}
