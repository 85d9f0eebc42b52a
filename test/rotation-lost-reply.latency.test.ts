// The reply to a service's `keys.rotate` is lost after the key manager committed the rotation
// (issue 12): `bulwark init`, nats-server in operator mode, PostgreSQL and the real ledger, the key
// manager in this process with a rotation interval of ROTATE_MS, and the real `bulwark-policy` main
// as a child process that reaches NATS through a relay (nats-reply-dropper.ts) which swallows the
// one reply to its first `keys.rotate`. The key manager commits version 2 and publishes its entry;
// the service never hears. It had staged the new keys in its key store's pending slot before the
// call, so when the call times out it settles with the key manager (the directory serves version 2
// with exactly the staged keys): adopts them, asks `keys.renew` for its new NATS user's JWT, stores
// the version and switches, with no restart, while an agent keeps asking it for decisions.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService } from '@bulwark/audit-ledger';
import { KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { NatsRevoker, startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { FileKeyStore, loadIdentity, pendingRotationSlot, SoftwareKek } from '@bulwark/keystore';
import { loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';
import { startReplyDropper, type ReplyDropper } from './nats-reply-dropper.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const ROTATE_MS = 5000;
const SERVICE = ServicePrincipals.policy;

let b: PrivateBulwark;
let operator: NatsConnection;
let ledger: LedgerService | undefined;
let db: Kysely<LedgerDatabase> | undefined;
let km: KeyManager | undefined;
let revoker: NatsRevoker | undefined;
let directory: KvDirectory;
let admin: BulwarkClient;
let agent: BulwarkClient;
let keysDir: string;
let relay: ReplyDropper | undefined;
let crashRelay: ReplyDropper | undefined;
let policy: ChildProcess | undefined;
let output = '';
const schema = withTestSchema('rotation_lost_reply');
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

/** The real policy main on its own key directory, reaching NATS at `url`, with `extra` environment; its output goes to `output`. */
function startPolicy(url: string, extra: Record<string, string>): ChildProcess {
  const env = {
    PATH: process.env['PATH'] ?? '',
    ...b.env,
    NATS_URL: url,
    SYMBIONT_KEY_DIR: keysDir,
    SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('base64'),
    SYMBIONT_LOG_LEVEL: 'info',
    SYMBIONT_POLICY_ADMINS: 'analyst.admin',
    ...extra,
  };
  output = '';
  const proc = spawn(process.execPath, [join(repoRoot, 'services/policy/dist/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
  policy = proc;
  return proc;
}

async function serving(proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await operator.request('$SRV.PING.bulwark-policy', '', { timeout: 500 });
      return;
    } catch {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`bulwark-policy (exit ${proc.exitCode}, pid ${proc.pid}) does not answer: ${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function stopPolicy(signal: NodeJS.Signals): Promise<void> {
  const proc = policy;
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  await exited;
}

const rotatedTo = (text: string): number[] => [...text.matchAll(/identity rotated to version (\d+)/g)].map((m) => Number(m[1]));

async function once(): Promise<string | undefined> {
  const decision = await agent.policy.evaluate({ action: 'read', resource: 'vault' });
  if ('failure' in decision && typeof decision.failure === 'string') return `${decision.failure}: ${decision.reason}`;
  return decision.decision === 'Allow' ? undefined : `${decision.decision}: ${JSON.stringify(decision)}`;
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
  const agentId = await b.addAgent();
  agent = createBulwarkClient({ bus: await b.connect(agentId), sessions: { provider: b.provider, self: await b.identity(agentId), directory }, rejections: quiet(agentId), decisionTimeoutMs: 2000 });
  keysDir = join(b.home, 'policy-keys');
  const exported = await b.bulwark(['principal', 'export', SERVICE, '--out', keysDir]);
  expect(exported.code, exported.stderr).toBe(0);
  // The service's one lost reply: the first `keys.rotate` it sends to a key manager instance.
  relay = await startReplyDropper(b.url, /^bulwark\.direct\.[^.]+\.keys\.rotate$/);
}, 120_000);

afterAll(async () => {
  await stopPolicy('SIGTERM');
  await relay?.close();
  await crashRelay?.close();
  await operator?.close();
  await km?.stop();
  await revoker?.close();
  await ledger?.stop();
  if (db !== undefined) await closeDatabase(db);
  await schema.drop();
  await b?.stop();
}, 30_000);

describe("a service whose keys.rotate reply is lost after the key manager committed", () => {
  it('settles with the key manager and adopts the committed version: it keeps answering under it, never restarted', async () => {
    const proc = startPolicy(relay!.url, { SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    const pid = proc.pid;
    await serving(proc);
    await admin.policyAdmin.register('policy vault {\n    allow: read(vault)\n}\n', 'vault.policy');

    // Decisions every 100 ms until the service rotated past the lost reply (version 2) and once more;
    // every fifth on a fresh session: a handshake is made to the key the directory serves, which
    // the service opens only if it holds it.
    let answered = 0;
    let n = 0;
    const lost: string[] = [];
    const until = Date.now() + 45_000;
    while (rotatedTo(output).length < 2 && Date.now() < until && proc.exitCode === null) {
      if (++n % 5 === 0) agent.reset();
      const failure = await once();
      if (failure === undefined) answered++;
      else lost.push(failure);
      await new Promise((r) => setTimeout(r, 100));
    }
    const versions = rotatedTo(output);
    process.stdout.write(`${JSON.stringify({ figure: 'rotation_lost_reply', dropped: relay!.dropped.length, versions, answered, lost: lost.length, why: lost.slice(0, 5) })}\n`);
    // The reply was lost, and the key manager had committed version 2 all the same.
    expect(relay!.dropped).toEqual([expect.stringMatching(/\.keys\.rotate$/)]);
    expect((await admin.keys.get(SERVICE)).versions.length).toBeGreaterThanOrEqual(2);
    // The service settled: it adopted version 2, with no restart, and went on rotating.
    expect(output).toMatch(/key rotation to version 2 settled with the key manager: adopt/);
    expect(versions.slice(0, 2), output).toEqual([2, 3]);
    expect(proc.exitCode).toBeNull();
    expect(proc.pid).toBe(pid);
    expect(lost, output).toEqual([]);
    // It answers under the version the key manager holds active; what a restart loads is that one.
    const active = (await admin.keys.get(SERVICE)).activeVersion!;
    await expect.poll(() => directory.lookup(SERVICE)?.keyVersion, { timeout: 5000 }).toBe(active);
    expect(await once()).toBeUndefined();
    const store = await FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(b.provider, new Uint8Array(Buffer.from(b.env['SYMBIONT_KEK']!, 'base64')), 'SYMBIONT_KEK'), provider: b.provider });
    await expect.poll(async () => (await loadIdentity(store, SERVICE)).version, { timeout: 10_000 }).toBeGreaterThanOrEqual(versions.at(-1)!);
    // Nothing left staged once stored (a rotation in progress may have staged the next one).
    const staged = await pendingRotationSlot(store, SERVICE).load();
    expect(staged === undefined || staged.version > versions.at(-1)!).toBe(true);
  }, 90_000);

  it('settles at the next start a rotation the key manager committed when the process died before it stored the keys', async () => {
    await stopPolicy('SIGTERM');
    const store = await FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(b.provider, new Uint8Array(Buffer.from(b.env['SYMBIONT_KEK']!, 'base64')), 'SYMBIONT_KEK'), provider: b.provider });
    const before = (await loadIdentity(store, SERVICE)).version;
    // Its next rotation's reply is lost, and the process is killed while it waits for it.
    crashRelay = await startReplyDropper(b.url, /^bulwark\.direct\.[^.]+\.keys\.rotate$/);
    startPolicy(crashRelay.url, { SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    await expect.poll(() => crashRelay!.dropped.length, { timeout: 30_000, interval: 20 }).toBe(1);
    await stopPolicy('SIGKILL');
    const committed = (await admin.keys.get(SERVICE)).activeVersion!;
    expect(committed).toBe(before + 1);
    expect((await loadIdentity(store, SERVICE)).version).toBe(before);
    expect((await pendingRotationSlot(store, SERVICE).load())?.version).toBe(committed);
    // Started again (not due for 90 days: no new rotation), straight to NATS.
    const proc = startPolicy(b.url, {});
    await serving(proc);
    await expect.poll(() => rotatedTo(output), { timeout: 20_000 }).toEqual([committed]);
    expect(output).toMatch(new RegExp(`key rotation to version ${committed} settled with the key manager: adopt`));
    let answered = 0;
    const lost: string[] = [];
    for (let i = 0; i < 10; i++) {
      agent.reset();
      const failure = await once();
      if (failure === undefined) answered++;
      else lost.push(failure);
    }
    process.stdout.write(`${JSON.stringify({ figure: 'rotation_crash_settled_at_start', before, committed, answered, lost: lost.length, why: lost.slice(0, 3) })}\n`);
    expect(lost, output).toEqual([]);
    await expect.poll(async () => (await loadIdentity(store, SERVICE)).version, { timeout: 5000 }).toBe(committed);
    expect(await pendingRotationSlot(store, SERVICE).load()).toBeUndefined();
  }, 90_000);
});
