// A service keeps running across the expiry of its own NATS credentials (issue 12, "Rotation"):
// `bulwark init` (root namespace), nats-server in operator mode with exactly its configuration,
// the key manager in this process (its renewals last CREDENTIAL_MS, 24 h by default), and the real
// `bulwark-schemapin` main as a child process whose user JWT was re-issued to expire
// FIRST_JWT_MS after the export. @bulwark/service-host renews it at half-life through
// `bulwark.keys.renew`; the server closes the connection at the first JWT's expiry and the bus
// reconnects with the renewed one, so the service answers well past it. The attack: the same
// start with no key manager to renew — the service must not run on silently cut off: it stops
// with exit 1 and one line naming the expiry.
import { describe, expect, it } from 'vitest';
import { ROOT_NAMESPACE, ServicePrincipals } from '@bulwark/bus';
import { ensureNatsUser, loadNatsCredentials } from '@bulwark/nats-auth';
import { useServiceWorld, type MainName, type ServiceMain } from './service-world.js';

const FIRST_JWT_MS = 8000;
const CREDENTIAL_MS = 6000;
const SERVICE = ServicePrincipals.tools;
// The ledger the key manager and schemapin read their state from (both wait until caught up); the key manager is each test's own.
const world = useServiceWorld({ schema: 'svc_renewal', ledger: { controlTo: [ServicePrincipals.keys, ServicePrincipals.tools] }, keyManager: false });

const expOf = (jwt: string): number => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp * 1000;

interface Main extends ServiceMain {
  readonly firstExp: number;
}

/** Re-issues `principal`'s JWT to expire FIRST_JWT_MS from now, and starts its main on the key directory `keysDir` gives. */
async function startMain(principal: string, name: MainName, keysDir: () => Promise<string>): Promise<Main> {
  const { b, start } = world();
  await ensureNatsUser(b.store, b.provider, { kind: 'principal', id: principal }, ROOT_NAMESPACE, { expiresAt: Date.now() + FIRST_JWT_MS });
  const creds = (await loadNatsCredentials(b.store, { kind: 'principal', id: principal }))!;
  creds.seed.fill(0);
  return { ...(await start(name, {}, await keysDir())), firstExp: expOf(creds.jwt) };
}

/** schemapin from a key directory of its own keys only (`bulwark principal export`, after the JWT is re-issued). */
function startSchemapin(tag: string): Promise<Main> {
  return startMain(SERVICE, 'schemapin', () => world().exportKeys(SERVICE, `schemapin-${tag}`));
}

const renewedIn = (output: string): number[] => [...output.matchAll(/"expires":"([^"]+)"[^\n]*NATS credentials renewed/g)].map((m) => Date.parse(m[1]!));
const answers = (): Promise<boolean> => world().answers('bulwark-tools');

describe("a service's own NATS credentials renewed at half-life", () => {
  it('keeps serving past the expiry of the JWT it started with, having renewed it through the key manager', async () => {
    const { serving } = world();
    // Stopped at the end: the last test runs with no key manager.
    const km = await world().startKeyManager({ admins: [], credentialLifetimeMs: CREDENTIAL_MS });
    try {
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
      await km.stop();
    }
  }, 90_000);

  it('the key manager main renews its own JWT (it answers keys.renew and signs its own) and keeps serving past the first expiry', async () => {
    // Its custody store: init's, with the root and the NATS account key.
    const { b, serving, stop } = world();
    const km = await startMain(ServicePrincipals.keys, 'keys', async () => b.keysDir);
    try {
      await serving(km);
      await new Promise((r) => setTimeout(r, Math.max(0, km.firstExp + 2000 - Date.now())));
      await serving(km);
      expect(km.proc.exitCode, km.output()).toBeNull();
      const renewed = renewedIn(km.output());
      expect(renewed.length, km.output()).toBeGreaterThanOrEqual(1);
      expect(renewed[0]!).toBeGreaterThan(km.firstExp);
    } finally {
      await stop(km);
    }
  }, 60_000);

  it('stops with exit 1 and says so when its credentials expire without a renewal (no key manager)', async () => {
    const s = await startSchemapin('unrenewed');
    await world().serving(s);
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
