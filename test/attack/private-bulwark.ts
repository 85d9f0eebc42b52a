// A private Bulwark deployment for attack tests: `bulwark init` (in-process) in a temporary
// home, then nats-server started from PATH with exactly the configuration init wrote, on a
// free loopback port, then init again (it creates the streams and publishes the directory
// once the server is up, as an operator would). One per test file; `stop()` closes what it
// opened and kills it. Also the end-to-end tests in test/ run on it: `connect` gives a bus as a
// principal with its own NATS user, `identity` its keys from init's key store, `directory` the
// signed directory from KV.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS, LedgerService, type LedgerDatabase, type LedgerSettings } from '@bulwark/audit-ledger';
import { run } from '@bulwark/cli';
import type { CommandIO } from '@bulwark/cli';
import { createNodeCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { FileKeyStore, SoftwareKek } from '@bulwark/keystore';
import { connectBus, ensureStreams, KvDirectory, LEDGER_PRINCIPAL, removeNamespaceStreams, ROOT_NAMESPACE, type Bus, type Namespace, type StreamSpec } from '@bulwark/bus';
import { loadIdentity, type Identity } from '@bulwark/keystore';
import { busCredentialsFor, OPERATOR_USER, type BusRole } from '@bulwark/nats-auth';
import type { Kysely } from '@bulwark/store';

export interface PrivateBulwark {
  readonly home: string;
  readonly keysDir: string;
  readonly url: string;
  /** The `--namespace` name init was given (`''`: none), and the bus namespace it stands for. */
  readonly namespaceName: string;
  readonly namespace: Namespace;
  readonly provider: CryptoProvider;
  readonly store: FileKeyStore;
  /** The nats-server configuration init wrote (the server runs with exactly this file). */
  readonly configFile: string;
  readonly rootPublicKey: Uint8Array;
  /** The environment the key store opens with (`SYMBIONT_KEK`). */
  readonly env: Readonly<Record<string, string>>;
  /** `bulwark <argv>` in-process with its KEK and key store, in the home or in `cwd`. */
  bulwark(argv: readonly string[], options?: { cwd?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Enrols a fresh agent (`bulwark principal add agent.<uuid>`); its id. */
  addAgent(): Promise<string>;
  /** Enrols `id` (`bulwark principal add <id> [--admin]`). */
  addPrincipal(id: string, options?: { admin?: boolean }): Promise<void>;
  /** A bus in the deployment's namespace as `principal` (or the operator's user), with the credentials init gave it; closed by `stop()`. */
  connect(principal: string | BusRole, name?: string): Promise<Bus>;
  /** `principal`'s keys from init's key store. */
  identity(principal: string): Promise<Identity>;
  /** The signed directory from the KV bucket init published (one, opened on first use). */
  directory(): Promise<KvDirectory>;
  /** As the operator: deletes the namespace's streams (and so their consumers and messages) and creates them afresh (`specs`: default the three of DESIGN §2). */
  resetStreams(specs?: readonly StreamSpec[]): Promise<void>;
  /** The nats-server process's id (benchmarks read its CPU time). */
  readonly serverPid: number;
  /** The server's log so far (permission violations are logged there). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * The environment a service's real main runs with in `b`: its KEK, the bus, the root pin and its own
 * key folder (`bulwark principal export`), then `extra` (its settings, DATABASE_URL where it has one).
 */
export function mainEnv(b: PrivateBulwark, keyDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '',
    ...b.env,
    NATS_URL: b.url,
    SYMBIONT_KEY_DIR: keyDir,
    SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('base64'),
    SYMBIONT_LOG_LEVEL: 'warn',
    ...extra,
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function listening(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const taken = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (taken) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `namespace: false` initialises the root namespace (as a deployment would; the service mains have no namespace setting). */
export async function startPrivateBulwark(options: { namespace?: boolean } = {}): Promise<PrivateBulwark> {
  const home = mkdtempSync(join(tmpdir(), 'bulwark-attack-'));
  const kekBytes = randomBytes(32);
  const env = { SYMBIONT_KEK: kekBytes.toString('base64') };
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const namespaceName = options.namespace === false ? '' : `T${randomBytes(5).toString('hex')}`;
  const nsArgs = namespaceName === '' ? [] : ['--namespace', namespaceName];
  const keysDir = join(home, '.bulwark', 'keys');
  const bulwark = async (argv: readonly string[], options: { cwd?: string } = {}) => {
    let stdout = '';
    let stderr = '';
    const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: { ...env, SYMBIONT_KEY_DIR: keysDir }, cwd: options.cwd ?? home };
    const code = await run([...argv], io);
    return { code, stdout, stderr };
  };
  const initArgs = ['init', ...nsArgs, '--nats', url, '--json'];
  const first = await bulwark(initArgs);
  // No server yet: the keys, users and configuration are made, the publication waits.
  if (first.code !== 1) throw new Error(`first bulwark init: exit ${first.code}: ${first.stderr}`);
  const report = JSON.parse(first.stdout) as { nats: { configFile: string }; root: { publicKeyBase64: string } };
  const logFile = join(home, 'nats-server.log');
  const out = openSync(logFile, 'a');
  const server: ChildProcess = spawn('nats-server', ['-c', report.nats.configFile], { stdio: ['ignore', out, out] });
  const buses: Bus[] = [];
  let directory: Promise<KvDirectory> | undefined;
  const stop = async (): Promise<void> => {
    await (await directory?.catch(() => undefined))?.stop();
    await Promise.all(buses.splice(0).map((bus) => bus.close()));
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGKILL');
      await exited;
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    await listening(port, 10_000);
    const second = await bulwark(initArgs);
    if (second.code !== 0) throw new Error(`bulwark init with the server up: exit ${second.code}: ${second.stdout} ${second.stderr}`);
  } catch (error) {
    const log = readFileSync(logFile, 'utf8');
    await stop();
    throw new Error(`${(error as Error).message}\n${log}`, { cause: error });
  }
  const provider = createNodeCryptoProvider();
  const store = await FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(provider, new Uint8Array(kekBytes), 'SYMBIONT_KEK'), provider });
  const namespace = namespaceName === '' ? ROOT_NAMESPACE : { streamPrefix: `${namespaceName}_`, subjectPrefix: `${namespaceName}.` };
  const connect = async (principal: string | BusRole, name?: string): Promise<Bus> => {
    const who = typeof principal === 'string' ? principal : 'bulwark-operator';
    const bus = await connectBus({ url, name: name ?? who, namespace, maxReconnectAttempts: 0, ...(await busCredentialsFor(store, principal)) });
    buses.push(bus);
    return bus;
  };
  const addPrincipal = async (id: string, options: { admin?: boolean } = {}): Promise<void> => {
    const r = await bulwark(['principal', 'add', id, ...(options.admin === true ? ['--admin'] : []), ...nsArgs, '--nats', url, '--json']);
    if (r.code !== 0) throw new Error(`bulwark principal add ${id}: exit ${r.code}: ${r.stdout} ${r.stderr}`);
  };
  return {
    home,
    keysDir: store.dir,
    url,
    namespaceName,
    namespace,
    provider,
    store,
    configFile: report.nats.configFile,
    rootPublicKey: new Uint8Array(Buffer.from(report.root.publicKeyBase64, 'base64')),
    env,
    bulwark,
    addPrincipal,
    async addAgent() {
      const id = `agent.${randomUUID()}`;
      await addPrincipal(id);
      return id;
    },
    connect,
    identity: (principal) => loadIdentity(store, principal),
    directory() {
      directory ??= connect(OPERATOR_USER, 'directory-reader').then((bus) => KvDirectory.open(bus, { provider, rootPublicKey: new Uint8Array(Buffer.from(report.root.publicKeyBase64, 'base64')) }));
      return directory;
    },
    async resetStreams(specs) {
      const operator = await connect(OPERATOR_USER, 'stream-reset');
      try {
        await removeNamespaceStreams(operator);
        await ensureStreams(operator, specs);
      } finally {
        buses.splice(buses.indexOf(operator), 1);
        await operator.close();
      }
    },
    serverPid: server.pid!,
    log: () => readFileSync(logFile, 'utf8'),
    stop,
  };
}

/** The real audit-ledger service on `b`: under its own NATS user with init's identity, the directory read as the operator, in `db` (migrated) and schema `settings.schema`. */
export async function startLedgerOn(b: PrivateBulwark, db: Kysely<LedgerDatabase>, settings: Partial<LedgerSettings> & { readonly schema: string }): Promise<LedgerService> {
  return LedgerService.start({
    bus: await b.connect(LEDGER_PRINCIPAL, 'ledger'),
    db,
    crypto: b.provider,
    identity: await loadIdentity(b.store, LEDGER_PRINCIPAL),
    directory: await KvDirectory.open(await b.connect(OPERATOR_USER, 'ledger-directory'), { provider: b.provider, rootPublicKey: b.rootPublicKey }),
    settings: { ...DEFAULT_SETTINGS, namespace: b.namespace, ...settings },
  });
}
