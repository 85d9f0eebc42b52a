// The SOC stream on the channel soc.incidents (issue 12 "Channels"), end to end in process on the
// real NATS and PostgreSQL: the real ledger, policy, key manager and incident response services.
// Analysts follow their epoch keys through `bulwark.audit.channel_epochs` (libs/channel
// followChannelEpochs: every event checked by the ledger reader, then by the key ring) and read
// the findings the incident service publishes under the channel's current epoch. An analyst added
// after everything started reads what is published after its epoch; a revoked one reads nothing
// sealed after its revocation and keeps its epochs; a non-subscriber reads nothing; forged
// announcements in the ledger's table (mis-signed, or not the key manager's) are refused.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { CommandClient, Commands, connectBus, createStreamPublisher, ensureStreams, incidentSubject, recipientToken, KvDirectory, LEDGER_PRINCIPAL, publishDirectoryEntry, RejectionReporter, removeDirectoryBucket, removeNamespaceStreams, ServicePrincipals, SOC_CHANNEL, startStreamConsumer, uniqueNamespace, type Bus } from '@bulwark/bus';
import { announceEpoch, announcementDetails, directoryIssuerKey, followChannelEpochs, parseAnnouncement, type ChannelEpochFollower } from '@bulwark/channel';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { ChannelReceiver, ChannelSender, type LocalIdentity } from '@bulwark/envelope';
import { canonicalJson, computeEventHash, newEvent } from '@bulwark/events';
import { DEFAULT_RULES_FILE, loadRules, startIncidentService, type IncidentService } from '@bulwark/incident-response';
import { startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { FileKeyStore, SoftwareKek } from '@bulwark/keystore';
import { analystChannelConsumers } from '@bulwark/nats-auth';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';
import { readSocStream, type SocFinding } from '../libs/cli/src/commands/soc-channel.js';
import { provider, sharedWorld, type SharedWorld } from './attack-children.js';

const ADMIN = 'analyst.admin';
const KM = ServicePrincipals.keys;
const AGENTS = [randomUUID(), randomUUID(), randomUUID(), randomUUID()].map((u) => `agent.${u}`);
const IDS = [LEDGER_PRINCIPAL, ServicePrincipals.policy, KM, ServicePrincipals.incident, ADMIN, 'analyst.ann', 'analyst.bob', 'analyst.eve', ...AGENTS];
const POLICY = 'policy vault {\n    allow: read(vault)\n    deny: write(vault)\n}\n';
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Reader {
  readonly id: string;
  readonly bus: Bus;
  readonly receiver: ChannelReceiver;
  readonly follower: ChannelEpochFollower;
  /** Incident ids of the findings this analyst opened. */
  readonly opened: Set<string>;
  /** Channel frames it could not open (no key for their epoch). */
  rejected: number;
}

/** Counts the frames the bus refused to open for an analyst. */
class Counting extends RejectionReporter {
  constructor(private readonly r: Reader) {
    super({ reporter: r.id, publish: async () => undefined });
  }
  override report(): void {
    this.r.rejected += 1;
  }
}

let world: SharedWorld;
let db: Kysely<LedgerDatabase>;
let admin: BulwarkClient;
let incidents: IncidentService;
const buses: Bus[] = [];
const stops: (() => Promise<unknown>)[] = [];
let cleanup: () => Promise<void>;
let connectTo: (who: string) => Promise<Bus>;
let kvDirectory: (who: string) => Promise<KvDirectory>;

beforeAll(async () => {
  world = sharedWorld(IDS);
  const ns = uniqueNamespace('soc');
  const dbSchema = withTestSchema('soc_channel');
  connectTo = async (who) => {
    const bus = await connectBus({ url: natsUrl(), name: who, namespace: ns });
    buses.push(bus);
    return bus;
  };
  kvDirectory = async (who) => {
    const d = await KvDirectory.open(await connectTo(`${who}-directory`), { provider, rootPublicKey: world.root.publicKey });
    stops.unshift(() => d.stop());
    return d;
  };
  db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: dbSchema.name });
  const setup = await connectTo('setup');
  const keyDir = mkdtempSync(join(tmpdir(), 'soc-keys-'));
  cleanup = async () => {
    for (const s of stops) await s().catch(() => undefined);
    await removeNamespaceStreams(setup);
    await removeDirectoryBucket(setup).catch(() => undefined);
    await Promise.all(buses.map((b) => b.close()));
    await closeDatabase(db);
    await dbSchema.drop();
    rmSync(keyDir, { recursive: true, force: true });
  };
  await ensureStreams(setup);
  for (const id of IDS) await publishDirectoryEntry(setup, world.identity(id).signed);
  await migrateLedger(db);
  const ledgerId = world.identity(LEDGER_PRINCIPAL);
  const ledger = await LedgerService.start({
    bus: await connectTo('ledger'),
    db,
    crypto: provider,
    identity: ledgerId,
    directory: await kvDirectory('ledger'),
    // No analyst among the control recipients: analysts have no control subject.
    settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/soc', schema: dbSchema.name, namespace: ns, checkpointMs: 0, controlTo: [ServicePrincipals.policy, KM] },
  });
  stops.unshift(() => ledger.stop());
  const policy: PolicyService = await startPolicyService({ bus: await connectTo('policy'), provider, identity: world.identity(ServicePrincipals.policy), directory: await kvDirectory('policy'), ledgerPublicKey: ledgerId.ed25519.publicKey, admins: [ADMIN, ServicePrincipals.incident], audit: { lingerMs: 5 } });
  stops.unshift(() => policy.stop());
  const store = await FileKeyStore.open({ dir: keyDir, wrapper: new SoftwareKek(provider, provider.randomBytes(32), 'test'), provider });
  await store.put({ principal: 'root', kind: 'ed25519', version: 1 }, world.root.secretKey);
  const keys: KeyManager = await startKeyManager({
    bus: await connectTo('key-manager'),
    provider,
    identity: { ...world.identity(KM), version: 1 },
    directory: await kvDirectory('key-manager'),
    store,
    ledgerPublicKey: ledgerId.ed25519.publicKey,
    admins: [ADMIN],
    // As `bulwark up` configures it (SYMBIONT_KEY_CHANNELS): the publisher and the analysts.
    channels: [{ channel: SOC_CHANNEL, subscribers: [ServicePrincipals.incident, 'analyst.ann', 'analyst.bob'] }],
  });
  stops.unshift(() => keys.stop());
  admin = createBulwarkClient({ bus: await connectTo('admin'), sessions: { provider, self: world.identity(ADMIN), directory: await kvDirectory('admin') }, rejections: quiet(ADMIN), adminTimeoutMs: 10_000 });
  await admin.policyAdmin.register(POLICY, 'vault.policy');
  const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
  incidents = await startIncidentService({ bus: await connectTo('incident'), provider, identity: world.identity(ServicePrincipals.incident), directory: await kvDirectory('incident'), ledgerPublicKey: ledgerId.ed25519.publicKey, rules, analysts: [ADMIN], socChannel: SOC_CHANNEL, maxAttempts: 2, retryBaseMs: 100 });
  stops.unshift(() => incidents.stop());
  await until(async () => (await epochs()).length >= 1, 20_000, 'the key manager created soc.incidents at start');
}, 90_000);

