// Attack: an operator edits BULWARK_LEDGER under the policy service (DESIGN §3a "Readers verify
// what they replay"). The operator may delete stream messages (`jsm.streams.deleteMessage`) and
// re-publish their bytes; a thief of the ledger's transport key, or a ledger tricked past its
// ingest checks, may put forged events on the stream. Against the real audit-ledger runtime
// (PostgreSQL + NATS) and real policy services started in-process, each test in its own bus
// namespace and schema: a reader either fills the gap from the ledger and ends with the ledger's
// policy set, or stops and denies everything, raising a Critical event the ledger records. It
// never serves a wrong set.
import { afterEach, describe, expect, it } from 'vitest';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import {
  connectBus,
  createStreamPublisher,
  ensureStreams,
  LEDGER_PRINCIPAL,
  ledgerControlSubject,
  removeNamespaceStreams,
  RejectionReporter,
  uniqueNamespace,
  type Bus,
  type Namespace,
} from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedSender, type LocalIdentity } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { encodeEventBatch, newEvent, sealEvent } from '@bulwark/events';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';

const provider = createCryptoProvider('node');
const world = testWorld({ provider });
const directory = world.directory;
const ledgerId = world.add(LEDGER_PRINCIPAL);
const policyId = world.add('svc.policy');
const keyManagerId = world.add('svc.key-manager');
const adminId = world.add('analyst.admin');
const agentId = world.add('agent.a1');
world.add('svc.incident-response');
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });
const CONTROL = ledgerControlSubject('svc.policy');

const policyText = (clearance: string) => `policy vault {\n    allow: read(vault) if user.clearance >= "${clearance}"\n}\n`;
const V1 = policyText('secret');
const V2 = policyText('public');
const V3 = policyText('top_secret');
const READ = { action: 'read', resource: 'vault', context: { user: { clearance: 'internal' } } };

/** One namespace, schema, ledger and admin per test. */
interface Scene {
  readonly ns: Namespace;
  readonly ledger: LedgerService;
  readonly db: Awaited<ReturnType<typeof createDatabase<LedgerDatabase>>>;
  readonly admin: BulwarkClient;
  readonly operator: { nc: NatsConnection; jsm: JetStreamManager; stream: string };
  startLedger(): Promise<LedgerService>;
  startPolicy(bootTimeoutMs?: number): Promise<PolicyService>;
  client(id: LocalIdentity): Promise<BulwarkClient>;
  /** The control messages for svc.policy in stream order. */
  controlMessages(): Promise<StoredMsg[]>;
  /** Security violations the ledger committed that a reader raised. */
  readerHalts(): Promise<{ producer: string; agent_id: string; details: Record<string, unknown> }[]>;
  bus: Bus;
  close(): Promise<void>;
}

async function scene(): Promise<Scene> {
  const ns = uniqueNamespace('rdr');
  const schema = withTestSchema('reader_attack');
  const buses: Bus[] = [];
  const services: PolicyService[] = [];
  let ledgers: LedgerService[] = [];
  const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  const connectTo = async (name: string) => {
    const bus = await connectBus({ url: natsUrl(), name, namespace: ns });
    buses.push(bus);
    return bus;
  };
  const bus = await connectTo('ledger');
  await ensureStreams(bus);
  await migrateLedger(db);
  const startLedger = async () => {
    const ledger = await LedgerService.start({
      bus: await connectTo('ledger'),
      db,
      crypto: provider,
      identity: ledgerId,
      directory,
      settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/audit', schema: schema.name, namespace: ns, checkpointMs: 0 },
    });
    ledgers.push(ledger);
    return ledger;
  };
  const ledger = await startLedger();
  const client = async (id: LocalIdentity) => createBulwarkClient({ bus: await connectTo(id.id), sessions: { provider, self: id, directory }, rejections: quiet(id.id), decisionTimeoutMs: 5000 });
  const nc = await connect({ servers: natsUrl() });
  const jsm = await jetstreamManager(nc);
  const stream = `${ns.streamPrefix}BULWARK_LEDGER`;
  return {
    ns,
    ledger,
    db,
    bus,
    admin: await client(adminId),
    operator: { nc, jsm, stream },
    startLedger,
    client,
    async startPolicy(bootTimeoutMs = 20_000) {
      const service = await startPolicyService({ bus: await connectTo('policy'), provider, identity: policyId, directory, ledgerPublicKey: ledgerId.ed25519.publicKey, admins: [adminId.id], audit: { lingerMs: 5 }, bootTimeoutMs });
      services.push(service);
      return service;
    },
    async controlMessages() {
      const info = await jsm.streams.info(stream);
      const out: StoredMsg[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const msg = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
        if (msg !== null && msg.subject === `${ns.subjectPrefix}${CONTROL}`) out.push(msg);
      }
      return out;
    },
    async readerHalts() {
      const rows = await db.selectFrom('events').selectAll().where('event_type', '=', 'security.violation').execute();
      return rows
        .map((r) => ({ producer: (r as unknown as { producer: string }).producer, agent_id: r.agent_id, details: JSON.parse(r.details) as Record<string, unknown> }))
        .filter((r) => r.details['kind'] === 'reader.halted');
    },
    async close() {
      await Promise.all(services.map((s) => s.stop()));
      await Promise.all(ledgers.map((l) => l.stop()));
      ledgers = [];
      await removeNamespaceStreams(bus);
      await Promise.all(buses.map((b) => b.close()));
      await nc.close();
      await closeDatabase(db);
      await schema.drop();
    },
  };
}

