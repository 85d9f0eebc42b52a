/**
 * The one boot of a service process (`bulwark-<name>`): every service's main is this plus its
 * own settings and its own start. In order: configuration (@bulwark/config), the logger, the
 * crypto provider, the pinned root (required), the service's own settings, the key store (the
 * wrapped file store under the KEK, unless the service opens its own), its identity, telemetry
 * (OTLP, Prometheus `/metrics`, `/health`), the bus as its own NATS user when the store holds
 * one, the signed directory; then the service runs until SIGTERM, SIGINT or the end of its
 * supervisor, and everything is closed in the reverse order it was opened.
 */
import { checkReadiness, connectBus, genesisFromDirectory, KvDirectory, LEDGER_PRINCIPAL, type Bus, type Namespace } from '@bulwark/bus';
import { loadConfig, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey, type Identity, type KeyStore } from '@bulwark/keystore';
import { busCredentialsFor } from '@bulwark/nats-auth';
import { createLogger, startServiceTelemetry, type HealthReport, type Logger, type ServiceTelemetry } from '@bulwark/telemetry';
import { exitCodeOf, failureLine, ServiceExit } from './exit.js';
import { keyRotationIntervalMs, startServiceKeys, withPreviousKeys, type ServiceKeys } from './rotation.js';
import { keyRotationCheckMs } from './rotation-check.js';
import { settleStagedAtStart } from './rotation-start.js';
import { watchSupervisor } from './supervisor-watch.js';

/** What the boot has before the key store opens: enough to parse settings and open a store. */
export interface EarlyContext {
  readonly name: string;
  readonly config: BulwarkConfig;
  readonly log: Logger;
  readonly crypto: CryptoProvider;
  /** The pinned root (keys.root_public_key): the only key directory entries are trusted by. */
  readonly rootPublicKey: Uint8Array;
  readonly env: NodeJS.ProcessEnv;
}

/** Everything a service starts with. */
export interface ServiceContext<S> extends EarlyContext {
  readonly settings: S;
  readonly store: KeyStore;
  readonly identity: Identity;
  readonly telemetry: ServiceTelemetry;
  readonly bus: Bus;
  readonly directory: KvDirectory;
  /** Whether the bus connection authenticated as the principal's own NATS user. */
  readonly authenticated: boolean;
  /**
   * The ledger's genesis key, where every verified reader starts the chain (it follows the
   * ledger's own rotations from there): BULWARK_LEDGER_PUBLIC_KEY (hex or base64), the ledger's
   * first key; without it, the ledger's directory entry while that is its version 1. E_CONFIG
   * without either, and once the ledger has rotated (its entry is a later version) with no pin:
   * a later key is not where the chain starts, and the entry alone cannot say which key was first.
   */
  ledgerPublicKey(): Uint8Array;
  /** A clean-up for something the service opened: run at stop after the service's own stop, last registered first. */
  defer(cleanup: () => Promise<unknown> | void): void;
  /**
   * The service moved its bus connection to another NATS user of its own (the key manager rotating
   * its identity: `Bus.switchUser`, the user stored as `version`): the credential renewal follows it.
   */
  ownCredentialsChanged(credentials: { jwt: string; seed: Uint8Array }, version: number): void;
  /**
   * Called after each of its own rotations switched `identity` in place (`rotatesOwnKeys`): for
   * what the service caches under the old keys (its command clients' sessions: `reset()`).
   */
  onKeysRotated(listener: (version: number) => void): void;
}

/** A started service. */
export interface RunningService {
  /** Stops it (drains, publishes what it queued); the boot then closes what it opened. */
  stop(): Promise<void>;
  /** Its `/health` report (default: the bus's readiness: NATS connected, streams present). */
  health?(): Promise<HealthReport>;
  /**
   * A fresh JWT for its own NATS user, for a service that issues them (the key manager: it
   * answers `keys.renew` and cannot ask itself); default: `bulwark.keys.renew` to the key manager.
   */
  renewOwnCredentials?(natsUser: string): Promise<{ natsJwt: string }>;
}

export interface ServiceDefinition<S> {
  /** `audit-ledger`, `policy`, ...: the logger's and telemetry's service, the stderr prefix `bulwark-<name>:`. */
  readonly name: string;
  /** The principal the process runs as (its identity and its NATS user). */
  readonly principal: string;
  /** Its own settings, checked before any key is opened (an InputError here exits 2). */
  readonly settings?: (early: EarlyContext) => S | Promise<S>;
  /** Opens its key store (default: the wrapped file store at keys.dir under the KEK). */
  readonly openStore?: (early: EarlyContext & { readonly settings: S }) => Promise<KeyStore>;
  /** Its NATS credentials from its store (default: busCredentialsFor, from a file key store; none from another store). */
  readonly busCredentials?: (store: KeyStore) => Promise<BusCredentials>;
  /** The bus namespace (tests' isolated deployments); the root namespace when undefined. */
  readonly namespace?: (settings: S) => Namespace | undefined;
  /**
   * Rotates its own identity on the interval (`security.key_rotation_interval_days`) while it
   * runs, in operator mode (rotation.ts). Only for a service whose every use of its keys reads
   * the live `identity` (not the key manager, which certifies itself; the ledger signs with the
   * key its chain puts in force, services/audit-ledger own-keys.ts).
   */
  readonly rotatesOwnKeys?: boolean;
  /** Starts the service on the opened bus and directory. */
  readonly start: (context: ServiceContext<S>) => Promise<RunningService>;
}

