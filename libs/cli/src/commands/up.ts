import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ServicePrincipals, SOC_CHANNEL, type Bus } from '@bulwark/bus';
import { loadConfig, redactUrl } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { BulwarkError, InputError } from '@bulwark/errors';
import { parseChannelsSetting } from '@bulwark/key-manager';
import type { FileKeyStore } from '@bulwark/keystore';
import { maskDatabaseUrl, parseDatabaseUrl } from '@bulwark/store';
import { METRICS_PORT_ENV } from '@bulwark/telemetry';
import { ADMIN_PRINCIPAL } from '../home/admin.js';
import { chooseCustody, ensureKeyManagerKek, exportAdminDirectory, HSM_CONFIG_ENV, KEY_STORE_TYPE_ENV, keyManagerEnvironment, migrateLegacyKeys, withoutHsm } from '../home/custody.js';
import { openCustodyStore } from '../home/custody-store.js';
import { DEFAULT_TOOLS_DOMAIN, ensureToolsProviderKey } from '../home/tools-provider.js';
import { homeDatabaseUrl, homeEnvironment } from '../home/environment.js';
import { ensureHome, resolveHome, type Home } from '../home/home.js';
import { connectAsOperator } from '../home/session.js';
import { lockHome, removeRunState, writeRunState, type RunState } from '../home/state.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { findNatsServer, NATS_INSTALL_HINT, startNatsServer, type RunningNats } from '../run/nats-server.js';
import { stopPreviousRun } from '../run/leftovers.js';
import { serviceKeyEnvironment } from '../run/service-keys.js';
import { freePort, parsePort, requireFreePort } from '../run/ports.js';
import { probeServices, statusTable, type ServiceStatus } from '../run/probe.js';
import { SERVICES, serviceEntryPoint, startStages, type ServiceSpec } from '../run/services.js';
import { Supervisor } from '../run/supervisor.js';
import { init } from './init.js';

interface UpOptions {
  readonly dir?: string;
  readonly natsPort?: string;
  readonly readyTimeout: string;
  readonly keyStore?: string;
  readonly hsmConfig?: string;
}

