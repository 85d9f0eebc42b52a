// An agent rotates its own identity on the interval while it keeps working (issue 12, "Rotation"):
// `bulwark init`, nats-server in operator mode with exactly its configuration, PostgreSQL and the
// real ledger, the key manager in this process with a rotation interval of ROTATE_MS, and the real
// `bulwark-policy` main as a child process. The agent (@bulwark/client: `startKeyRotation`) is
// invited and enrolled, then never asked to rotate: it learns from `keys.get` that its key is due and rotates by itself,
// again and again, storing every new version through its `keep` callback, while it asks the policy
// service for a decision every 100 ms over the one bus it moves to each new NATS user.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService } from '@bulwark/audit-ledger';
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals, type Bus } from '@bulwark/bus';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, startKeyRotation, type BulwarkClient, type KeyRotation } from '@bulwark/client';
import { NatsRevoker, startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { generateKey, loadIdentity, pendingRotationSlot } from '@bulwark/keystore';
import { encodeNkeySeed, inboxPrefixFor, loadNatsCredentials, nkeyPair, OPERATOR_USER, storeNatsUser } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const ROTATE_MS = 4000;

let b: PrivateBulwark;
let operator: NatsConnection;
let ledger: LedgerService | undefined;
let db: Kysely<LedgerDatabase> | undefined;
let km: KeyManager | undefined;
let revoker: NatsRevoker | undefined;
let directory: KvDirectory;
let admin: BulwarkClient;
let policy: ChildProcess | undefined;
let policyOutput = '';
let agentBus: Bus | undefined;
let rotation: KeyRotation | undefined;
const schema = withTestSchema('agent_rotation');
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

async function decisionsOf(id: string): Promise<number> {
  const row = await db!.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).where('agent_id', '=', id).where('event_type', '=', 'policy.decision').executeTakeFirstOrThrow();
  return Number(row.n);
}

