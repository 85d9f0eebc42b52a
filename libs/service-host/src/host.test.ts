import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectBus, LEDGER_PRINCIPAL, publishDirectoryEntry, removeDirectoryBucket, removeNamespaceStreams, uniqueNamespace, type Bus } from '@bulwark/bus';
import { signDirectoryEntry } from '@bulwark/envelope';
import { createCryptoProvider, toHex } from '@bulwark/crypto';
import { BulwarkError, InputError } from '@bulwark/errors';
import { ensureIdentity, FileKeyStore, SoftwareKek } from '@bulwark/keystore';
import { METRICS_PORT_ENV } from '@bulwark/telemetry';
import { natsUrl } from '@bulwark/testkit';
import { BOOT_GRACE_MS, runService, type ServiceContext, type ServiceDefinition } from './host.js';
import { SUPERVISOR_ENV } from './supervisor-watch.js';

const provider = createCryptoProvider('node');
const kek = randomBytes(32);
const dir = mkdtempSync(join(tmpdir(), 'service-host-'));
const root = provider.ed25519.generateKeyPair();
const namespace = uniqueNamespace('host');
const PRINCIPAL = 'svc.policy';
let admin: Bus;

/** A free local port (closed again: the service under test binds it). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const baseEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  NATS_URL: natsUrl(),
  SYMBIONT_KEY_DIR: dir,
  SYMBIONT_KEK: kek.toString('base64'),
  SYMBIONT_ROOT_PUBLIC_KEY: toHex(root.publicKey),
  SYMBIONT_LOG_LEVEL: 'silent',
  ...extra,
});

/** Runs a definition, capturing the one stderr line a failure writes. */
async function run<S>(definition: ServiceDefinition<S>, env: NodeJS.ProcessEnv, stopWhen?: Promise<'SIGTERM'>): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await runService(definition, { env, ...(stopWhen === undefined ? {} : { stopWhen }) });
    return { code, stderr };
  } finally {
    spy.mockRestore();
  }
}

beforeAll(async () => {
  const store = await FileKeyStore.open({ dir, wrapper: new SoftwareKek(provider, kek, 'test'), provider });
  await ensureIdentity(store, provider, PRINCIPAL);
  admin = await connectBus({ url: natsUrl(), name: 'service-host-test', namespace });
});

