// The service processes under NATS authentication (DESIGN §3a): `bulwark init` (root
// namespace, as deployed), nats-server with exactly the configuration it wrote, then the real
// `bulwark-audit-ledger` and `bulwark-policy` mains as child processes, each with a key
// directory of its own keys only (`bulwark principal export`) and the KEK. The server accepts no anonymous client, so their working at all shows they
// connected with their own credentials; an administrator and an agent then use them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import type { LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, KvDirectory, RejectionReporter, type Bus } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { loadIdentity } from '@bulwark/keystore';
import { busCredentialsFor, loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { mainEnv, startPrivateBulwark, type PrivateBulwark } from './private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const SEED = 'policy secure_data_access {\n    allow: read(sensitive_data) if user.clearance >= "secret"\n}\n';

describe('the service mains under their own NATS users', () => {
  let b: PrivateBulwark;
  let operator: NatsConnection;
  const children: { name: string; proc: ChildProcess; stderr: string }[] = [];
  const buses: Bus[] = [];
  const directories: KvDirectory[] = [];
  const schema = withTestSchema('nats_mains');

  // Each process gets a key directory of its own files only (bulwark principal export): it
  // cannot open the root key or the account's signing key, and needs neither.
  const startMain = async (name: string, principal: string, script: string, extra: Record<string, string>) => {
    const own = join(b.home, `${name}-keys`);
    const exported = await b.bulwark(['principal', 'export', principal, '--out', own]);
    expect(exported.code, exported.stderr).toBe(0);
    const env = mainEnv(b, own, { DATABASE_URL: databaseUrl(), ...extra });
    const child = { name, proc: spawn(process.execPath, [join(repoRoot, script)], { env, stdio: ['ignore', 'ignore', 'pipe'] }), stderr: '' };
    child.proc.stderr?.on('data', (d: Buffer) => void (child.stderr += d.toString()));
    children.push(child);
  };
  const answers = async (service: string): Promise<boolean> => {
    try {
      await operator.request(`$SRV.PING.${service}`, '', { timeout: 500 });
      return true;
    } catch {
      return false;
    }
  };
  const clientAs = async (principal: string) => {
    const bus = await connectBus({ url: b.url, name: principal, maxReconnectAttempts: 0, ...(await busCredentialsFor(b.store, principal)) });
    buses.push(bus);
    const directory = await KvDirectory.open(bus, { provider: b.provider, rootPublicKey: b.rootPublicKey });
    directories.push(directory);
    const identity = await loadIdentity(b.store, principal);
    return createBulwarkClient({
      bus,
      sessions: { provider: b.provider, self: { id: identity.id, x25519: identity.x25519 }, directory },
      rejections: new RejectionReporter({ reporter: principal, publish: async () => undefined }),
      decisionTimeoutMs: 5000,
    });
  };

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-b', 'services/policy', 'services/audit-ledger'], { cwd: repoRoot, stdio: 'pipe' });
    b = await startPrivateBulwark({ namespace: false });
    const creds = (await loadNatsCredentials(b.store, OPERATOR_USER))!;
    operator = await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(directories.map((d) => d.stop()));
    await Promise.all(buses.map((x) => x.close()));
    await operator?.close();
    for (const c of children) {
      if (c.proc.exitCode === null) {
        const exited = new Promise((r) => c.proc.once('exit', r));
        c.proc.kill('SIGTERM');
        await exited;
      }
    }
    await schema.drop();
    await b?.stop();
  }, 30_000);

  it('the ledger and the policy service connect with their credentials and serve an administrator and an agent', async () => {
    await startMain('audit-ledger', 'svc.audit-ledger', 'services/audit-ledger/dist/service/main.js', { SYMBIONT_LEDGER_SCHEMA: schema.name, SYMBIONT_LEDGER_CHECKPOINT_MS: '0', SYMBIONT_LEDGER_SIGNER_WORKERS: '1' });
    await expect.poll(() => answers('bulwark-audit'), { timeout: 20_000, interval: 200 }).toBe(true);
    await startMain('policy', 'svc.policy', 'services/policy/dist/main.js', { SYMBIONT_POLICY_ADMINS: 'analyst.admin' });
    await expect.poll(() => answers('bulwark-policy'), { timeout: 20_000, interval: 200 }).toBe(true);

    const admin = await clientAs('analyst.admin');
    expect(await admin.policyAdmin.register(SEED, 'seed.policy')).toMatchObject({ name: 'secure_data_access', version: 1, applied: true });
    const agent = await clientAs(await b.addAgent());
    expect(await agent.authorize.resourceAccess({ action: 'read', resource: 'sensitive_data', context: { user: { clearance: 'secret' } } })).toMatchObject({
      decision: 'Allow',
      policy: 'secure_data_access',
    });
    // The decision reached the ledger (registered + decision).
    const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
    try {
      await expect
        .poll(async () => Number((await db.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n), { timeout: 10_000 })
        .toBeGreaterThanOrEqual(2);
    } finally {
      await closeDatabase(db);
    }
    expect(b.log()).not.toMatch(/Violation/);
    for (const c of children) expect(c.proc.exitCode, `${c.name}: ${c.stderr}`).toBeNull();
  }, 90_000);
});