/** Why a service stopped: a signal, or its supervisor went away. */
export type StopReason = NodeJS.Signals | 'supervisor-gone';

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Resolves when the service must stop (default: SIGTERM, SIGINT, or the supervisor's end). */
  readonly stopWhen?: Promise<StopReason>;
}

export type BusCredentials = Awaited<ReturnType<typeof busCredentialsFor>>;

/** The NATS credentials of `principal` in the store, when it is a file store that holds them (a dev server without authentication needs none). */
async function credentialsFor(store: KeyStore, principal: string): Promise<BusCredentials> {
  return store instanceof FileKeyStore ? busCredentialsFor(store, principal) : {};
}

/**
 * SIGTERM or SIGINT (handled once the service runs: before, they end the process as by
 * default), or the supervisor's end. A supervisor that goes away while the service is still
 * starting gets it stopped as soon as it runs, or ended after BOOT_GRACE_MS if its start hangs.
 */
function stopSignals(name: string, env: NodeJS.ProcessEnv): { reason: Promise<StopReason>; listen(): void; dispose(): void } {
  const watch = watchSupervisor(env);
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<StopReason>((resolve) => (onSignal = resolve));
  let running = false;
  let grace: NodeJS.Timeout | undefined;
  void watch?.gone.then(() => {
    if (running) return;
    grace = setTimeout(() => {
      process.stderr.write(`bulwark-${name}: the supervisor went away while the service was starting, and it did not start within ${BOOT_GRACE_MS / 1000} s\n`);
      process.exit(ServiceExit.failure);
    }, BOOT_GRACE_MS);
    grace.unref();
  });
  return {
    reason: watch === undefined ? signal : Promise.race([signal, watch.gone.then((): StopReason => 'supervisor-gone')]),
    listen() {
      running = true;
      if (grace !== undefined) clearTimeout(grace);
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    },
    dispose() {
      if (grace !== undefined) clearTimeout(grace);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      watch?.dispose();
    },
  };
}

/** How long a service whose supervisor is gone may take to finish starting (then stop cleanly) before it is ended. */
export const BOOT_GRACE_MS = 10_000;