afterAll(async () => {
  await removeNamespaceStreams(admin).catch(() => undefined);
  await removeDirectoryBucket(admin).catch(() => undefined);
  await admin.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('runService', () => {
  it('refuses to start without the pinned root: exit 2, one line, nothing opened', async () => {
    const start = vi.fn();
    const env = baseEnv();
    delete env['SYMBIONT_ROOT_PUBLIC_KEY'];
    const r = await run({ name: 'probe', principal: PRINCIPAL, start }, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('bulwark-probe: probe: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset: without the pinned root no directory entry can be trusted\n');
    expect(start).not.toHaveBeenCalled();
  });

  it('exits 2 on a bad SYMBIONT_KEY_ROTATION_CHECK_MS, naming the setting, before any key is opened', async () => {
    const openStore = vi.fn();
    const r = await run({ name: 'probe', principal: PRINCIPAL, rotatesOwnKeys: true, openStore, start: vi.fn() }, baseEnv({ SYMBIONT_KEY_ROTATION_CHECK_MS: '100' }));
    expect(r).toEqual({ code: 2, stderr: 'bulwark-probe: SYMBIONT_KEY_ROTATION_CHECK_MS="100": must be an integer number of milliseconds from 200 to 60000\n' });
    expect(openStore).not.toHaveBeenCalled();
  });

  it("exits 2 on the service's own bad setting, before any key is opened", async () => {
    const openStore = vi.fn();
    const r = await run(
      {
        name: 'probe',
        principal: PRINCIPAL,
        settings: () => {
          throw new InputError('E_CONFIG', 'probe: BULWARK_PROBE must be a number');
        },
        openStore,
        start: vi.fn(),
      },
      baseEnv(),
    );
    expect(r).toEqual({ code: 2, stderr: 'bulwark-probe: probe: BULWARK_PROBE must be a number\n' });
    expect(openStore).not.toHaveBeenCalled();
  });

  it('exits 1 when NATS is unreachable, and closes what it opened (the metrics port is free again)', async () => {
    const port = await freePort();
    const r = await run({ name: 'probe', principal: PRINCIPAL, start: vi.fn() }, baseEnv({ NATS_URL: 'nats://127.0.0.1:1', [METRICS_PORT_ENV]: String(port) }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bulwark-probe: .*127\.0\.0\.1:1/);
    expect(r.stderr.split('\n')).toHaveLength(2);
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  });

  it('runs the service until told to stop, then stops it and closes the rest, last opened first; /health is the service’s', async () => {
    const order: string[] = [];
    const port = await freePort();
    let stop!: (s: 'SIGTERM') => void;
    const stopWhen = new Promise<'SIGTERM'>((resolve) => (stop = resolve));
    let context: ServiceContext<{ answer: number }> | undefined;
    const running = run(
      {
        name: 'probe',
        principal: PRINCIPAL,
        settings: () => ({ answer: 42 }),
        namespace: () => namespace,
        start: async (c) => {
          context = c;
          c.defer(() => void order.push('first deferred'));
          c.defer(() => void order.push('second deferred'));
          return {
            health: async () => ({ ready: false, reason: 'probe: not yet' }),
            stop: async () => {
              order.push(`service stopped (bus connected: ${c.bus.isConnected()})`);
            },
          };
        },
      },
      baseEnv({ [METRICS_PORT_ENV]: String(port) }),
      stopWhen,
    );
    for (let i = 0; i < 100 && context === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(context?.settings).toEqual({ answer: 42 });
    expect(context?.identity.id).toBe(PRINCIPAL);
    expect(context?.authenticated).toBe(false);
    // The service's readiness, not the bus's: 503 with its reason.
    let health: Response | undefined;
    for (let i = 0; i < 50; i++) {
      health = await fetch(`http://127.0.0.1:${port}/health`);
      if ((await health.clone().json() as { reason: string }).reason !== 'starting') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(health?.status).toBe(503);
    expect(await health?.json()).toMatchObject({ ready: false, reason: 'probe: not yet' });
    stop('SIGTERM');
    expect(await running).toEqual({ code: 0, stderr: '' });
    expect(order).toEqual(['service stopped (bus connected: true)', 'second deferred', 'first deferred']);
    expect(context!.bus.isConnected()).toBe(false);
  });

  it("names the ledger's key from BULWARK_LEDGER_PUBLIC_KEY, and refuses without it or a directory entry (exit 2)", async () => {
    const ledgerKey = provider.ed25519.generateKeyPair().publicKey;
    const withKey = await run(
      {
        name: 'probe',
        principal: PRINCIPAL,
        namespace: () => namespace,
        start: async (c) => {
          expect(c.ledgerPublicKey()).toEqual(ledgerKey);
          throw new BulwarkError('E_PROBE', 'probe: failed at run time');
        },
      },
      baseEnv({ BULWARK_LEDGER_PUBLIC_KEY: toHex(ledgerKey) }),
    );
    expect(withKey).toEqual({ code: 1, stderr: 'bulwark-probe: probe: failed at run time\n' });
    const without = await run({ name: 'probe', principal: PRINCIPAL, namespace: () => namespace, start: async (c) => ({ stop: async () => void c.ledgerPublicKey() }) }, baseEnv(), Promise.resolve('SIGTERM'));
    expect(without.code).toBe(2);
    expect(without.stderr).toBe('bulwark-probe: probe: no directory entry for svc.audit-ledger and no BULWARK_LEDGER_PUBLIC_KEY: ledger events cannot be verified\n');
  });

  it("takes the ledger's directory entry as its genesis key only while it is version 1; past it, only BULWARK_LEDGER_PUBLIC_KEY (else exit 2)", async () => {
    const entry = (keyVersion: number, ed25519PublicKey: Uint8Array) =>
      signDirectoryEntry(provider, root.secretKey, { id: LEDGER_PRINCIPAL, ed25519PublicKey, x25519PublicKey: provider.x25519.generateKeyPair().publicKey, keyVersion, notBefore: Date.now() - 1000, notAfter: Date.now() + 3_600_000, revoked: false });
    const first = provider.ed25519.generateKeyPair().publicKey;
    await publishDirectoryEntry(admin, entry(1, first));
    const seen: Uint8Array[] = [];
    const probe = (env: NodeJS.ProcessEnv) =>
      run({ name: 'probe', principal: PRINCIPAL, namespace: () => namespace, start: async (c) => ({ stop: async () => void seen.push(c.ledgerPublicKey()) }) }, env, Promise.resolve('SIGTERM'));
    expect(await probe(baseEnv())).toEqual({ code: 0, stderr: '' });
    expect(seen).toEqual([first]);
    // The ledger rotated: its entry's key is not where the chain starts.
    await publishDirectoryEntry(admin, entry(2, provider.ed25519.generateKeyPair().publicKey));
    const unpinned = await probe(baseEnv());
    expect(unpinned.code).toBe(2);
    expect(unpinned.stderr).toMatch(/^bulwark-probe: probe: svc\.audit-ledger's directory entry is version 2, not its first: set BULWARK_LEDGER_PUBLIC_KEY to the ledger's genesis key/);
    expect(await probe(baseEnv({ BULWARK_LEDGER_PUBLIC_KEY: toHex(first) }))).toEqual({ code: 0, stderr: '' });
    expect(seen).toEqual([first, first]);
  });

  it('ends a service whose supervisor went away while it was starting, if its start does not finish within the grace', { timeout: 60_000 }, async () => {
    const fixture = fileURLToPath(new URL('./host-grace.fixture.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...baseEnv(), [SUPERVISOR_ENV]: 'stdin' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const t0 = Date.now();
    child.stdin.end();
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), BOOT_GRACE_MS + 20_000))]);
    if (code === 'hung') child.kill('SIGKILL');
    expect(code).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(BOOT_GRACE_MS - 100);
    expect(stderr).toBe(`bulwark-probe: the supervisor went away while the service was starting, and it did not start within ${BOOT_GRACE_MS / 1000} s\n`);
  });
});
