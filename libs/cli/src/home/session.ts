import { resolve } from 'node:path';
import { CommandClient, connectBus, KvDirectory, RejectionReporter, ROOT_NAMESPACE, type Bus, type Namespace } from '@bulwark/bus';
import { loadConfig, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey, type Identity } from '@bulwark/keystore';
import { busCredentialsFor, OPERATOR_USER } from '@bulwark/nats-auth';

/** A principal connected to a running system: its keys, the bus, the verified directory. */
export interface Session {
  readonly config: BulwarkConfig;
  readonly provider: CryptoProvider;
  readonly store: FileKeyStore;
  readonly identity: Identity;
  readonly bus: Bus;
  readonly directory: KvDirectory;
  readonly commands: CommandClient;
  close(): Promise<void>;
}

export interface SessionOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly principal: string;
  /** The connection's name as the server shows it. */
  readonly name: string;
  readonly namespace?: Namespace;
  readonly natsUrl?: string;
  readonly configFile?: string;
  /** The principal's key store, already open (the key manager's HSM store); default the configured directory under the KEK. */
  readonly store?: FileKeyStore;
}

/**
 * Connects as `principal`: configuration (a home's environment fills what is unset), the
 * principal's keys from the file key store under the KEK, the directory from NATS KV checked
 * against the pinned root key.
 */
export async function openSession(options: SessionOptions): Promise<Session> {
  const { config, sources } = loadConfig({ env: options.env, cwd: options.cwd, ...(options.configFile === undefined ? {} : { configPath: options.configFile }) });
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) throw new InputError('E_CONFIG', 'no pinned root key: set SYMBIONT_ROOT_PUBLIC_KEY (or [keys] root_public_key), or use a home (--dir) that bulwark init wrote root.pub in', {});
  const rootPublicKey = parseRootPublicKey(pinned, `keys.root_public_key (${sources['keys.root_public_key']})`);
  const store =
    options.store ?? (await FileKeyStore.open({ dir: resolve(options.cwd, config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: loadKek({ provider, env: options.env, kekFile: config.keys.kek_file, cwd: options.cwd }), provider }));
  const identity = await loadIdentity(store, options.principal);
  // Its own NATS user when `bulwark init` made one (DESIGN §3a).
  const bus = await connectBus({
    url: options.natsUrl ?? config.nats.url,
    name: options.name,
    namespace: options.namespace ?? ROOT_NAMESPACE,
    maxReconnectAttempts: 0,
    connectTimeoutMs: 3000,
    ...(await busCredentialsFor(store, options.principal)),
  });
  try {
    const directory = await KvDirectory.open(bus, { provider, rootPublicKey });
    const rejections = new RejectionReporter({ reporter: identity.id, publish: async () => undefined });
    const commands = new CommandClient(bus, { sessions: { provider, self: { id: identity.id, x25519: identity.x25519 }, directory }, rejections });
    return {
      config,
      provider,
      store,
      identity,
      bus,
      directory,
      commands,
      async close() {
        await directory.stop().catch(() => undefined);
        await bus.close();
      },
    };
  } catch (e) {
    await bus.close();
    throw e;
  }
}

const decoder = new TextDecoder();

/** A JSON command over the session (a read: retried once on a fresh session after a timeout). */
export async function callJson<T>(session: Session, subject: Parameters<CommandClient['request']>[0], body: unknown, timeoutMs = 5000): Promise<T> {
  const reply = await session.commands.request(subject, Buffer.from(JSON.stringify(body), 'utf8'), { timeoutMs, idempotent: true });
  return JSON.parse(decoder.decode(reply)) as T;
}

/** The key store of a configuration (a home's environment), opened under its KEK. */
export async function openKeyStore(env: NodeJS.ProcessEnv, cwd: string): Promise<{ config: BulwarkConfig; provider: CryptoProvider; store: FileKeyStore }> {
  const { config, sources } = loadConfig({ env, cwd });
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const kek = loadKek({ provider, env, kekFile: config.keys.kek_file, cwd });
  return { config, provider, store: await FileKeyStore.open({ dir: resolve(cwd, config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: kek, provider }) };
}

/**
 * A bus connection as the operator's NATS user (`bulwark-operator`: `$SRV.>`, stream and
 * directory administration), which `bulwark up`, `status` and enrolment use.
 */
export async function connectAsOperator(store: FileKeyStore, url: string, name: string, namespace: Namespace = ROOT_NAMESPACE): Promise<Bus> {
  return connectBus({ url, name, namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...(await busCredentialsFor(store, OPERATOR_USER)) });
}