/** Boots, runs and stops one service; resolves with the process's exit code (0 clean stop, 1 failure, 2 bad configuration) after the one stderr line of a failure. */
export async function runService<S = undefined>(definition: ServiceDefinition<S>, options: RunOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  let stop: ReturnType<typeof stopSignals> | undefined;
  try {
    stop = options.stopWhen === undefined ? stopSignals(definition.name, env) : { reason: options.stopWhen, listen: () => undefined, dispose: () => undefined };
    const { config } = loadConfig({ env });
    const log = createLogger({ service: definition.name, level: config.log.level });
    const crypto = createCryptoProvider(config.security.crypto_provider);
    const pinned = config.keys.root_public_key;
    if (pinned === undefined) {
      throw new InputError('E_CONFIG', `${definition.name}: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset: without the pinned root no directory entry can be trusted`, {});
    }
    const early: EarlyContext = { name: definition.name, config, log, crypto, rootPublicKey: parseRootPublicKey(pinned, 'keys.root_public_key'), env };
    const settings = (definition.settings === undefined ? undefined : await definition.settings(early)) as S;
    const rotationIntervalMs = keyRotationIntervalMs(config.security.key_rotation_interval_days, env);
    const rotationCheckMs = keyRotationCheckMs(rotationIntervalMs, env);
    const store =
      definition.openStore === undefined
        ? await FileKeyStore.open({ dir: config.keys.dir ?? DEFAULT_KEY_DIR, wrapper: loadKek({ provider: crypto, env, kekFile: config.keys.kek_file }), provider: crypto })
        : await definition.openStore({ ...early, settings });
    const loaded = await loadIdentity(store, definition.principal);
    const identity = definition.rotatesOwnKeys === true ? await withPreviousKeys(store, loaded) : loaded;

    // Telemetry first: the bus's command spans and counters report to its global providers.
    const telemetry = await startServiceTelemetry({ service: definition.name, env });
    cleanups.push(() => telemetry.close());
    const credentials = await (definition.busCredentials ?? ((s: KeyStore) => credentialsFor(s, definition.principal)))(store);
    const namespace = definition.namespace?.(settings);
    const bus = await connectBus({ url: config.nats.url, name: `${definition.principal}#${process.pid}`, ...(namespace === undefined ? {} : { namespace }), ...credentials });
    cleanups.push(() => bus.close());
    const directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey: early.rootPublicKey,
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every peer will be refused'),
    });
    cleanups.push(() => directory.stop());
    const ledgerPublicKey = (): Uint8Array => {
      const text = env['BULWARK_LEDGER_PUBLIC_KEY'];
      if (text !== undefined) return parseRootPublicKey(text, 'BULWARK_LEDGER_PUBLIC_KEY');
      const genesis = genesisFromDirectory(directory);
      if ('key' in genesis) return genesis.key;
      if (genesis.keyVersion === undefined) throw new InputError('E_CONFIG', `${definition.name}: no directory entry for ${LEDGER_PRINCIPAL} and no BULWARK_LEDGER_PUBLIC_KEY: ledger events cannot be verified`, {});
      throw new InputError(
        'E_CONFIG',
        `${definition.name}: ${LEDGER_PRINCIPAL}'s directory entry is version ${genesis.keyVersion}, not its first: set BULWARK_LEDGER_PUBLIC_KEY to the ledger's genesis key (version 1, \`bulwark init\`'s audit-ledger.vkey), where every reader starts the chain`,
        { setting: 'BULWARK_LEDGER_PUBLIC_KEY', keyVersion: genesis.keyVersion },
      );
    };
    // Its NATS credentials renewed at half-life (started below, once the service runs); a service that moves its own user says so here.
    let renewal: ServiceKeys | undefined;
    let movedTo: { credentials: { jwt: string; seed: Uint8Array }; version: number } | undefined;
    const rotatedListeners: ((version: number) => void)[] = [];
    const context: ServiceContext<S> = {
      ...early,
      settings,
      store,
      identity,
      telemetry,
      bus,
      directory,
      authenticated: credentials.credentials !== undefined,
      ledgerPublicKey,
      defer: (cleanup) => void cleanups.push(cleanup),
      ownCredentialsChanged: (moved, version) => {
        if (renewal === undefined) movedTo = { credentials: moved, version };
        else renewal.follow(moved, version);
      },
      onKeysRotated: (listener) => void rotatedListeners.push(listener),
    };
    // A rotation staged before this start (a stop while it was out) is settled first: the start may
    // wait on requests that only the settled identity gets answered.
    let busCredentials = credentials.credentials;
    if (busCredentials !== undefined && definition.rotatesOwnKeys === true && store instanceof FileKeyStore) {
      busCredentials = await settleStagedAtStart({ bus, store, identity, directory, crypto, log, credentials: busCredentials });
    }
    const service = await definition.start(context);
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await service.stop();
    });
    // Its NATS credentials renewed at half-life (a JWT without an expiry needs none), and its identity rotated when due.
    if (busCredentials !== undefined) {
      const rotation = definition.rotatesOwnKeys === true ? { rotation: { intervalMs: rotationIntervalMs, checkMs: rotationCheckMs } } : {};
      const onSwitched = (version: number): void => {
        for (const listener of rotatedListeners) {
          try {
            listener(version);
          } catch (error) {
            log.warn({ err: error, version }, 'a listener of the identity switch failed');
          }
        }
      };
      renewal = startServiceKeys({ bus, store, credentials: busCredentials, identity, directory, crypto, log, ...rotation, onSwitched, ...(service.renewOwnCredentials === undefined ? {} : { renew: service.renewOwnCredentials }) });
      cleanups.push(() => renewal?.stop());
      if (movedTo !== undefined) renewal.follow(movedTo.credentials, movedTo.version);
    }
    telemetry.setHealth(service.health === undefined ? () => checkReadiness(bus) : () => service.health!());
    log.info({ metrics: telemetry.metricsUrl, otlp: telemetry.otlp }, `${definition.name}: telemetry`);

    stop.listen();
    // Credentials that expired without a renewal end the run as a failure (exit 1, one line).
    const reason = await (renewal === undefined ? stop.reason : Promise.race([stop.reason, renewal.expired]));
    log.info({ signal: reason }, `${definition.name}: stopping`);
    stopped = true;
    await service.stop();
    log.info(`${definition.name}: stopped`);
    return ServiceExit.ok;
  } catch (error) {
    process.stderr.write(failureLine(definition.name, error));
    return exitCodeOf(error);
  } finally {
    stop?.dispose();
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // Closing is best effort: what failed to close is gone with the process.
      }
    }
  }
}

/** A service process's main: runs the service and sets the exit code (the event loop then drains). */
export function serviceMain<S>(definition: ServiceDefinition<S>): void {
  void runService(definition).then((code) => {
    process.exitCode = code;
  });
}

/** The bus's readiness combined with a service's own (`undefined` when it has nothing against). */
export async function readinessWith(bus: Bus, own: () => string | undefined): Promise<HealthReport> {
  const ready = await checkReadiness(bus);
  const reason = own();
  return reason === undefined ? ready : { ...ready, ready: false, reason: [ready.reason, reason].filter((r) => r !== '').join('; ') };
}
