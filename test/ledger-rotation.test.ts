// The audit ledger rotates its own identity and event-signing key while it runs (issue 12, "the
// ledger rotates itself"): `bulwark init` (root namespace), nats-server in operator mode,
// PostgreSQL, the key manager in this process, and the real `bulwark-audit-ledger` main as a child
// process on its own key directory (`bulwark principal export`), told a short rotation interval.
// It rotates by itself (init's keys are older than its interval), then once more when an
// administrator runs `bulwark keys rotate svc.audit-ledger`, while an agent keeps sending events.
// Then: no event lost, the chain verifies from the genesis key alone (a fresh reader from seq 0 and
// `verifyLedger`), each event under the key in force at its seq, checkpoints under the new key; a
// restart comes back on the new key; and the attacks: an old-key signature placed after the
// rotation, a key-manager rotation to a key the ledger does not hold, a rotation from anyone else.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLedger, openCheckpoint, verifierKey, verifyLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, createEventPublisher, ensureStreams, Events, KvDirectory, LEDGER_PRINCIPAL, removeNamespaceStreams, ServicePrincipals, uniqueNamespace, type Bus } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { encodeEvent, newEvent, type EventType, type JsonObject, type LedgerEvent } from '@bulwark/events';
import { NatsRevoker, startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { loadIdentity, type Identity } from '@bulwark/keystore';
import { startLedgerReader } from '@bulwark/ledger-reader';
import { OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';
import { mainEnv, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';
import { quiet, rotatedTo } from './service-world.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const ORIGIN = 'bulwark.test/ledger-rotation';
const CHECK_MS = 300;
const schema = withTestSchema('ledger_rotation');
const children: ChildProcess[] = [];

interface LedgerMain {
  readonly proc: ChildProcess;
  output(): string;
}

let b: PrivateBulwark;
let db: Kysely<LedgerDatabase>;
let km: KeyManager;
let revoker: NatsRevoker;
let directory: KvDirectory;
let admin: BulwarkClient;
let agentId: string;
let agentBus: Bus;
let agentIdentity: Identity;
/** The ledger's version-1 identity (init's store): the genesis key, and the old key an attacker may hold. */
let genesis: Identity;
let keysDir: string;
let ledger: LedgerMain | undefined;
let sending: { stop(): Promise<string[]> } | undefined;
/** Every event id the agent had acknowledged by the events stream. */
const sent: string[] = [];

function startLedger(extra: Record<string, string> = {}): LedgerMain {
  const env = mainEnv(b, keysDir, {
    DATABASE_URL: databaseUrl(),
    SYMBIONT_LOG_LEVEL: 'info',
    SYMBIONT_LEDGER_SCHEMA: schema.name,
    SYMBIONT_LEDGER_ORIGIN: ORIGIN,
    SYMBIONT_LEDGER_CONTROL_TO: ServicePrincipals.keys,
    SYMBIONT_LEDGER_REPUBLISH_TO: ServicePrincipals.incident,
    SYMBIONT_LEDGER_CHECKPOINT_EVENTS: '20',
    SYMBIONT_LEDGER_CHECKPOINT_MS: '0',
    SYMBIONT_LEDGER_ACK_WAIT_MS: '5000',
    BULWARK_LEDGER_PUBLIC_KEY: Buffer.from(genesis.ed25519.publicKey).toString('hex'),
    SYMBIONT_KEY_ROTATION_CHECK_MS: String(CHECK_MS),
    ...extra,
  });
  const proc = spawn(process.execPath, [join(repoRoot, 'services/audit-ledger/dist/service/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
  return { proc, output: () => output };
}

async function stopLedger(m: LedgerMain): Promise<void> {
  if (m.proc.exitCode !== null || m.proc.signalCode !== null) return;
  const exited = new Promise((r) => m.proc.once('exit', r));
  m.proc.kill('SIGTERM');
  await exited;
}

/** Until its log says it runs (30 s at most); an exit before is the failure. */
async function running(m: LedgerMain): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!/audit-ledger: running/.test(m.output())) {
    if (m.proc.exitCode !== null || Date.now() > deadline) throw new Error(`bulwark-audit-ledger (exit ${m.proc.exitCode}) is not running: ${m.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The agent's events, sealed to the ledger as the directory certifies it now. */
function agentEvents(): { send(n: number): Promise<void> } {
  const events = createEventPublisher(agentBus, new SealedSender({ provider: b.provider, self: agentIdentity, directory, recipientId: LEDGER_PRINCIPAL }));
  const subject = `bulwark.evt.agent.${agentId.slice('agent.'.length)}.message.sent`;
  return {
    async send(n) {
      const event = newEvent({ agentId, eventType: 'message.sent', details: { n } });
      await events.publish({ subject: subject as never, eventId: event.eventId, payload: encodeEvent(event) });
      sent.push(event.eventId);
    },
  };
}

type Row = { seq: bigint | string | number; event_id: string; timestamp_ms: bigint | string | number; producer: string; agent_id: string; event_type: string; details: string; previous_hash: Uint8Array; event_hash: Uint8Array; signature: Uint8Array };

function eventOfRow(row: Row): LedgerEvent {
  return {
    seq: Number(row.seq),
    eventId: row.event_id,
    timestamp: Number(row.timestamp_ms),
    producer: row.producer,
    agentId: row.agent_id,
    eventType: row.event_type as EventType,
    details: (typeof row.details === 'string' ? JSON.parse(row.details) : row.details) as JsonObject,
    previousHash: new Uint8Array(row.previous_hash),
    eventHash: new Uint8Array(row.event_hash),
    signature: new Uint8Array(row.signature),
  };
}

async function rows(): Promise<Row[]> {
  return (await db.selectFrom('events').selectAll().orderBy('seq').execute()) as unknown as Row[];
}

/** The ledger's own rotations committed: seq, version and new Ed25519 key. */
async function ledgerRotations(): Promise<{ seq: number; version: number; ed25519: Uint8Array }[]> {
  const found = await db.selectFrom('events').selectAll().where('event_type', '=', 'keys.rotated').where('agent_id', '=', LEDGER_PRINCIPAL).orderBy('seq').execute();
  return found.map((r) => {
    const d = (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as { version: number; ed25519: string };
    return { seq: Number(r.seq), version: d.version, ed25519: new Uint8Array(Buffer.from(d.ed25519, 'base64')) };
  });
}

/** A verified reader of the full stream from seq 0 as svc.incident-response (the full batches' recipient), pinned to the genesis key alone; how many events it applied. */
async function freshReader(bus: Bus, name: string, extra: Partial<Parameters<typeof startLedgerReader>[0]>): Promise<{ reader: Awaited<ReturnType<typeof startLedgerReader>>; applied(): number }> {
  const self = await b.identity(ServicePrincipals.incident);
  let applied = 0;
  const reader = await startLedgerReader({
    bus,
    provider: b.provider,
    identity: self,
    directory,
    receiver: new SealedReceiver({ provider: b.provider, self, directory, staleAfterMs: 3_600_000 }),
    ledgerPublicKey: genesis.ed25519.publicKey,
    reader: name,
    mode: 'full',
    onEvent: () => void (applied += 1),
    raise: async () => undefined,
    rejections: quiet(self.id),
    syncIntervalMs: 0,
    ...extra,
  });
  return { reader, applied: () => applied };
}

/**
 * A fresh verified reader (full mode, from seq 0, the genesis key alone) fed the stored rows as the
 * ledger's query would serve them (`gapSource`; `forged` changes what is served), on an empty
 * stream of its own on the development server: every event comes through the gap fill.
 */
async function readStored(forged?: (e: LedgerEvent) => LedgerEvent): Promise<{ applied: number; halted: string | undefined }> {
  const all = (await rows()).map(eventOfRow).map((e) => (forged === undefined ? e : forged(e)));
  const bus = await connectBus({ url: natsUrl(), name: 'ledger-rotation-reader', namespace: uniqueNamespace('ledgerrot') });
  try {
    await ensureStreams(bus);
    const counted = await freshReader(bus, 'test/stored', {
      gapSource: {
        async *fetch(range) {
          for (const e of all) if (e.seq >= range.fromSeq && (range.toSeq === undefined || e.seq <= range.toSeq)) yield e;
        },
      },
      retryDelayMs: 50,
    });
    const { reader } = counted;
    try {
      await reader.caughtUp(20_000);
      return { applied: counted.applied(), halted: reader.halted === undefined ? undefined : `${reader.halted.code} at seq ${reader.halted.seq}: ${reader.halted.problem}` };
    } finally {
      await reader.stop();
    }
  } finally {
    await removeNamespaceStreams(bus).catch(() => undefined);
    await bus.close();
  }
}

const countWhere = async (type: string, agent: string): Promise<number> =>
  Number((await db.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).where('event_type', '=', type as EventType).where('agent_id', '=', agent).executeTakeFirstOrThrow()).n);

async function violations(kind: string): Promise<JsonObject[]> {
  const found = await db.selectFrom('events').select(['details']).where('event_type', '=', 'security.violation').execute();
  return found.map((r) => (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as JsonObject).filter((d) => d['kind'] === kind);
}

beforeAll(async () => {
  b = await startPrivateBulwark({ namespace: false });
  db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  genesis = await loadIdentity(b.store, LEDGER_PRINCIPAL);
  expect(genesis.version).toBe(1);
  keysDir = join(b.home, 'ledger-keys');
  const exported = await b.bulwark(['principal', 'export', LEDGER_PRINCIPAL, '--out', keysDir]);
  expect(exported.code, exported.stderr).toBe(0);
  directory = await b.directory();
  agentId = await b.addAgent();
  agentIdentity = await b.identity(agentId);
  agentBus = await b.connect(agentId);
  // The ledger first (the key manager's start replays it), the agent sending from then on: the
  // ledger's first rotation (due by its own 1 s interval: init's keys are older, and it is not in
  // the key book yet) comes as soon as the key manager answers.
  ledger = startLedger({ SYMBIONT_KEY_ROTATION_INTERVAL_MS: '1000' });
  await running(ledger);
  sending = startSending();
  revoker = await NatsRevoker.open({ store: b.store, provider: b.provider, url: b.url });
  km = await startKeyManager({
    bus: await b.connect(ServicePrincipals.keys, 'key-manager'),
    provider: b.provider,
    identity: await loadIdentity(b.store, ServicePrincipals.keys),
    directory: await KvDirectory.open(await b.connect(OPERATOR_USER, 'km-directory'), { provider: b.provider, rootPublicKey: b.rootPublicKey }),
    store: b.store,
    // The genesis key: the key manager's reader follows the ledger's rotations from there.
    ledgerPublicKey: genesis.ed25519.publicKey,
    admins: ['analyst.admin'],
    revoker,
    // Nothing due by the key manager's clock: the ledger's first rotation is by its own interval, the second requested.
    rotationIntervalMs: 3_600_000,
    bootTimeoutMs: 60_000,
  });
  const adminId = await b.identity('analyst.admin');
  admin = createBulwarkClient({ bus: await b.connect(adminId.id), sessions: { provider: b.provider, self: adminId, directory }, rejections: quiet(adminId.id), adminTimeoutMs: 10_000 });
}, 180_000);

/** The agent's loop: one event every 20 ms until `stop`; what failed to publish. */
function startSending(): { stop(): Promise<string[]> } {
  const agent = agentEvents();
  const failures: string[] = [];
  let on = true;
  let n = 0;
  const loop = (async () => {
    while (on) {
      await agent.send(n++).catch((e: unknown) => failures.push(String(e)));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      return failures;
    },
  };
}

afterAll(async () => {
  await sending?.stop();
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
  }
  await km?.stop();
  await revoker?.close();
  if (db !== undefined) await closeDatabase(db);
  await schema.drop();
  await b?.stop();
}, 60_000);

describe('the audit ledger rotates its own event-signing key while it runs', () => {
  it('rotates by itself and on request while an agent keeps sending: no event lost, the chain verifies from the genesis key', async () => {
    if (ledger === undefined) throw new Error('the ledger was not started');
    let failures: string[];
    try {
      // First rotation: by its own interval.
      await expect.poll(() => rotatedTo(ledger!.output()), { timeout: 30_000, interval: 100 }).toEqual([2]);
      await expect.poll(() => directory.lookup(LEDGER_PRINCIPAL)?.keyVersion, { timeout: 10_000 }).toBe(2);
      // Second: an administrator asks the key manager (`bulwark keys rotate svc.audit-ledger`).
      const asked = await b.bulwark(['keys', 'rotate', LEDGER_PRINCIPAL, '--as', 'analyst.admin', '--nats', b.url]);
      expect(asked.code, asked.stderr).toBe(0);
      await expect.poll(() => rotatedTo(ledger!.output()), { timeout: 30_000, interval: 100 }).toEqual([2, 3]);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      failures = (await sending?.stop()) ?? ['not sending'];
    }
    expect(failures).toEqual([]);
    expect(ledger.proc.exitCode, ledger.output()).toBeNull();

    // Every event the agent sent is in the ledger once. A message in flight while the ledger's
    // connection moved to its new NATS user is redelivered after the ack wait (5 s here): late, not lost.
    const t0 = Date.now();
    const arrived = async (): Promise<string[]> => {
      const have = new Set((await db.selectFrom('events').select(['event_id']).where('agent_id', '=', agentId).execute()).map((r) => r.event_id));
      return sent.filter((id) => !have.has(id));
    };
    await expect.poll(arrived, { timeout: 30_000, interval: 200 }).toEqual([]);
    const catchUpMs = Date.now() - t0;
    const stored = await db.selectFrom('events').select(['event_id']).where('agent_id', '=', agentId).where('event_type', '=', 'message.sent').execute();
    expect(new Set(stored.map((r) => r.event_id))).toEqual(new Set(sent));
    expect(stored.length).toBe(sent.length);

    const rotations = await ledgerRotations();
    process.stdout.write(`${JSON.stringify({ figure: 'ledger_rotation', sent: sent.length, rotations: rotations.map((r) => ({ seq: r.seq, version: r.version })), catchUpMs })}\n`);
    expect(rotations.map((r) => r.version)).toEqual([2, 3]);
    const [r2, r3] = rotations as [(typeof rotations)[0], (typeof rotations)[0]];
    // Each event signed by the key in force at its seq: genesis up to the first rotation (itself included), then each new key.
    const all = await rows();
    const keyAt = (seq: number): Uint8Array => (seq > r3.seq ? r3.ed25519 : seq > r2.seq ? r2.ed25519 : genesis.ed25519.publicKey);
    for (const row of all) expect(b.provider.ed25519.verify(keyAt(Number(row.seq)), new Uint8Array(row.event_hash), new Uint8Array(row.signature)), `seq ${row.seq}`).toBe(true);
    const after = all.filter((r) => Number(r.seq) > r3.seq);
    expect(after.length).toBeGreaterThan(0);
    for (const row of after) expect(b.provider.ed25519.verify(genesis.ed25519.publicKey, new Uint8Array(row.event_hash), new Uint8Array(row.signature))).toBe(false);
    // The agent's events went on across both rotations.
    expect(all.filter((r) => r.agent_id === agentId && Number(r.seq) > r2.seq && Number(r.seq) < r3.seq).length).toBeGreaterThan(0);

    // From the genesis key alone: the whole verify and a fresh verified reader from seq 0.
    const genesisKey = verifierKey(b.provider, ORIGIN, genesis.ed25519.publicKey);
    const report = await verifyLedger(db, { crypto: b.provider, origin: ORIGIN, logKey: genesisKey });
    expect(report, JSON.stringify(report)).toMatchObject({ ok: true, size: all.length });
    expect(await readStored()).toEqual({ applied: all.length, halted: undefined });

    // Checkpoints past a rotation are signed by the key in force at their size.
    const checkpoints = await db.selectFrom('checkpoints').selectAll().orderBy('tree_size').execute();
    const late = checkpoints.filter((c) => Number(c.tree_size) > r3.seq);
    expect(late.length, 'a checkpoint after the second rotation').toBeGreaterThan(0);
    for (const c of late) {
      expect(() => openCheckpoint(b.provider, c.note, { origin: ORIGIN, logKey: verifierKey(b.provider, ORIGIN, r3.ed25519) })).not.toThrow();
      expect(() => openCheckpoint(b.provider, c.note, { origin: ORIGIN, logKey: genesisKey })).toThrow(/not signed by the log key|no signature from a known key/);
    }
  }, 120_000);

  it('a fresh reader of the re-published stream verifies across the rotations with the genesis key, also once the old versions are revoked', async () => {
    // The ledger's versions 1 and 2 are verify-only in the key book; revoking version 1 changes nothing for the chain's past.
    const view = await admin.keys.get(LEDGER_PRINCIPAL);
    expect(view.versions.map((v) => [v.version, v.state])).toEqual([[1, 'verify_only'], [2, 'verify_only'], [3, 'active']]);
    await admin.keys.revoke(LEDGER_PRINCIPAL, 'superseded', 1);
    const size = (await rows()).length;
    const bus = await b.connect(ServicePrincipals.incident, 'fresh-reader');
    const { reader, applied } = await freshReader(bus, 'test/fresh', { durablePrefix: 'incidents' });
    try {
      await expect.poll(() => (reader.halted === undefined ? applied() >= size : `halted: ${reader.halted.code} ${reader.halted.problem}`), { timeout: 30_000, interval: 200 }).toBe(true);
    } finally {
      await reader.stop();
    }
    const report = await verifyLedger(db, { crypto: b.provider, origin: ORIGIN, logKey: verifierKey(b.provider, ORIGIN, genesis.ed25519.publicKey) });
    expect(report.ok, JSON.stringify(report)).toBe(true);
  }, 60_000);

  it('attack: an event signed with the old key placed after the rotation is refused by a reader and by verifyLedger', async () => {
    const [, r3] = (await ledgerRotations()) as [unknown, { seq: number }];
    const victim = (await rows()).find((r) => Number(r.seq) > r3.seq + 1 && r.agent_id === agentId)!;
    const seq = Number(victim.seq);
    // The attacker holds the ledger's version-1 secret key (init's store): a valid signature, under the wrong key for this seq.
    const forgedSignature = b.provider.ed25519.sign(genesis.ed25519.secretKey, new Uint8Array(victim.event_hash));
    const stream = await readStored((e) => (e.seq === seq ? { ...e, signature: forgedSignature } : e));
    expect(stream.halted).toMatch(new RegExp(`at seq ${seq}`));
    expect(stream.applied).toBe(seq);
    await db.updateTable('events').set({ signature: forgedSignature }).where('seq', '=', BigInt(seq)).execute();
    try {
      const report = await verifyLedger(db, { crypto: b.provider, origin: ORIGIN, logKey: verifierKey(b.provider, ORIGIN, genesis.ed25519.publicKey) });
      expect(report).toMatchObject({ ok: false, seq });
    } finally {
      await db.updateTable('events').set({ signature: new Uint8Array(victim.signature) }).where('seq', '=', BigInt(seq)).execute();
    }
  }, 30_000);

  it('attack: a key-manager rotation of the ledger to a key it does not hold is not appended, is recorded, and the ledger keeps appending under its key', async () => {
    const kmIdentity = await loadIdentity(b.store, ServicePrincipals.keys);
    const kmBus = await b.connect(ServicePrincipals.keys, 'forger');
    const asKm = createEventPublisher(kmBus, new SealedSender({ provider: b.provider, self: kmIdentity, directory, recipientId: LEDGER_PRINCIPAL }));
    const stranger = b.provider.ed25519.generateKeyPair();
    const fact = (version: number) =>
      newEvent({
        agentId: LEDGER_PRINCIPAL,
        eventType: 'keys.rotated',
        details: {
          principal: LEDGER_PRINCIPAL,
          by: LEDGER_PRINCIPAL,
          version,
          ed25519: Buffer.from(stranger.publicKey).toString('base64'),
          x25519: Buffer.from(b.provider.x25519.generateKeyPair().publicKey).toString('base64'),
          at: Date.now(),
          trigger: 'on_demand',
          natsUser: null,
        },
      });
    const notHeld = fact(4);
    const notNext = fact(9);
    await asKm.publish({ subject: Events.keys.rotated, eventId: notHeld.eventId, payload: encodeEvent(notHeld) });
    await asKm.publish({ subject: Events.keys.rotated, eventId: notNext.eventId, payload: encodeEvent(notNext) });
    const agent = agentEvents();
    for (let i = 0; i < 5; i++) await agent.send(10_000 + i);
    await expect.poll(async () => (await violations('ledger.rotation_key_not_held')).map((v) => v['claimed_event_id']), { timeout: 20_000, interval: 200 }).toEqual([notHeld.eventId]);
    await expect.poll(async () => (await violations('ledger.rotation_version_not_next')).map((v) => v['claimed_event_id']), { timeout: 20_000, interval: 200 }).toEqual([notNext.eventId]);
    expect((await violations('ledger.rotation_key_not_held'))[0]).toMatchObject({ producer: ServicePrincipals.keys, claimed_version: 4 });
    await expect.poll(() => countWhere('message.sent', agentId), { timeout: 20_000, interval: 200 }).toBe(sent.length);
    const stored = await db.selectFrom('events').select(['event_id']).where('event_id', 'in', [notHeld.eventId, notNext.eventId]).execute();
    expect(stored).toEqual([]);
    // Still under version 3's key, and the chain verifies.
    const [, r3] = (await ledgerRotations()) as [unknown, { seq: number; ed25519: Uint8Array }];
    expect(await ledgerRotations()).toHaveLength(2);
    const last = (await rows()).at(-1)!;
    expect(b.provider.ed25519.verify(r3.ed25519, new Uint8Array(last.event_hash), new Uint8Array(last.signature))).toBe(true);
    const report = await verifyLedger(db, { crypto: b.provider, origin: ORIGIN, logKey: verifierKey(b.provider, ORIGIN, genesis.ed25519.publicKey) });
    expect(report.ok, JSON.stringify(report)).toBe(true);
    await kmBus.close();
  }, 60_000);

  it('attack: a rotation of the ledger from any producer but svc.key-manager is refused', async () => {
    const ownKey = b.provider.ed25519.generateKeyPair();
    const forged = newEvent({
      agentId: LEDGER_PRINCIPAL,
      eventType: 'keys.rotated',
      details: { principal: LEDGER_PRINCIPAL, by: agentId, version: 4, ed25519: Buffer.from(ownKey.publicKey).toString('base64'), x25519: Buffer.from(b.provider.x25519.generateKeyPair().publicKey).toString('base64'), at: Date.now(), trigger: 'on_demand', natsUser: null },
    });
    const events = createEventPublisher(agentBus, new SealedSender({ provider: b.provider, self: agentIdentity, directory, recipientId: LEDGER_PRINCIPAL }));
    await events.publish({ subject: `bulwark.evt.agent.${agentId.slice('agent.'.length)}.keys` as never, eventId: forged.eventId, payload: encodeEvent(forged) });
    await expect.poll(async () => (await violations('ledger.forbidden_producer')).filter((v) => v['claimed_event_id'] === forged.eventId).map((v) => v['producer']), { timeout: 20_000, interval: 200 }).toEqual([agentId]);
    expect(await db.selectFrom('events').select(['seq']).where('event_id', '=', forged.eventId).execute()).toEqual([]);
    expect(await ledgerRotations()).toHaveLength(2);
  }, 30_000);

  it('restarted, it starts on its new key (its store holds it) and keeps the chain', async () => {
    await stopLedger(ledger!);
    const [, r3] = (await ledgerRotations()) as [unknown, { seq: number; ed25519: Uint8Array }];
    const before = (await rows()).length;
    // Its own interval is long now: it must not rotate again at start.
    ledger = startLedger({});
    await running(ledger);
    const agent = agentEvents();
    for (let i = 0; i < 5; i++) await agent.send(20_000 + i);
    await expect.poll(() => countWhere('message.sent', agentId), { timeout: 20_000, interval: 200 }).toBe(sent.length);
    // Stopped first: a checkpoint announcement committed meanwhile would make the counts below race.
    await stopLedger(ledger);
    const all = await rows();
    expect(all.length).toBeGreaterThan(before);
    for (const row of all.slice(before)) expect(b.provider.ed25519.verify(r3.ed25519, new Uint8Array(row.event_hash), new Uint8Array(row.signature)), `seq ${row.seq}`).toBe(true);
    expect(rotatedTo(ledger.output())).toEqual([]);
    const report = await verifyLedger(db, { crypto: b.provider, origin: ORIGIN, logKey: verifierKey(b.provider, ORIGIN, genesis.ed25519.publicKey) });
    expect(report, JSON.stringify(report)).toMatchObject({ ok: true, size: all.length });
    expect(await readStored()).toEqual({ applied: all.length, halted: undefined });
  }, 90_000);
});