/** The operator re-publishes a stored message's bytes at the end of the stream (a new message id, so JetStream keeps it). */
async function republish(s: Scene, msg: StoredMsg): Promise<void> {
  const h = natsHeaders();
  for (const [key, values] of msg.header ?? []) if (key !== 'Nats-Msg-Id') for (const v of values) h.append(key, v);
  await jetstream(s.operator.nc).publish(msg.subject, msg.data, { headers: h, msgID: `${msg.header?.get('Nats-Msg-Id') ?? msg.seq}:again` });
}

const activeVersion = (service: PolicyService) => service.current().policies.find((p) => p.name === 'vault')?.version;

/** register v1, update v2, then `then` (rollback to 1, or update v3); waits until the ledger re-published every control message. */
async function history(s: Scene, last: 'rollback' | 'update'): Promise<PolicyService> {
  const first = await s.startPolicy();
  await s.admin.policyAdmin.register(V1, 'vault.policy');
  await s.admin.policyAdmin.update(V2, 'vault.policy');
  const reply = last === 'rollback' ? await s.admin.policyAdmin.rollback('vault', 1) : await s.admin.policyAdmin.update(V3, 'vault.policy');
  expect(reply.applied).toBe(true);
  await expect.poll(async () => (await s.controlMessages()).length, { timeout: 10_000 }).toBe(3);
  return first;
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('attack: deleted and reordered BULWARK_LEDGER messages', () => {
  let s: Scene | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it('a deleted rollback (the last control message) is filled from the ledger: the rolled-back version stays rolled back', async () => {
    s = await scene();
    const first = await history(s, 'rollback');
    expect(activeVersion(first)).toBe(1);
    const [, , rollback] = await s.controlMessages();
    expect(await s.operator.jsm.streams.deleteMessage(s.operator.stream, rollback!.seq)).toBe(true);

    const second = await s.startPolicy();
    expect(activeVersion(second)).toBe(1);
    expect(second.current().digest).toBe(first.current().digest);
    expect(second.current().version).toBe(first.current().version);
    const agent = await s.client(agentId);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Deny', policy: null });
  }, 60_000);

  it('a deleted control message in the middle is filled from the ledger before the next one is applied', async () => {
    s = await scene();
    const first = await history(s, 'update');
    expect(activeVersion(first)).toBe(3);
    const [, update2] = await s.controlMessages();
    await s.operator.jsm.streams.deleteMessage(s.operator.stream, update2!.seq);

    const second = await s.startPolicy();
    expect(activeVersion(second)).toBe(3);
    expect(second.current().digest).toBe(first.current().digest);
  }, 60_000);

  it('two control messages reordered (one deleted and re-published after the other): the late one is skipped, the set is the ledger\'s', async () => {
    s = await scene();
    const first = await history(s, 'rollback');
    const [, update2] = await s.controlMessages();
    await s.operator.jsm.streams.deleteMessage(s.operator.stream, update2!.seq);
    await republish(s, update2!);
    const order = (await s.controlMessages()).map((m) => m.header?.get('Nats-Msg-Id'));
    expect(order[2]).toMatch(/:again$/);

    const second = await s.startPolicy();
    expect(activeVersion(second)).toBe(1);
    expect(second.current().digest).toBe(first.current().digest);
    expect(second.current().version).toBe(first.current().version);
  }, 60_000);

  it('the operator purges the control subject: a new instance rebuilds the same set from the ledger alone', async () => {
    s = await scene();
    const first = await history(s, 'rollback');
    await s.operator.jsm.streams.purge(s.operator.stream, { filter: `${s.ns.subjectPrefix}${CONTROL}` });
    expect(await s.controlMessages()).toEqual([]);

    const second = await s.startPolicy();
    expect(activeVersion(second)).toBe(1);
    expect(second.current().digest).toBe(first.current().digest);
    expect(second.current().version).toBe(first.current().version);
  }, 60_000);

  it('a gap the ledger cannot fill stops the reader: every request is denied, and the Critical event reaches the ledger', async () => {
    s = await scene();
    const first = await history(s, 'rollback');
    await first.stop(); // so that requests reach the new instance only
    const [, update2] = await s.controlMessages();
    await s.operator.jsm.streams.deleteMessage(s.operator.stream, update2!.seq);
    await s.ledger.stop(); // nobody answers bulwark.audit.query

    const second = await s.startPolicy();
    expect(second.current().version).toMatch(/^halted-ledger-\d+$/);
    expect(second.current().policies.map((p) => p.name)).toEqual(['ledger_reader_halted']);
    const agent = await s.client(agentId);
    const permissive = { ...READ, context: { user: { clearance: 'top_secret' } } };
    expect(await agent.policy.evaluate(permissive)).toMatchObject({ decision: 'Deny', policy: 'ledger_reader_halted' });

    await s.startLedger(); // the report waited on BULWARK_EVENTS
    await until(async () => (await s!.readerHalts()).length > 0, 15_000, 'the reader.halted event in the ledger');
    const [halt] = await s.readerHalts();
    expect(halt).toMatchObject({ producer: 'svc.policy', agent_id: 'svc.policy', details: { kind: 'reader.halted', severity: 'critical', reader: 'svc.policy/policies' } });
    expect(String(halt!.details['problem'])).toMatch(/^E_READER_GAP: .*could not be asked/);
    expect(second.current().version).toMatch(/^halted-ledger-/);
  }, 90_000);
});

describe('attack: forged events on BULWARK_LEDGER', () => {
  let s: Scene | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  /** A control batch after the live history: not adjacent to any seq, control_previous_seq = the last control event. */
  async function forge(sc: Scene, live: PolicyService, how: 'mis-signed' | 'wrong-producer' | 'not-the-ledger'): Promise<void> {
    const lastControl = Number(live.current().version.slice('ledger-'.length));
    const event = newEvent({ agentId: adminId.id, eventType: 'policy.rolledback', details: { name: 'vault', version: 2, fromVersion: 1, text: V2, file: 'vault.policy', by: adminId.id } });
    const head = await sc.ledger.ledger.head();
    const seq = head.size + 100;
    const key = how === 'mis-signed' ? provider.ed25519.generateKeyPair().secretKey : ledgerId.ed25519.secretKey;
    const sealed = sealEvent(provider, key, event, how === 'wrong-producer' ? 'svc.key-manager' : 'svc.policy', seq, head.headHash);
    const from = how === 'not-the-ledger' ? keyManagerId : ledgerId;
    const publisher = createStreamPublisher(sc.bus, new SealedSender({ provider, self: from, directory, recipientId: 'svc.policy' }), 'ledger');
    await publisher.publish({ subject: CONTROL, msgId: `control:svc.policy:${seq}-${seq}`, payload: encodeEventBatch([sealed], { controlPreviousSeq: lastControl }) });
  }

  for (const [how, code] of [
    ['mis-signed', 'E_READER_SEAL'],
    ['wrong-producer', 'E_READER_PRODUCER'],
    ['not-the-ledger', 'E_READER_MESSAGE'],
  ] as const) {
    it(`a ${how} control event stops the live reader (${code}): it is not applied, every request is denied, the Critical event is recorded`, async () => {
      s = await scene();
      const live = await history(s, 'rollback');
      expect(activeVersion(live)).toBe(1);
      await forge(s, live, how);
      await until(() => live.current().version.startsWith('halted-ledger-'), 10_000, 'the reader to halt');
      expect(live.current().policies.map((p) => p.name)).toEqual(['ledger_reader_halted']);
      // Readiness ($SRV.STATS) says so too (WP-E).
      expect(live.notReady()).toMatch(/^ledger reader halted: every request is denied/);
      const agent = await s.client(agentId);
      expect(await agent.policy.evaluate({ ...READ, context: { user: { clearance: 'public' } } })).toMatchObject({ decision: 'Deny', policy: 'ledger_reader_halted' });
      await until(async () => (await s!.readerHalts()).length > 0, 15_000, 'the reader.halted event in the ledger');
      const [halt] = await s.readerHalts();
      expect(halt).toMatchObject({ producer: 'svc.policy', details: { kind: 'reader.halted', severity: 'critical' } });
      expect(String(halt!.details['problem'])).toMatch(new RegExp(`^${code}: `));
    }, 60_000);
  }
});