beforeAll(async () => {
  b = await startPrivateBulwark({ namespace: false });
  const creds = (await loadNatsCredentials(b.store, OPERATOR_USER))!;
  operator = await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 });
  db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  ledger = await startLedgerOn(b, db, { schema: schema.name, checkpointMs: 0, controlTo: [ServicePrincipals.keys, ServicePrincipals.policy] });
  revoker = await NatsRevoker.open({ store: b.store, provider: b.provider, url: b.url });
  km = await startKeyManager({
    bus: await b.connect(ServicePrincipals.keys, 'key-manager'),
    provider: b.provider,
    identity: await loadIdentity(b.store, ServicePrincipals.keys),
    directory: await KvDirectory.open(await b.connect(OPERATOR_USER, 'km-directory'), { provider: b.provider, rootPublicKey: b.rootPublicKey }),
    store: b.store,
    ledgerPublicKey: (await loadIdentity(b.store, LEDGER_PRINCIPAL)).ed25519.publicKey,
    admins: ['analyst.admin'],
    revoker,
    rotationIntervalMs: ROTATE_MS,
  });
  directory = await b.directory();
  const adminId = await b.identity('analyst.admin');
  admin = createBulwarkClient({ bus: await b.connect(adminId.id), sessions: { provider: b.provider, self: adminId, directory }, rejections: quiet(adminId.id), adminTimeoutMs: 10_000 });
  // The real policy main (it does not rotate here: the default 90 days).
  const env = { PATH: process.env['PATH'] ?? '', ...b.env, NATS_URL: b.url, SYMBIONT_KEY_DIR: b.keysDir, SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('base64'), SYMBIONT_LOG_LEVEL: 'info', SYMBIONT_POLICY_ADMINS: 'analyst.admin' };
  policy = spawn(process.execPath, [join(repoRoot, 'services/policy/dist/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  policy.stdout!.on('data', (d: Buffer) => void (policyOutput += d.toString()));
  policy.stderr!.on('data', (d: Buffer) => void (policyOutput += d.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await operator.request('$SRV.PING.bulwark-policy', '', { timeout: 500 });
      break;
    } catch {
      if (Date.now() > deadline || policy.exitCode !== null) throw new Error(`bulwark-policy does not answer: ${policyOutput}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await admin.policyAdmin.register('policy vault {\n    allow: read(vault)\n}\n', 'vault.policy');
}, 120_000);

afterAll(async () => {
  rotation?.stop();
  if (policy !== undefined && policy.exitCode === null && policy.signalCode === null) {
    const exited = new Promise((r) => policy!.once('exit', r));
    policy.kill('SIGTERM');
    await exited;
  }
  await agentBus?.close();
  await operator?.close();
  await km?.stop();
  await revoker?.close();
  await ledger?.stop();
  if (db !== undefined) await closeDatabase(db);
  await schema.drop();
  await b?.stop();
}, 30_000);

describe('an agent rotates its own identity on the interval while it works', () => {
  it('rotates by itself (at least twice) while it keeps asking the policy service: no call lost, each version kept, the new version active and the old ones verify_only', async () => {
    // Invited by the administrator and enrolled where it runs (its keys and NATS user made here).
    const agentId = `agent.${crypto.randomUUID()}`;
    const bundle = parseJoinBundle((await admin.keys.invite(agentId, { ttlMs: 60_000 })).join);
    const inboxPrefix = inboxPrefixFor({ kind: 'principal', id: agentId });
    const boot = await connectBus({ url: b.url, name: `${agentId}#boot`, namespace: b.namespace, credentials: { jwt: bundle.natsJwt!, seed: bundle.natsSeed! }, inboxPrefix });
    const raw = generateKey(b.provider, 'nats-user');
    const pair = nkeyPair('nats-user', raw);
    const enrolled = await enrollWithJoinBundle({ bus: boot, provider: b.provider, directory, bundle, natsUser: pair.getPublicKey() });
    pair.clear();
    await boot.close();
    const identity = { ...enrolled.identity, created: new Date().toISOString() };
    const credentials = { jwt: enrolled.certified.natsJwt!, seed: encodeNkeySeed('nats-user', raw) };
    const bus = await connectBus({ url: b.url, name: agentId, namespace: b.namespace, credentials, inboxPrefix });
    agentBus = bus;
    const agent = createBulwarkClient({ bus, sessions: { provider: b.provider, self: identity, directory }, rejections: quiet(agentId), decisionTimeoutMs: 2000 });
    const kept: number[] = [];
    const switched: number[] = [];
    let lastJwt = '';
    rotation = startKeyRotation({
      bus,
      identity,
      directory,
      crypto: b.provider,
      credentials,
      intervalMs: ROTATE_MS,
      // New keys staged in its key store's pending slot before each keys.rotate (a lost reply is settled).
      staging: pendingRotationSlot(b.store, agentId),
      // The agent's own key store: what a restart would load.
      keep: async (r) => {
        await b.store.put({ principal: agentId, kind: 'ed25519', version: r.version }, r.ed25519.secretKey);
        await b.store.put({ principal: agentId, kind: 'x25519', version: r.version }, r.x25519.secretKey);
        await storeNatsUser(b.store, agentId, r.version, r.nats!.rawSeed, r.nats!.jwt);
        kept.push(r.version);
        lastJwt = r.nats!.jwt;
      },
      onSwitched: (r) => {
        agent.reset();
        switched.push(r.version);
      },
      onError: (e) => process.stdout.write(`rotation check failed: ${String(e)}\n`),
    });

    const once = async (): Promise<string | undefined> => {
      const d = await agent.policy.evaluate({ action: 'read', resource: 'vault' });
      if ('failure' in d && typeof d.failure === 'string') return `${d.failure}: ${d.reason}`;
      return d.decision === 'Allow' ? undefined : `${d.decision}: ${JSON.stringify(d)}`;
    };
    // No retry here: the bus client retries no responders within the call's timeout, and the
    // agent's own switch holds its requests until its connection is back (libs/bus).
    let answered = 0;
    let slowestMs = 0;
    const lost: string[] = [];
    const until = Date.now() + 2 * ROTATE_MS + 4000;
    while (Date.now() < until || switched.length < 2) {
      if (Date.now() > until + 20_000) break;
      const started = performance.now();
      const failure = await once();
      slowestMs = Math.max(slowestMs, Math.round(performance.now() - started));
      if (failure === undefined) answered++;
      else lost.push(failure);
      await new Promise((r) => setTimeout(r, 100));
    }
    process.stdout.write(`${JSON.stringify({ figure: 'agent_rotation', rotations: rotation.rotations, versions: switched, answered, lost: lost.length, slowestMs, why: lost })}\n`);
    expect(switched.length, policyOutput).toBeGreaterThanOrEqual(2);
    expect(kept).toEqual(switched);
    expect(lost, policyOutput).toEqual([]);
    // Its peers keep its session under the old key while the superseded grace lasts: no call waits for a timeout and a retry (2 s before).
    expect(slowestMs).toBeLessThan(1000);
    rotation.stop();
    const latest = switched.at(-1)!;
    expect(identity.version).toBe(latest);
    const view = await admin.keys.get(agentId);
    expect(view.activeVersion).toBe(latest);
    // The versions it rotated away (from the one it enrolled with; the join bundle's bootstrap version below was revoked at enrolment).
    const older = view.versions.filter((x) => x.version >= enrolled.identity.version && x.version < latest);
    expect(older.length).toBeGreaterThanOrEqual(2);
    for (const v of older) expect(v.state).toBe('verify_only');
    await expect.poll(() => directory.lookup(agentId)?.keyVersion, { timeout: 5000 }).toBe(latest);
    // What a restart loads is the latest version and its NATS user.
    expect((await loadIdentity(b.store, agentId)).version).toBe(latest);
    expect((await loadNatsCredentials(b.store, { kind: 'principal', id: agentId }))!.jwt).toBe(lastJwt);
    // Every decision answered reached the ledger, across the switches.
    await expect.poll(() => decisionsOf(agentId), { timeout: 10_000 }).toBe(answered);
  }, 90_000);
});