afterAll(async () => {
  await cleanup?.();
}, 60_000);

async function epochs() {
  return db.selectFrom('events').selectAll().where('event_type', '=', 'keys.channel_epoch').orderBy('seq').execute();
}

/** An analyst following its epoch keys through the ledger's channel query (syncIntervalMs 0: only on refresh). */
async function analyst(identity: LocalIdentity): Promise<Reader> {
  const bus = await connectTo(identity.id);
  const directory = await kvDirectory(identity.id);
  const receiver = new ChannelReceiver({ provider, directory, channelId: SOC_CHANNEL, keepHistory: true, staleAfterMs: 86_400_000 });
  const follower = await followChannelEpochs({
    bus,
    provider,
    identity,
    directory,
    ledgerPublicKey: world.identity(LEDGER_PRINCIPAL).ed25519.publicKey,
    issuer: KM,
    issuerKey: directoryIssuerKey(directory, KM),
    channels: [SOC_CHANNEL],
    onEpoch: (key) => receiver.install(key),
    rejections: quiet(identity.id),
    syncIntervalMs: 0,
  });
  stops.unshift(() => follower.stop());
  return { id: identity.id, bus, receiver, follower, opened: new Set(), rejected: 0 };
}

/** Reads the high findings on the channel from the stream's start through the analyst's own durable (as `bulwark soc tail` does). */
async function readAll(r: Reader, expected: number): Promise<void> {
  await r.follower.refresh();
  const high = analystChannelConsumers(r.id).find((g) => g.filter.startsWith('bulwark.incident.high.'))!;
  const consumer = await startStreamConsumer(r.bus, r.receiver, { stream: 'incidents', durable: high.durable, filterSubject: high.filter }, async (d) => {
    const finding = JSON.parse(new TextDecoder().decode(d.plaintext)) as { finding_info: { uid: string } };
    r.opened.add(finding.finding_info.uid);
  }, new Counting(r));
  await until(() => r.opened.size + r.rejected >= expected, 10_000, `${r.id} handled ${expected} findings`);
  await consumer.stop();
}

