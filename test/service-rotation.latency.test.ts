// A service rotates its own identity while it keeps serving (issue 12, "Rotation"): `bulwark init`
// (root namespace), nats-server in operator mode with exactly its configuration, PostgreSQL and the
// real ledger (control batches sealed to the key manager and the policy service), the key manager
// in this process with a rotation interval of ROTATE_MS, and the real `bulwark-policy` main as a
// child process told the same interval (SYMBIONT_KEY_ROTATION_INTERVAL_MS). Nobody asks it to
// rotate: it learns from `keys.get` that its key is due and rotates by itself, again and again,
// while an agent asks it for decisions every 100 ms. Then it is restarted and must come back under
// its latest version (replaying the ledger's control batches sealed to its older keys); and the
// attack: frames under its old version, once revoked, are refused.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService } from '@bulwark/audit-ledger';
import { KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals, type Bus } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { NatsRevoker, startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { FileKeyStore, loadIdentity, SoftwareKek } from '@bulwark/keystore';
import { loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const ROTATE_MS = 5000;
const OVERDUE_GRACE_MS = 2000;
const SERVICE = ServicePrincipals.policy;

let b: PrivateBulwark;
let operator: NatsConnection;
let ledger: LedgerService | undefined;
let db: Kysely<LedgerDatabase> | undefined;
let km: KeyManager | undefined;
let revoker: NatsRevoker | undefined;
let directory: KvDirectory;
let admin: BulwarkClient;
let agentId: string;
let agent: BulwarkClient;
let keysDir: string;
const schema = withTestSchema('svc_rotation');
const children: ChildProcess[] = [];
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

interface Main {
  readonly proc: ChildProcess;
  output(): string;
}

/** The real policy main on its own key directory (`keysDir`), with `extra` environment. */
function startPolicy(extra: Record<string, string>): Main {
  const env = {
    PATH: process.env['PATH'] ?? '',
    ...b.env,
    NATS_URL: b.url,
    SYMBIONT_KEY_DIR: keysDir,
    SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('base64'),
    SYMBIONT_LOG_LEVEL: 'info',
    SYMBIONT_POLICY_ADMINS: 'analyst.admin',
    ...extra,
  };
  const proc = spawn(process.execPath, [join(repoRoot, 'services/policy/dist/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
  return { proc, output: () => output };
}

async function stop(m: Main): Promise<void> {
  if (m.proc.exitCode !== null || m.proc.signalCode !== null) return;
  const exited = new Promise((r) => m.proc.once('exit', r));
  m.proc.kill('SIGTERM');
  await exited;
}

const answers = async (): Promise<boolean> => {
  try {
    await operator.request('$SRV.PING.bulwark-policy', '', { timeout: 500 });
    return true;
  } catch {
    return false;
  }
};

async function serving(m: Main): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await answers())) {
    if (Date.now() > deadline) throw new Error(`bulwark-policy does not answer: ${m.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const rotatedTo = (output: string): number[] => [...output.matchAll(/identity rotated to version (\d+)/g)].map((m) => Number(m[1]));

/** The service's decision, or why there was none (the client turns a failure into a deny carrying `failure`). */
async function once(): Promise<string | undefined> {
  const decision = await agent.policy.evaluate({ action: 'read', resource: 'vault' });
  if ('failure' in decision && typeof decision.failure === 'string') return `${decision.failure}: ${decision.reason}`;
  // The policy registered below allows it: an Allow also shows the policy state was rebuilt from the ledger.
  return decision.decision === 'Allow' ? undefined : `${decision.decision}: ${JSON.stringify(decision)}`;
}

/**
 * One decision, retried once 200 ms later if the first try got none (counted by the caller): the
 * service's one reconnect to its new NATS user leaves its subscriptions away for a moment.
 */
async function decide(): Promise<'answered' | 'retried' | string> {
  if ((await once()) === undefined) return 'answered';
  await new Promise((r) => setTimeout(r, 200));
  return (await once()) ?? 'retried';
}

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
    rotationOverdueGraceMs: OVERDUE_GRACE_MS,
  });
  directory = await b.directory();
  const adminId = await b.identity('analyst.admin');
  admin = createBulwarkClient({ bus: await b.connect(adminId.id), sessions: { provider: b.provider, self: adminId, directory }, rejections: quiet(adminId.id), adminTimeoutMs: 10_000 });
  agentId = await b.addAgent();
  const agentIdentity = await b.identity(agentId);
  agent = createBulwarkClient({ bus: await b.connect(agentId), sessions: { provider: b.provider, self: agentIdentity, directory }, rejections: quiet(agentId), decisionTimeoutMs: 2000 });
  // The policy service's own keys only (`bulwark principal export`): where it stores its new versions.
  keysDir = join(b.home, 'policy-keys');
  const exported = await b.bulwark(['principal', 'export', SERVICE, '--out', keysDir]);
  expect(exported.code, exported.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
  }
  await operator?.close();
  await km?.stop();
  await revoker?.close();
  await ledger?.stop();
  if (db !== undefined) await closeDatabase(db);
  await schema.drop();
  await b?.stop();
}, 30_000);

describe("a service rotates its own identity on the interval while it serves", () => {
  let latest = 0;

  it('rotates by itself (twice) while an agent keeps asking it: no call lost, the new version active in the key manager and the directory, the process never restarted', async () => {
    const policy = startPolicy({ SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    await serving(policy);
    // A control batch the ledger seals to the version the service has now: a restart under a
    // later version must still open it (its earlier keys, previousX25519) to rebuild its state.
    await admin.policyAdmin.register('policy vault {\n    allow: read(vault)\n}\n', 'vault.policy');
    const pid = policy.proc.pid;
    let answered = 0;
    let retried = 0;
    const lost: string[] = [];
    const until = Date.now() + 2 * ROTATE_MS + 4000;
    while (Date.now() < until || rotatedTo(policy.output()).length < 2) {
      if (Date.now() > until + 20_000) break;
      const outcome = await decide();
      if (outcome === 'answered') answered++;
      else if (outcome === 'retried') retried++;
      else lost.push(outcome);
      await new Promise((r) => setTimeout(r, 100));
    }
    const versions = rotatedTo(policy.output());
    process.stdout.write(`${JSON.stringify({ figure: 'service_rotation', rotations: versions.length, versions, answered, retried, lost: lost.length, why: lost })}\n`);
    expect(versions.length, policy.output()).toBeGreaterThanOrEqual(2);
    expect(lost, policy.output()).toEqual([]);
    // A retry only at a switch, at most one per rotation.
    expect(retried).toBeLessThanOrEqual(versions.length);
    expect(policy.proc.exitCode).toBeNull();
    expect(policy.proc.pid).toBe(pid);
    latest = versions.at(-1)!;
    const view = await admin.keys.get(SERVICE);
    // It may have rotated once more since the last line was read: the latest in the book is at least ours.
    expect(view.activeVersion).toBeGreaterThanOrEqual(latest);
    latest = view.activeVersion!;
    for (const v of view.versions.filter((x) => x.version < latest)) expect(v.state).toBe('verify_only');
    await expect.poll(() => directory.lookup(SERVICE)?.keyVersion, { timeout: 5000 }).toBe(latest);
    // Every decision answered (a retried one too) reached the ledger, sealed across the switches.
    await expect.poll(() => decisionsOf(agentId), { timeout: 10_000 }).toBe(answered + retried);
    await stop(policy);
    latest = (await admin.keys.get(SERVICE)).activeVersion!;
  }, 90_000);

  it('comes back after a restart under its latest version (and does not rotate before it is due)', async () => {
    expect(latest).toBeGreaterThanOrEqual(3);
    const policy = startPolicy({});
    await serving(policy);
    expect(await decide()).toMatch(/^(answered|retried)$/);
    expect(await decide()).toBe('answered');
    expect(policy.output()).toMatch(/"policies":1[^\n]*policy state rebuilt from the ledger/);
    expect(policy.output()).toMatch(new RegExp(`"version":${latest}[^\\n]*key rotation: checked against the key manager`));
    expect(rotatedTo(policy.output())).toEqual([]);
    const store = await FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(b.provider, new Uint8Array(Buffer.from(b.env['SYMBIONT_KEK']!, 'base64')), 'SYMBIONT_KEK'), provider: b.provider });
    expect((await loadIdentity(store, SERVICE)).version).toBe(latest);
    expect(directory.lookup(SERVICE)?.keyVersion).toBe(latest);
    await stop(policy);
  }, 60_000);

  it('refuses frames under its old version once revoked', async () => {
    // Someone holding version 1's keys (init's store), over a NATS user that may call the key manager.
    const bus: Bus = await b.connect('analyst.admin', 'old-version');
    const view = await admin.keys.revoke(SERVICE, 'superseded', 1);
    expect(view.versions.find((v) => v.version === 1)?.state).toBe('revoked');
    const oldIdentity = await loadIdentity(b.store, SERVICE, 1);
    const thief = createBulwarkClient({ bus, sessions: { provider: b.provider, self: oldIdentity, directory }, rejections: quiet(SERVICE), adminTimeoutMs: 2000 });
    await expect(thief.keys.get(SERVICE)).rejects.toThrow();
    // And version 1's NATS user (init's, recorded at the adoption by the proof of its nkey) is refused by the server.
    await expect(b.connect(SERVICE, 'old-user')).rejects.toThrow(/refused|revoked|Authorization/i);
    // The key manager's own answer under the current version is unaffected.
    expect((await admin.keys.get(SERVICE)).activeVersion).toBe(latest);
  }, 30_000);

  it('records a version its holder did not rotate in time as overdue, once, and `keys list` shows it', async () => {
    // The service is stopped: its latest version ages past the interval and the grace.
    await expect.poll(async () => (await admin.keys.get(SERVICE)).rotationOverdue, { timeout: ROTATE_MS + OVERDUE_GRACE_MS + 10_000, interval: 250 }).toBe(true);
    await new Promise((r) => setTimeout(r, 1500)); // several more checks
    const rows = await db!.selectFrom('events').select(['details']).where('agent_id', '=', SERVICE).where('event_type', '=', 'keys.rotation_overdue').execute();
    const versions = rows.map((r) => (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as { version: number; by: string });
    // One event for the latest version; none for the versions it rotated away in time.
    expect(versions.map((d) => d.version)).toEqual([latest]);
    expect(versions[0]!.by).toBe(ServicePrincipals.keys);
    const listed = await b.bulwark(['keys', 'list', '--as', 'analyst.admin', '--nats', b.url]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${SERVICE.replace('.', '\\.')}  active v${latest} .*rotation OVERDUE`));
    // The key manager rotated its own identity on the same interval meanwhile (its keys in its store, as init leaves them):
    // the real ledger committed its keys.rotated, produced by svc.key-manager, and it kept serving (above).
    const own = await db!.selectFrom('events').select(['producer']).where('agent_id', '=', ServicePrincipals.keys).where('event_type', '=', 'keys.rotated').execute();
    expect(own.length).toBeGreaterThanOrEqual(1);
    expect(new Set(own.map((r) => r.producer))).toEqual(new Set([ServicePrincipals.keys]));
    // Committed, then switched a moment later: one behind at most.
    expect(km!.ownVersion).toBeGreaterThanOrEqual(own.length);
  }, 30_000);
});
