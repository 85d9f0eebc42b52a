// A service keeps running across the expiry of its own NATS credentials (issue 12, "Rotation"):
// `bulwark init` (root namespace), nats-server in operator mode with exactly its configuration,
// the key manager in this process (its renewals last CREDENTIAL_MS, 24 h by default), and the real
// `bulwark-schemapin` main as a child process whose user JWT was re-issued to expire
// FIRST_JWT_MS after the export. @bulwark/service-host renews it at half-life through
// `bulwark.keys.renew`; the server closes the connection at the first JWT's expiry and the bus
// reconnects with the renewed one, so the service answers well past it. The attack: the same
// start with no key manager to renew — the service must not run on silently cut off: it stops
// with exit 1 and one line naming the expiry.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService } from '@bulwark/audit-ledger';
import { KvDirectory, LEDGER_PRINCIPAL, ROOT_NAMESPACE, ServicePrincipals } from '@bulwark/bus';
import { NatsRevoker, startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { loadIdentity } from '@bulwark/keystore';
import { ensureNatsUser, loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const FIRST_JWT_MS = 8000;
const CREDENTIAL_MS = 6000;
const SERVICE = 'svc.schemapin';

let b: PrivateBulwark;
let operator: NatsConnection;
let ledger: LedgerService | undefined;
let db: Kysely<LedgerDatabase> | undefined;
const schema = withTestSchema('svc_renewal');
const children: ChildProcess[] = [];

const expOf = (jwt: string): number => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp * 1000;

interface Main {
  readonly proc: ChildProcess;
  output(): string;
  readonly firstExp: number;
}

/** Re-issues `principal`'s JWT to expire FIRST_JWT_MS from now, and starts `script` with the key directory `keysDir` gives. */
async function startMain(principal: string, script: string, keysDir: () => Promise<string>): Promise<Main> {
  await ensureNatsUser(b.store, b.provider, { kind: 'principal', id: principal }, ROOT_NAMESPACE, { expiresAt: Date.now() + FIRST_JWT_MS });
  const creds = (await loadNatsCredentials(b.store, { kind: 'principal', id: principal }))!;
  creds.seed.fill(0);
  const env = {
    PATH: process.env['PATH'] ?? '',
    ...b.env,
    NATS_URL: b.url,
    SYMBIONT_KEY_DIR: await keysDir(),
    SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('base64'),
    SYMBIONT_LOG_LEVEL: 'info',
  };
  const proc = spawn(process.execPath, [join(repoRoot, script)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
  return { proc, output: () => output, firstExp: expOf(creds.jwt) };
}

/** schemapin from a key directory of its own keys only (`bulwark principal export`). */
function startSchemapin(tag: string): Promise<Main> {
  return startMain(SERVICE, 'services/schemapin/dist/main.js', async () => {
    const own = join(b.home, `schemapin-keys-${tag}`);
    const exported = await b.bulwark(['principal', 'export', SERVICE, '--out', own]);
    expect(exported.code, exported.stderr).toBe(0);
    return own;
  });
}

const renewedIn = (output: string): number[] => [...output.matchAll(/"expires":"([^"]+)"[^\n]*NATS credentials renewed/g)].map((m) => Date.parse(m[1]!));

/** Until the service answers its NATS micro-service PING (its output in the failure). */
async function serving(s: { output: () => string }, service = 'tools'): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await answers(service))) {
    if (Date.now() > deadline) throw new Error(`bulwark-${service} does not answer: ${s.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const answers = async (service = 'tools'): Promise<boolean> => {
  try {
    await operator.request(`$SRV.PING.bulwark-${service}`, '', { timeout: 500 });
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  b = await startPrivateBulwark({ namespace: false });
  const creds = (await loadNatsCredentials(b.store, OPERATOR_USER))!;
  operator = await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 });
  // The ledger the key manager and schemapin read their state from (both wait until caught up).
  db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  ledger = await startLedgerOn(b, db, { schema: schema.name, checkpointMs: 0, controlTo: [ServicePrincipals.keys, ServicePrincipals.tools] });
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
  await ledger?.stop();
  if (db !== undefined) await closeDatabase(db);
  await schema.drop();
  await b?.stop();
}, 30_000);

describe("a service's own NATS credentials renewed at half-life", () => {
  it('keeps serving past the expiry of the JWT it started with, having renewed it through the key manager', async () => {
    const revoker = await NatsRevoker.open({ store: b.store, provider: b.provider, url: b.url });
    let km: KeyManager | undefined;
    try {
      km = await startKeyManager({
        bus: await b.connect(ServicePrincipals.keys, 'key-manager'),
        provider: b.provider,
        identity: await loadIdentity(b.store, ServicePrincipals.keys),
        directory: await KvDirectory.open(await b.connect(OPERATOR_USER, 'km-directory'), { provider: b.provider, rootPublicKey: b.rootPublicKey }),
        store: b.store,
        ledgerPublicKey: (await loadIdentity(b.store, LEDGER_PRINCIPAL)).ed25519.publicKey,
        admins: [],
        revoker,
        credentialLifetimeMs: CREDENTIAL_MS,
      });
      const s = await startSchemapin('renewed');
      await serving(s);
      // Past the first JWT's expiry and a full renewed lifetime after it: the server has dropped
      // the connection at least once for an expired JWT, the bus came back with a renewed one.
      const until = s.firstExp + CREDENTIAL_MS + 1000;
      let missed = 0;
      while (Date.now() < until) {
        if (!(await answers())) missed++;
        await new Promise((r) => setTimeout(r, 250));
      }
      await expect.poll(answers, { timeout: 5000, interval: 200 }).toBe(true);
      expect(s.proc.exitCode, s.output()).toBeNull();
      const renewed = renewedIn(s.output());
      expect(renewed.length, s.output()).toBeGreaterThanOrEqual(2);
      expect(renewed[0]!).toBeGreaterThan(s.firstExp);
      process.stdout.write(`${JSON.stringify({ figure: 'service_renewal', renewals: renewed.length, missedPings: missed })}\n`);
    } finally {
      await km?.stop();
      await revoker.close();
    }
  }, 90_000);

  it('the key manager main renews its own JWT (it answers keys.renew and signs its own) and keeps serving past the first expiry', async () => {
    // Its custody store: init's, with the root and the NATS account key.
    const km = await startMain(ServicePrincipals.keys, 'services/key-manager/dist/main.js', async () => b.keysDir);
    try {
      await serving(km, 'keys');
      await new Promise((r) => setTimeout(r, Math.max(0, km.firstExp + 2000 - Date.now())));
      await serving(km, 'keys');
      expect(km.proc.exitCode, km.output()).toBeNull();
      const renewed = renewedIn(km.output());
      expect(renewed.length, km.output()).toBeGreaterThanOrEqual(1);
      expect(renewed[0]!).toBeGreaterThan(km.firstExp);
    } finally {
      if (km.proc.exitCode === null && km.proc.signalCode === null) {
        const exited = new Promise((r) => km.proc.once('exit', r));
        km.proc.kill('SIGTERM');
        await exited;
      }
    }
  }, 60_000);

  it('stops with exit 1 and says so when its credentials expire without a renewal (no key manager)', async () => {
    const s = await startSchemapin('unrenewed');
    await serving(s);
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => resolve(null), FIRST_JWT_MS + 10_000);
      s.proc.once('exit', (c) => (clearTimeout(t), resolve(c)));
    });
    expect(code, s.output()).toBe(1);
    expect(s.output()).toMatch(/bulwark-schemapin: .*svc\.schemapin: its NATS credentials expired at .* without a renewal/);
    expect(s.output()).toMatch(/NATS credential renewal failed; retrying/);
    expect(Date.now()).toBeGreaterThanOrEqual(s.firstExp);
  }, 60_000);
});
