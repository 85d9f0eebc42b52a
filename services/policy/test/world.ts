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
import type { Ed25519KeyPair } from '@bulwark/crypto';
import { SealedReceiver, SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { canonicalDetails, decodeEvent, decodeEventBatch, encodeEventBatch, GENESIS_PREVIOUS_HASH, isControlEventType, newEvent, sealEvent, type AuditEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { ledgerAckFloor, startPolicyService, type PolicyService, type PolicyServiceOptions } from '../src/index.js';

export const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
export const provider = createCryptoProvider();
export const POLICY = 'svc.policy';
export const ADMIN = 'analyst.admin';
export const AGENT = 'agent.a1';
const DAY_MS = 86_400_000;

export const silentReporter = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

/** The identities and the directory the harness runs with: a test world's, or a deployment's key store and KV directory. */
export interface HarnessWorld {
  identity(id: string): LocalIdentity & { readonly ed25519: Ed25519KeyPair };
  readonly directory: Directory;
}

/** Where the stand-in reads BULWARK_EVENTS: its own durable on the policy events, or (under the authority of DESIGN §3a, which lets the ledger's user open only this one) the ledger's. */
export interface StandInIntake {
  readonly durable: string;
  readonly filterSubject: string;
}
const STANDIN_INTAKE: StandInIntake = { durable: 'ledger-standin', filterSubject: 'bulwark.evt.policy.>' };
const LEDGER_INTAKE: StandInIntake = { durable: 'audit-ledger', filterSubject: 'bulwark.evt.>' };

export class LedgerStandIn {
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
    private readonly world: HarnessWorld,
    readonly intake: StandInIntake = STANDIN_INTAKE,
  ) {
    const sender = new SealedSender({ provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory, recipientId: POLICY });
    this.#publisher = createStreamPublisher(bus, sender, 'ledger');
  }

  async start(): Promise<void> {
    const receiver = new SealedReceiver({ provider, self: this.world.identity(LEDGER_PRINCIPAL), directory: this.world.directory, staleAfterMs: DAY_MS });
    this.#consumer = await startStreamConsumer(
      this.bus,
      receiver,
      { stream: 'events', durable: this.intake.durable, filterSubject: this.intake.filterSubject, retryInitialMs: 20 },
      async (d) => {
        // The ledger's durable takes every event; the stand-in's part is the policy service's.
        if (!d.subject.startsWith('bulwark.evt.policy.')) return;
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

/**
 * A deployment under the authority of DESIGN §3a (test/attack/private-bulwark.ts): every
 * connection with its principal's own NATS user, identities from its key store, the directory
 * from KV; streams are reset by its operator (the harness's principals may not create them).
 */
export interface HarnessDeployment {
  readonly namespace: Namespace;
  connect(principal: string, name?: string): Promise<Bus>;
  identity(principal: string): Promise<LocalIdentity & { readonly ed25519: Ed25519KeyPair }>;
  directory(): Promise<Directory>;
  resetStreams(specs?: readonly StreamSpec[]): Promise<void>;
}

export interface Harness {
  readonly world: HarnessWorld;
  /** The agent principal (`AGENT`, or the one enrolled in the deployment). */
  readonly agent: string;
  readonly ns: Namespace;
  readonly bus: Bus;
  readonly ledger: LedgerStandIn;
  start(overrides?: Partial<PolicyServiceOptions>): Promise<PolicyService>;
  /** A bus as `principal` (under a deployment: with its own credentials); `name` names the connection (default the principal). */
  connect(principal: string, name?: string): Promise<Bus>;
  /** Opens, as the ledger, the single events on BULWARK_EVENTS under `filterSubject` (e.g. alerts): a live list. */
  watchEvents(filterSubject: string): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** The world of a deployment: its principals' identities (loaded now) and its KV directory. */
async function deploymentWorld(deployment: HarnessDeployment, ids: readonly string[]): Promise<HarnessWorld> {
  const identities = new Map(await Promise.all(ids.map(async (id) => [id, await deployment.identity(id)] as const)));
  return {
    identity(id) {
      const found = identities.get(id);
      if (found === undefined) throw new Error(`the harness loaded no identity for ${id}`);
      return found;
    },
    directory: await deployment.directory(),
  };
}

/**
 * A namespace with its streams (`streams`: e.g. a small BULWARK_EVENTS; the service is started with the same), a ledger stand-in, and a way to start service instances in it.
 * Without `deployment`: a test world and a fresh namespace on NATS_URL; with it: the deployment's namespace (its streams reset) and principals, `agent` being an agent enrolled there.
 */
export async function harness(options: { streams?: readonly StreamSpec[]; deployment?: { of: HarnessDeployment; agent: string } } = {}): Promise<Harness> {
  const deployment = options.deployment?.of;
  const agent = options.deployment?.agent ?? AGENT;
  // The ledger principal's Ed25519 key is the one that signs the chain, as in production.
  const world = deployment === undefined ? testWorld({ provider, ids: [POLICY, LEDGER_PRINCIPAL, ADMIN, AGENT] }) : await deploymentWorld(deployment, [POLICY, LEDGER_PRINCIPAL, ADMIN, agent]);
  const ns = deployment?.namespace ?? uniqueNamespace();
  const buses: Bus[] = [];
  const services: PolicyService[] = [];
  const watchers: RunningConsumer[] = [];
  const connect = async (principal: string, name = principal) => {
    const b = deployment === undefined ? await connectBus({ url: NATS_URL, name, namespace: ns }) : await deployment.connect(principal, name);
    buses.push(b);
    return b;
  };
  if (deployment !== undefined) await deployment.resetStreams(options.streams);
  const bus = await connect(LEDGER_PRINCIPAL, 'ledger-standin');
  if (deployment === undefined) await ensureStreams(bus, options.streams);
  const ledger = new LedgerStandIn(bus, world, deployment === undefined ? STANDIN_INTAKE : LEDGER_INTAKE);
  await ledger.start();
  return {
    world,
    agent,
    ns,
    bus,
    ledger,
    async start(overrides = {}) {
      const own = await connect(POLICY, 'policy');
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
        audit: { commitSignal: ledgerAckFloor(own, ledger.intake.durable), ...overrides.audit },
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
      // A deployment's streams are its operator's (reset by the next harness, removed with it).
      if (deployment === undefined) await removeNamespaceStreams(bus);
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