/** An agent's burst of denials: one High incident, its finding published on the channel. Resolves with the incident id. */
async function incidentOf(agentId: string): Promise<string> {
  const agent = createBulwarkClient({ bus: await connectTo(agentId), sessions: { provider, self: world.identity(agentId), directory: await kvDirectory(agentId) }, rejections: quiet(agentId), decisionTimeoutMs: 5000 });
  for (let i = 0; i < 20; i++) expect((await agent.policy.evaluate({ action: 'write', resource: 'vault' })).decision).toBe('Deny');
  let id: string | undefined;
  await until(() => (id = incidents.state.all().find((s) => s.incident.agentId === agentId && s.incident.rule === 'policy_deny_burst')?.incident.id) !== undefined, 15_000, `the incident of ${agentId}`);
  await until(async () => (await db.selectFrom('events').select('seq').where('event_type', '=', 'incident.opened').where('details', 'like', `%${id!}%`).execute()).length > 0, 10_000, 'incident.opened');
  return id!;
}

describe('the SOC stream on soc.incidents', () => {
  const ids: string[] = [];
  let late: ReturnType<SharedWorld['add']>;

  it('an analyst added after everything started reads what is published after its epoch; a revoked one keeps its epochs and reads nothing after; a non-subscriber reads nothing', async () => {
    ids.push(await incidentOf(AGENTS[0]!)); // epoch 1: ann, bob
    // A principal enrolled after the ledger and the key manager started, in no control list.
    late = world.add('analyst.late');
    await publishDirectoryEntry(buses[0]!, late.signed);
    await until(async () => (await kvDirectory('probe')).lookup(late.id) !== undefined, 5000, 'the late analyst in the directory');
    await until(async () => {
      try {
        await admin.keys.channel({ action: 'add', channel: SOC_CHANNEL, subscriber: late.id });
        return true;
      } catch {
        return false;
      }
    }, 10_000, 'the key manager sees the late analyst');
    ids.push(await incidentOf(AGENTS[1]!)); // epoch 2: ann, bob, late
    await admin.keys.channel({ action: 'revoke', channel: SOC_CHANNEL, subscriber: 'analyst.bob' });
    ids.push(await incidentOf(AGENTS[2]!)); // epoch 3: ann, late
    expect((await epochs()).map((e) => JSON.parse(e.details).reason)).toEqual(['created', 'subscriber_added', 'subscriber_revoked']);

    const ann = await analyst(world.identity('analyst.ann'));
    const bob = await analyst(world.identity('analyst.bob'));
    const lateReader = await analyst(late);
    const eve = await analyst(world.identity('analyst.eve'));
    for (const r of [ann, bob, lateReader, eve]) await readAll(r, 3);

    expect(ann.follower.keyring.heldEpochs(SOC_CHANNEL)).toEqual([1, 2, 3]);
    expect([...ann.opened].sort()).toEqual([...ids].sort());
    expect(lateReader.follower.keyring.heldEpochs(SOC_CHANNEL)).toEqual([2, 3]);
    expect([...lateReader.opened].sort()).toEqual([ids[1], ids[2]].sort());
    expect(bob.follower.keyring.heldEpochs(SOC_CHANNEL)).toEqual([1, 2]);
    expect([...bob.opened].sort()).toEqual([ids[0], ids[1]].sort());
    expect(bob.rejected).toBe(1);
    expect(eve.follower.keyring.heldEpochs(SOC_CHANNEL)).toEqual([]);
    expect(eve.opened.size).toBe(0);
    expect(eve.rejected).toBe(3);
  }, 120_000);

  /** Appends a forged keys.channel_epoch row (epoch 4, wrapped by the key manager's real key to eve) as an operator with database access would. */
  async function forge(options: { producer: string; signWith: Uint8Array }): Promise<bigint> {
    const last = (await db.selectFrom('events').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow());
    const previous = parseAnnouncement(JSON.parse((await epochs()).at(-1)!.details) as Record<string, never>);
    const km = world.identity(KM);
    const eve = world.identity('analyst.eve');
    const announcement = announceEpoch(provider, { id: KM, keyVersion: 1, x25519: km.x25519 }, { channel: SOC_CHANNEL, last: previous, reason: 'subscriber_added', subject: eve.id, subscribers: [{ id: eve.id, keyVersion: 1, x25519PublicKey: eve.x25519.publicKey }], at: Date.now(), by: ADMIN });
    const event = newEvent({ agentId: KM, eventType: 'keys.channel_epoch', details: announcementDetails(announcement) });
    const detailsJcs = canonicalJson(event.details);
    const seq = Number(last.seq) + 1;
    const fields = { seq, eventId: event.eventId, timestamp: event.timestamp, producer: options.producer, agentId: KM, eventType: 'keys.channel_epoch', detailsJcs, previousHash: new Uint8Array(last.event_hash) };
    const eventHash = computeEventHash(provider, fields);
    await db.insertInto('events').values({ seq: BigInt(seq), event_id: fields.eventId, timestamp_ms: BigInt(fields.timestamp), producer: fields.producer, agent_id: KM, event_type: fields.eventType, details: detailsJcs, previous_hash: Buffer.from(fields.previousHash), event_hash: Buffer.from(eventHash), signature: Buffer.from(provider.ed25519.sign(options.signWith, eventHash)) }).execute();
    return BigInt(seq);
  }

  it.each([
    ['mis-signed (not the ledger\'s key)', { producer: KM, signWith: 'random' }, 'E_READER_SEAL'],
    ['signed by the ledger but produced by svc.policy', { producer: ServicePrincipals.policy, signWith: 'ledger' }, 'E_READER_PRODUCER'],
  ] as const)('refuses a forged announcement %s: the follower halts and nothing is learnt', async (_what, f, code) => {
    const secret = f.signWith === 'ledger' ? world.identity(LEDGER_PRINCIPAL).ed25519.secretKey : provider.ed25519.generateKeyPair().secretKey;
    const seq = await forge({ producer: f.producer, signWith: secret });
    const eve = world.identity('analyst.eve');
    const directory = await kvDirectory('eve-forged');
    const learnt: number[] = [];
    try {
      const following = followChannelEpochs({
        bus: await connectTo('eve-forged'),
        provider,
        identity: eve,
        directory,
        ledgerPublicKey: world.identity(LEDGER_PRINCIPAL).ed25519.publicKey,
        issuer: KM,
        issuerKey: directoryIssuerKey(directory, KM),
        channels: [SOC_CHANNEL],
        onEpoch: (key) => learnt.push(key.epoch),
        rejections: quiet(eve.id),
        syncIntervalMs: 0,
      });
      await expect(following).rejects.toMatchObject({ code, seq: Number(seq) });
      expect(learnt).toEqual([]);
    } finally {
      await db.deleteFrom('events').where('seq', '=', seq).execute();
    }
  }, 30_000);

  it('serves an analyst the key manager\'s channel events and nothing else of the ledger', async () => {
    const eve = world.identity('analyst.eve');
    const client = new CommandClient(await connectTo('eve-query'), { sessions: { provider, self: eve, directory: await kvDirectory('eve-query') }, rejections: quiet(eve.id) });
    const call = async (body: object) => JSON.parse(new TextDecoder().decode(await client.request(Commands.audit.channelEpochs, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 5000 }))) as { events: { eventType: string; agentId: string; producer: string }[] };
    const served = await call({ limit: 1000 });
    expect(served.events.length).toBeGreaterThanOrEqual(1);
    for (const e of served.events) {
      expect(['keys.channel_epoch', 'keys.generated', 'keys.enrolled', 'keys.rotated']).toContain(e.eventType);
      expect([e.agentId, e.producer]).toEqual([KM, KM]);
    }
    await expect(call({ eventTypes: ['policy.decision'] })).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST' });
    await expect(call({ agentId: AGENTS[0] })).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST' });
  }, 30_000);

  it('soc tail\'s reader prints what the incident service confirms, learns an epoch on meeting its first frame, and refuses forged findings', async () => {
    const ann = world.identity('analyst.ann');
    const bus = await connectTo('ann-tail');
    const directory = await kvDirectory('ann-tail');
    const commands = new CommandClient(bus, { sessions: { provider, self: ann, directory }, rejections: quiet(ann.id) });
    const printed: SocFinding[] = [];
    const refused: string[] = [];
    // No sync on a timer: a new epoch is learnt only because a frame under it was met.
    const reader = await readSocStream({
      bus,
      provider,
      identity: ann,
      x25519SecretKey: (v) => (v === 1 ? ann.x25519.secretKey : undefined),
      directory,
      call: async (subject, body) => JSON.parse(new TextDecoder().decode(await commands.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 5000, idempotent: true }))) as unknown,
      floor: 'high',
      onFinding: (f) => void printed.push(f),
      onRefused: (why) => void refused.push(why),
      syncIntervalMs: 0,
    });
    stops.unshift(() => reader.stop());
    expect(reader.follower.keyring.heldEpochs(SOC_CHANNEL)).toEqual([1, 2, 3]);
    await admin.keys.channel({ action: 'rotate', channel: SOC_CHANNEL });
    await until(async () => (await epochs()).length === 4, 10_000, 'epoch 4 in the ledger');
    const id = await incidentOf(AGENTS[3]!);
    await until(() => printed.some((f) => f.incident.id === id), 20_000, `ann printed incident ${id}`);
    expect(reader.follower.keyring.heldEpochs(SOC_CHANNEL)).toEqual([1, 2, 3, 4]);
    const real = printed.find((f) => f.incident.id === id)!;
    expect(real).toMatchObject({ category: 'policy_violation', incident: { id, severity: 'high', rule: 'policy_deny_burst' } });

    // Ann holds epoch 4's key, as every subscriber does: she writes frames on the channel as if she were the service, and as herself.
    const key = reader.follower.keyring.epochKey(SOC_CHANNEL, 4)!;
    const subject = `${incidentSubject('high', real.category)}.${recipientToken(SOC_CHANNEL)}`;
    const forge = (senderId: string, finding: object) =>
      createStreamPublisher(bus, new ChannelSender({ provider, senderId, epochKey: key }), 'incidents').publish({ subject, msgId: randomUUID(), payload: new TextEncoder().encode(JSON.stringify(finding)) });
    await forge(ServicePrincipals.incident, { ...real.finding, message: 'all clear, nothing to see' });
    await forge(ServicePrincipals.incident, { ...real.finding, finding_info: { ...(real.finding['finding_info'] as object), uid: randomUUID() } });
    await forge(ann.id, real.finding);
    await until(() => refused.length >= 3, 15_000, 'the three forged findings refused');
    expect(printed.map((f) => f.incident.id)).toEqual([id]);
    expect(refused.join('\n')).toMatch(/message is "all clear, nothing to see", the incident service says/);
    expect(refused.join('\n')).toMatch(/the incident service has no such incident/);
    expect(refused.join('\n')).toMatch(new RegExp(`names ${ann.id} as its sender, not ${ServicePrincipals.incident}`));
  }, 90_000);
});