/** Resolves on the first SIGINT or SIGTERM; `bulwark up` stops in order then. */
function stopSignal(): { promise: Promise<NodeJS.Signals>; dispose(): void } {
  let handler: ((signal: NodeJS.Signals) => void) | undefined;
  const promise = new Promise<NodeJS.Signals>((resolve) => {
    handler = (signal) => resolve(signal);
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
  return {
    promise,
    dispose() {
      process.off('SIGINT', handler!);
      process.off('SIGTERM', handler!);
    },
  };
}

class Interrupted extends Error {}

/** The KEK: the caller's (SYMBIONT_KEK or SYMBIONT_KEK_FILE), else the home's development file, made on first start. */
function ensureDevelopmentKek(io: CommandIO, home: Home): void {
  if (io.env['SYMBIONT_KEK'] || io.env['SYMBIONT_KEK_FILE'] || existsSync(home.kekFile)) return;
  writeFileSync(home.kekFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  io.stderr(`bulwark up: warning: generated a development key-encryption key in ${home.kekFile} (mode 0600); production uses SYMBIONT_KEK_FILE or an HSM\n`);
}

interface InitReport {
  readonly alreadyInitialised: boolean;
  readonly nats: { readonly configFile: string };
  readonly publish: { readonly ok: boolean; readonly error?: string };
}

/**
 * `bulwark init` for the home (keys in the key manager's store `<home>/key-manager/keys`, under its KEK: `env`, the nats-server configuration and
 * JetStream store in `<home>/nats`, the home's administrator), in-process. With `publish`
 * false the server is not up yet (its configuration is what init writes): only the files.
 */
async function runInit(io: CommandIO, env: NodeJS.ProcessEnv, home: Home, url: string, publish: boolean): Promise<InitReport> {
  let out = '';
  let code: number = ExitCode.ok;
  const listen = new URL(url);
  await init(
    { ...io, env, stdout: (s) => void (out += s) },
    { dir: home.keyManagerKeysDir, nats: url, json: true, admin: ADMIN_PRINCIPAL, natsConfigDir: home.natsDir, natsStoreDir: home.natsDir, natsListen: `${listen.hostname}:${listen.port}` },
    (c) => (code = c),
  );
  const report = JSON.parse(out) as InitReport;
  if (publish && (code !== ExitCode.ok || !report.publish.ok)) {
    throw new BulwarkError('E_INIT', `bulwark init could not create the streams and publish the directory on ${redactUrl(url)}: ${report.publish.error ?? 'failed'}`);
  }
  return report;
}

/**
 * NATS: `NATS_URL` when set (its server must run with the configuration init writes, or
 * without authentication), else nats-server from PATH with the configuration init wrote,
 * on a free loopback port (or --nats-port).
 */
async function startNats(io: CommandIO, env: NodeJS.ProcessEnv, home: Home, options: UpOptions): Promise<{ url: string; init: InitReport; managed?: RunningNats }> {
  const external = io.env['NATS_URL'];
  if (external !== undefined && external !== '') {
    if (options.natsPort !== undefined) throw new InputError('E_USAGE', '--nats-port starts a NATS server, but NATS_URL names one already: use one or the other');
    return { url: external, init: await runInit(io, env, home, external, true) };
  }
  const binary = findNatsServer(io.env);
  if (binary === undefined) throw new InputError('E_NATS_MISSING', `no nats-server in PATH and NATS_URL is unset: ${NATS_INSTALL_HINT}`);
  const port = options.natsPort === undefined ? await freePort() : parsePort('--nats-port', options.natsPort);
  await requireFreePort(port, '--nats-port');
  const url = `nats://127.0.0.1:${port}`;
  const files = await runInit(io, env, home, url, false);
  const managed = await startNatsServer(binary, { configFile: files.nats.configFile, url }, join(home.logsDir, 'nats-server.log'), undefined, io.env);
  try {
    const published = await runInit(io, env, home, url, true);
    return { url, managed, init: { ...published, alreadyInitialised: files.alreadyInitialised } };
  } catch (error) {
    await managed.stop();
    throw error;
  }
}

/** The policy administrators: the caller's, the home's administrator, and incident response (containment is a policy change). */
function policyAdmins(env: NodeJS.ProcessEnv): string {
  const admins = [...(env['SYMBIONT_POLICY_ADMINS'] ?? '').split(',').filter((a) => a !== ''), ADMIN_PRINCIPAL, ServicePrincipals.incident];
  return [...new Set(admins)].join(',');
}

/** The key administrators: the caller's (or its policy administrators) and the home's administrator; incident response is not one (it revokes, and invites again what it cut off, as the key manager's responder). */
function keyAdmins(env: NodeJS.ProcessEnv): string {
  const admins = [...(env['SYMBIONT_KEY_ADMINS'] || env['SYMBIONT_POLICY_ADMINS'] || '').split(',').filter((a) => a !== ''), ADMIN_PRINCIPAL];
  return [...new Set(admins)].join(',');
}

/** The services that replay control events from the ledger at start (policies, pins, and the key facts every service judges its callers by), each sealed its own control batches (unless the caller names them). */
const CONTROL_READERS = [ServicePrincipals.policy, ServicePrincipals.keys, ServicePrincipals.tools, ServicePrincipals.sandbox];

const LEDGER_CHANNEL = 'ledger.full';

/**
 * The channels the key manager creates at its first start (issue 12 "Channels"): the ledger's full
 * stream, and the SOC stream for incident response, the home's administrator, the analysts the
 * caller names (BULWARK_INCIDENT_ANALYSTS) and every analyst enrolled (`analyst.*`: one added later
 * by `principal add` or `keys invite`/`enroll` joins at its enrolment, a revoked one is dropped).
 * The caller's SYMBIONT_KEY_CHANNELS come first; a default channel it does not name is added.
 */
function keyChannels(env: NodeJS.ProcessEnv): string {
  const caller = env['SYMBIONT_KEY_CHANNELS'] ?? '';
  const named = new Set(parseChannelsSetting(caller).map((c) => c.channel));
  const analysts = [...new Set([ADMIN_PRINCIPAL, ...(env['BULWARK_INCIDENT_ANALYSTS'] ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '')])];
  const defaults = [
    `${LEDGER_CHANNEL}=${ServicePrincipals.audit},${ServicePrincipals.incident}`,
    `${SOC_CHANNEL}=${ServicePrincipals.incident},${analysts.join(',')},analyst.*`,
  ].filter((entry) => !named.has(entry.slice(0, entry.indexOf('='))));
  return [...(caller.trim() === '' ? [] : [caller]), ...defaults].join(';');
}

/** What every service `up` runs needs beyond the home: the administrators, the ledger's control recipients, the ledger's channel, the tool provider we operate. */
function upEnvironment(env: NodeJS.ProcessEnv, databaseUrl: string, home: Home): NodeJS.ProcessEnv {
  const ownSigning = env['BULWARK_SCHEMAPIN_SIGNING_KEY'] === undefined;
  return {
    ...env,
    DATABASE_URL: databaseUrl,
    SYMBIONT_POLICY_ADMINS: policyAdmins(env),
    SYMBIONT_KEY_ADMINS: keyAdmins(env),
    SYMBIONT_LEDGER_CONTROL_TO: env['SYMBIONT_LEDGER_CONTROL_TO'] || CONTROL_READERS.join(','),
    // The ledger's full stream on a channel the key manager creates at its first start (issue 12 "Channels").
    SYMBIONT_LEDGER_CHANNEL: env['SYMBIONT_LEDGER_CHANNEL'] || LEDGER_CHANNEL,
    SYMBIONT_KEY_CHANNELS: keyChannels(env),
    // The SOC stream: one copy per finding on the channel whose durables NATS grants every analyst.
    BULWARK_INCIDENT_CHANNEL: SOC_CHANNEL,
    ...(ownSigning ? { BULWARK_SCHEMAPIN_SIGNING_KEY: ensureToolsProviderKey(home), BULWARK_SCHEMAPIN_DOMAIN: env['BULWARK_SCHEMAPIN_DOMAIN'] || DEFAULT_TOOLS_DOMAIN } : {}),
  };
}

/**
 * The ledger's genesis key (hex): svc.audit-ledger's version 1 in the key manager's store, the
 * key `bulwark init` wrote to audit-ledger.vkey. Later versions are not here (the ledger keeps its
 * own), and they need not be: they are in the chain.
 */
async function ledgerGenesisKey(store: FileKeyStore): Promise<string> {
  const first = (await store.list(ServicePrincipals.audit)).find((i) => i.kind === 'ed25519' && i.version === 1);
  if (first === undefined) throw new BulwarkError('E_CUSTODY', `${store.dir} holds no version-1 key of ${ServicePrincipals.audit}: run bulwark init`, { principal: ServicePrincipals.audit });
  return Buffer.from(first.publicKey).toString('hex');
}

function serviceEnv(base: NodeJS.ProcessEnv, metricsPort: number): NodeJS.ProcessEnv {
  return { ...base, [METRICS_PORT_ENV]: String(metricsPort) };
}

/** Waits until `specs` are ready (every probe until `deadline`); fails at once if a service exits or the operator stops. */
async function waitReady(bus: Bus, state: RunState, specs: readonly ServiceSpec[], supervisor: Supervisor, stop: Promise<NodeJS.Signals>, deadline: number, timeoutMs: number, logsDir: string): Promise<ServiceStatus[]> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  for (;;) {
    const last = await Promise.race([probeServices(bus, state, specs), supervisor.failed]);
    if (last.every((s) => s.ready)) return last;
    if (stopped) throw new Interrupted();
    if (Date.now() > deadline) {
      const waiting = last.filter((s) => !s.ready).map((s) => `${s.name} (${s.reason})`);
      throw new BulwarkError('E_NOT_READY', `not ready after ${timeoutMs / 1000} s: ${waiting.join('; ')}; logs in ${logsDir}`);
    }
    await Promise.race([new Promise((r) => setTimeout(r, 250)), supervisor.failed, stop]);
  }
}

async function up(io: CommandIO, options: UpOptions): Promise<number> {
  const started = Date.now();
  const home = resolveHome(io.cwd, io.env, options.dir);
  const readyTimeoutMs = Number(options.readyTimeout) * 1000;
  if (!(readyTimeoutMs > 0)) throw new InputError('E_USAGE', `--ready-timeout ${JSON.stringify(options.readyTimeout)}: a positive number of seconds`);
  if (io.env['DATABASE_URL']) parseDatabaseUrl(io.env['DATABASE_URL']);
  const { created } = ensureHome(home);
  const release = lockHome(home);
  const signal = stopSignal();
  let nats: { url: string; init: InitReport; managed?: RunningNats } | undefined;
  let supervisor: Supervisor | undefined;
  let bus: Bus | undefined;
  try {
    io.stderr(`bulwark up: ${created ? 'created' : 'using'} home ${home.dir}\n`);
    await stopPreviousRun(home, (line) => io.stderr(`${line}\n`));
    // Custody (issue 12): the key manager's keys under its KEK file, or on the HSM chosen at the home's first start.
    const custody = chooseCustody(home, { keyStore: options.keyStore ?? (io.env[KEY_STORE_TYPE_ENV] || undefined), hsmConfig: options.hsmConfig ?? (io.env[KEY_STORE_TYPE_ENV] === 'hsm' ? io.env[HSM_CONFIG_ENV] : undefined) }, io.cwd, io.env);
    ensureDevelopmentKek(io, home);
    ensureKeyManagerKek(io, home);
    const databaseUrl = io.env['DATABASE_URL'] || homeDatabaseUrl(home);
    const withAdmin = upEnvironment(io.env, databaseUrl, home);
    const kmEnv = keyManagerEnvironment(home, withAdmin);
    // Init fills the key manager's store only; the others get copies of their own keys below, and never the HSM.
    await migrateLegacyKeys(io, home, homeEnvironment(home, withoutHsm(withAdmin)), kmEnv);
    nats = await startNats(io, kmEnv, home, options);
    const { config: kmConfig, sources: kmSources } = loadConfig({ env: kmEnv, cwd: io.cwd });
    const km = await openCustodyStore(kmConfig, createCryptoProvider(kmConfig.security.crypto_provider, `security.crypto_provider (${kmSources['security.crypto_provider']})`), kmEnv, io.cwd, resolve(io.cwd, home.keyManagerKeysDir));
    let admin: FileKeyStore;
    let specs: { spec: ServiceSpec; entry: string; metricsPort: number; keys: NodeJS.ProcessEnv }[];
    try {
      admin = await exportAdminDirectory(km.store, home, homeEnvironment(home, withoutHsm(withAdmin)), io.cwd);
      io.stderr(
        `bulwark up: keys ${nats.init.alreadyInitialised ? 'kept' : 'created'} in the key manager's store ${home.keyManagerKeysDir}${custody.kind === 'hsm' ? ` (wrapped by the HSM's key; the root in the token, ${custody.hsmConfig})` : ''}, the administrator's in ${home.adminDir} (ledger verifier key ${home.adminDir}/audit-ledger.vkey); ` +
          `NATS ${nats.managed === undefined ? 'from NATS_URL' : 'started (nats-server, operator mode, JetStream in the home)'} at ${redactUrl(nats.url)}\n`,
      );
      // <home>/admin/root.pub exists now: the services' environment pins it.
      const store = km.store;
      // Every reader starts the ledger's chain from its genesis key and follows its rotations from there.
      const serviceBase = homeEnvironment(home, { ...withAdmin, NATS_URL: nats.url, BULWARK_LEDGER_PUBLIC_KEY: withAdmin['BULWARK_LEDGER_PUBLIC_KEY'] || (await ledgerGenesisKey(store)) });
      specs = await Promise.all(
        SERVICES.map(async (spec) => ({ spec, entry: serviceEntryPoint(spec), metricsPort: await freePort(), keys: await serviceKeyEnvironment(store, home, spec, serviceBase, io.cwd) })),
      );
    } finally {
      // The key manager process opens its store itself; up keeps no session on the token.
      km.close();
    }
    const state: RunState = {
      format: 'bulwark-up/v1',
      pid: process.pid,
      started: new Date(started).toISOString(),
      nats: { url: nats.url, managed: nats.managed !== undefined, ...(nats.managed?.process.pid === undefined ? {} : { pid: nats.managed.process.pid }) },
      database: { kind: parseDatabaseUrl(databaseUrl).backend === 'postgres' ? 'postgres' : 'pglite', url: databaseUrl },
      admin: ADMIN_PRINCIPAL,
      services: specs.map((s) => ({ name: s.spec.name, principal: s.spec.principal, pid: undefined, metricsPort: s.metricsPort, restarts: 0 })),
    };
    const running = new Supervisor({
      services: specs.map((s) => ({ spec: s.spec, entry: s.entry, env: serviceEnv(s.keys, s.metricsPort) })),
      logsDir: home.logsDir,
      say: (line) => io.stderr(`${line}\n`),
      onChange: () => {
        for (const p of running.pids()) {
          const entry = state.services.find((s) => s.name === p.name)!;
          entry.pid = p.pid;
          entry.restarts = p.restarts;
        }
        try {
          writeRunState(home, state);
        } catch (error) {
          // The home went away under us (deleted): say so, keep supervising; the stop still cleans up.
          io.stderr(`bulwark up: cannot write ${home.stateFile}: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      },
    });
    supervisor = running;
    writeRunState(home, state);
    bus = await connectAsOperator(admin, nats.url, 'bulwark-up');
    // In stages: the services that replay the ledger at start need it answering first.
    const deadline = Date.now() + readyTimeoutMs;
    for (const stage of startStages(SERVICES)) {
      running.start(stage.map((s) => s.name));
      await waitReady(bus, state, stage, running, signal.promise, deadline, readyTimeoutMs, home.logsDir);
    }
    const statuses = await waitReady(bus, state, SERVICES, running, signal.promise, deadline, readyTimeoutMs, home.logsDir);
    running.markStarted();
    io.stdout(statusTable(statuses));
    io.stdout(
      `\nBulwark is up in ${((Date.now() - started) / 1000).toFixed(1)} s: NATS ${redactUrl(nats.url)}, database ${state.database.kind} (${maskDatabaseUrl(databaseUrl)}), logs in ${home.logsDir}.\n` +
        `Try \`bulwark status --dir ${home.dir}\` and \`bulwark demo --dir ${home.dir}\` in another terminal; Ctrl-C stops everything.\n`,
    );
    const received = await signal.promise;
    io.stderr(`bulwark up: ${received}: stopping the services, then NATS\n`);
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof Interrupted) {
      io.stderr('bulwark up: interrupted before the services were ready: stopped\n');
      return ExitCode.failure;
    }
    throw error;
  } finally {
    signal.dispose();
    await bus?.close().catch(() => undefined);
    await supervisor?.stop();
    await nats?.managed?.stop();
    removeRunState(home);
    release();
  }
}

/** `bulwark up [--dir D] [--nats-port N] [--ready-timeout S] [--key-store hsm --hsm-config F]` (also `npm start`). */
export const registerUpCommand: RegisterCommand = (program, io, setExitCode) => {
  program
    .command('up')
    .description('start Bulwark from a home directory: NATS (unless NATS_URL is set), bulwark init, every service as its own process; Ctrl-C stops everything')
    .option('--dir <home>', 'the home directory (default: $SYMBIONT_HOME, else ./.bulwark)')
    .option('--nats-port <port>', 'port of the nats-server it starts (default: a free one)')
    .option('--ready-timeout <seconds>', 'how long the services may take to be ready', '120')
    .option('--key-store <kind>', "the key manager's custody at the home's first start: file (its KEK file) or hsm (the root in the token of --hsm-config, provisioned by bulwark keys hsm provision); recorded in the home (default: file, or $SYMBIONT_KEY_STORE_TYPE)")
    .option('--hsm-config <file>', 'the HSM configuration (TOML) for --key-store hsm (or $SYMBIONT_HSM_CONFIG_PATH)')
    .action(async (options: UpOptions) => setExitCode(await up(io, options)));
};
