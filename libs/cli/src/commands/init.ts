import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { formatVerifierKey, verifierKey } from '@bulwark/audit-ledger';
import {
  connectBus,
  directoryBucketName,
  ensureStreams,
  streamSpecs,
  openDirectoryBucket,
  publishDirectoryEntry,
  ROOT_NAMESPACE,
  ServicePrincipals,
  type Bus,
  type Namespace,
  type PublishOutcome,
} from '@bulwark/bus';
import { busLimits, loadConfig, redactUrl, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider, toBase64, toHex, type CryptoProvider } from '@bulwark/crypto';
import type { SignedDirectoryEntry } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';
import {
  DEFAULT_KEY_DIR,
  KeyStoreError,
  ROOT_KEY_OWNER,
  ensureRootKey,
  loadIdentity,
  openStoreRootSigner,
  parseRootPublicKey,
  requirePrincipalId,
  writeRootPin,
  type FileKeyStore,
  type KeyKind,
  type RootSigner,
} from '@bulwark/keystore';
import { enrollPrincipal, ensureNatsAuthority, ensureNatsUser, OPERATOR_USER, writeNatsServerConfig, type NatsCredentials } from '@bulwark/nats-auth';
import { withKeyStoreChoice } from '../home/custody.js';
import { openCustodyStore, tokenStoreRoot, type CustodyStore } from '../home/custody-store.js';
import { saveSignedEntry } from '../home/entries.js';
import { HOME_MARKER, homeAt } from '../home/home.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { DEFAULT_LEDGER_ORIGIN, ORIGIN_ENV, PUBLIC_KEY_FILE } from './audit-source.js';

export interface InitOptions {
  readonly dir?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly json?: boolean;
  readonly file?: string;
  readonly admin?: string;
  readonly natsConfigDir?: string;
  readonly natsListen?: string;
  readonly natsStoreDir?: string;
  readonly natsMonitorPort?: string;
  /** `file` or `hsm` (else `security.hsm_enabled`, SYMBIONT_KEY_STORE_TYPE). */
  readonly keyStore?: string;
  /** The HSM configuration (else `security.hsm_config_path`, SYMBIONT_HSM_CONFIG_PATH). */
  readonly hsmConfig?: string;
}

/** The first administrator `bulwark init` enrols (an analyst; add it to `policy.admins`). */
export const DEFAULT_ADMIN = 'analyst.admin';
const NAMESPACE_NAME = /^[A-Za-z0-9_-]{1,40}$/;

/**
 * `--namespace NS` puts the directory bucket at `NS_BULWARK_DIRECTORY` (and subjects under
 * `NS.`), as the bus's namespaces do for tests and for parallel deployments on one server.
 */
export function namespaceFromName(name: string): Namespace {
  if (!NAMESPACE_NAME.test(name)) {
    throw new InputError('E_USAGE', `--namespace ${JSON.stringify(name)}: use 1-40 letters, digits, _ and -`, { namespace: name });
  }
  return { streamPrefix: `${name}_`, subjectPrefix: `${name}.` };
}

interface PrincipalReport {
  readonly id: string;
  readonly version: number;
  readonly created: readonly KeyKind[];
  readonly ed25519PublicKey: string;
  readonly x25519PublicKey: string;
  readonly notBefore: string;
  readonly notAfter: string;
  published: PublishOutcome | null;
}

interface PublishReport {
  readonly url: string;
  bucket: string;
  ok: boolean;
  error?: string;
}

/**
 * A home's keys are made by `bulwark up`, in the key manager's store only (issue 12 "Custody"):
 * init by hand into another directory of a home (its old `<home>/keys`, `<home>/admin`) would
 * leave a root under the home KEK, where every command and service can open it.
 */
function refuseHomeKeyDir(dir: string): void {
  const home = [dirname(dir), dirname(dirname(dir))].find((d) => existsSync(join(d, HOME_MARKER)));
  if (home === undefined || dir === homeAt(home).keyManagerKeysDir) return;
  throw new InputError(
    'E_USAGE',
    `bulwark init --dir ${dir}: that is inside the Bulwark home ${home}, whose keys bulwark up makes in ${homeAt(home).keyManagerKeysDir} (the key manager's store, under its own KEK); run bulwark up --dir ${home}, or init a directory outside the home`,
    { dir, home },
  );
}

/** Existing identities without a root key: a new root would silently re-sign them. */
async function refuseOrphanedIdentities(store: FileKeyStore): Promise<void> {
  const keys = await store.list();
  if (keys.length > 0 && !keys.some((k) => k.principal === ROOT_KEY_OWNER && k.kind === 'ed25519')) {
    throw new KeyStoreError(
      'E_KEY_NO_ROOT',
      `key directory ${store.dir} holds ${keys.length} keys but no root key; init will not create a new root over existing identities (restoring a root key is a key-manager operation)`,
      { dir: store.dir },
    );
  }
}

/**
 * The store's root signer: the token's (an HSM store never holds a root file: one there is a
 * store of another custody, and a token root other than the one the store's `root.pub` names
 * would re-sign its identities), else the root file, created once.
 */
async function custodyRoot(custody: CustodyStore, provider: CryptoProvider): Promise<{ root: RootSigner; created: boolean }> {
  const { store } = custody;
  if (custody.kind === 'file') {
    await refuseOrphanedIdentities(store);
    const { root, created } = await ensureRootKey(store, provider);
    root.keyPair.secretKey.fill(0);
    return { root: await openStoreRootSigner(store, provider), created };
  }
  return { root: (await tokenStoreRoot(custody, provider, 'init', 'init into an empty directory')).root, created: false };
}

async function publishAll(bus: Bus, entries: readonly SignedDirectoryEntry[], reports: PrincipalReport[], config: BulwarkConfig): Promise<void> {
  // The writer sets the bucket's limits ([bus] directory_*), creating or reconciling them.
  const kv = await openDirectoryBucket(bus, busLimits(config).directory);
  for (const [i, entry] of entries.entries()) {
    const published = await publishDirectoryEntry(bus, entry, kv);
    reports[i]!.published = published.outcome;
  }
}

/** `host:port` of `--nats-listen`, else the host and port of the (first) NATS URL clients use. */
export function listenAddress(listen: string | undefined, url: string): { host: string; port: number } {
  const text = listen ?? (/^[a-z]+:\/\/(?:[^@/]*@)?([^/,]+)/i.exec(url.split(',')[0]!.trim())?.[1] ?? '127.0.0.1:4222');
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text);
  const port = Number(match?.[2] ?? 4222);
  if (match === null || port < 1 || port > 65535) {
    throw new InputError('E_USAGE', `--nats-listen ${JSON.stringify(text)}: use host:port, e.g. 127.0.0.1:4222`, { listen: text });
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

function monitorPort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) throw new InputError('E_USAGE', `--nats-monitor-port ${JSON.stringify(text)}: not a port (1-65535)`, { port: text });
  return port;
}

interface NatsReport {
  readonly configFile: string;
  readonly listen: string;
  readonly operator: string;
  readonly account: string;
  readonly systemAccount: string;
  readonly createdKeys: readonly string[];
  readonly users: readonly { readonly name: string; readonly created: boolean; readonly issued: boolean }[];
}

export async function init(outerIO: CommandIO, options: InitOptions, setExitCode: (code: number) => void): Promise<void> {
  const io: CommandIO = { ...outerIO, env: withKeyStoreChoice(outerIO.env, options, outerIO.cwd) };
  const { config, sources } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const namespace = options.namespace === undefined ? ROOT_NAMESPACE : namespaceFromName(options.namespace);
  // Every option is checked before anything is created.
  const url = options.nats ?? config.nats.url;
  const listen = listenAddress(options.natsListen, url);
  const monitor = options.natsMonitorPort === undefined ? undefined : monitorPort(options.natsMonitorPort);
  const adminId = requirePrincipalId(options.admin ?? DEFAULT_ADMIN, '--admin').id;
  if (!adminId.startsWith('analyst.')) throw new InputError('E_USAGE', `--admin ${adminId}: the administrator must be an analyst (analyst.<name>)`, { admin: adminId });
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const dir = resolve(io.cwd, options.dir ?? config.keys.dir ?? DEFAULT_KEY_DIR);
  refuseHomeKeyDir(dir);
  // The KEK (or the token) first: without one nothing is created, not even the directory.
  const custody = await openCustodyStore(config, provider, io.env, io.cwd, dir);
  let signer: RootSigner | undefined;
  try {
    const { store } = custody;
    const opened = await custodyRoot(custody, provider);
    signer = opened.root;
    const rootCreated = opened.created;
    // The NATS authority first (DESIGN §3a): every user below is signed by its account.
    const authority = await ensureNatsAuthority(store, provider);
    const reports: PrincipalReport[] = [];
    const signed: SignedDirectoryEntry[] = [];
    const users: { name: string; created: boolean; issued: boolean }[] = [];
    let adminCredentials: NatsCredentials | undefined;
    for (const [id, admin] of [...Object.values(ServicePrincipals).map((p) => [p, false] as const), [adminId, true] as const]) {
      const e = await enrollPrincipal({ store, provider, root: signer, id, admin, namespace, validityDays: config.security.key_rotation_interval_days });
      signed.push(e.signed);
      users.push({ name: id, created: e.natsUserCreated, issued: e.natsJwtIssued });
      if (admin) adminCredentials = e.credentials;
      reports.push({
        id,
        version: e.identity.version,
        created: e.createdKeys,
        ed25519PublicKey: toBase64(e.identity.ed25519.publicKey),
        x25519PublicKey: toBase64(e.identity.x25519.publicKey),
        notBefore: new Date(e.entry.notBefore).toISOString(),
        notAfter: new Date(e.entry.notAfter).toISOString(),
        published: null,
      });
    }
    adminCredentials?.seed.fill(0);
    const operatorUser = await ensureNatsUser(store, provider, OPERATOR_USER, namespace);
    users.push({ name: operatorUser.credentials.name, created: operatorUser.created, issued: operatorUser.issued });
    // Kept beside the keys: `bulwark recover` republishes them without the root key.
    for (const entry of signed) saveSignedEntry(store.dir, entry);
    const pinFile = await writeRootPin(store.dir, signer.publicKey);
    const ledgerKey = await writeLedgerVerifierKey(io, provider, store);
    const alreadyInitialised = !rootCreated && authority.created.length === 0 && reports.every((r) => r.created.length === 0) && users.every((u) => !u.created);

    const natsDir = resolve(io.cwd, options.natsConfigDir ?? join(store.dir, 'nats'));
    const configFile = await writeNatsServerConfig(natsDir, authority.authority, {
      host: listen.host,
      port: listen.port,
      // nats-server keeps its data in <store_dir>/jetstream.
      storeDir: resolve(io.cwd, options.natsStoreDir ?? natsDir),
      ...(monitor === undefined ? {} : { monitorPort: monitor }),
    });
    const nats: NatsReport = {
      configFile,
      listen: `${listen.host}:${listen.port}`,
      operator: authority.authority.operator.publicKey,
      account: authority.authority.account.publicKey,
      systemAccount: authority.authority.systemAccount.publicKey,
      createdKeys: authority.created,
      users,
    };

    const pinned = config.keys.root_public_key;
    const pinMismatch =
      pinned !== undefined && !provider.equal(parseRootPublicKey(pinned, 'keys.root_public_key'), signer.publicKey) ? sources['keys.root_public_key'] : undefined;

    const publish: PublishReport = { url: redactUrl(url), bucket: `${namespace.streamPrefix}BULWARK_DIRECTORY`, ok: false };
    let bus: Bus | undefined;
    try {
      // As the operator's user: the one that may create the streams and write the directory.
      const credentials = operatorUser.credentials;
      bus = await connectBus({ url, name: 'bulwark-init', namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, credentials, inboxPrefix: credentials.inboxPrefix });
      publish.bucket = directoryBucketName(bus);
      // The streams with the configured limits ([bus]): services may only read stream info.
      await ensureStreams(bus, streamSpecs(busLimits(config).streams));
      await publishAll(bus, signed, reports, config);
      publish.ok = true;
    } catch (error) {
      publish.error = redactUrl(error instanceof Error ? error.message : String(error)).split('\n')[0];
    } finally {
      operatorUser.credentials.seed.fill(0);
      await bus?.close();
    }
    const adminNotice = config.policy.admins.includes(adminId) ? undefined : adminId;

    const rootReport = {
      created: rootCreated,
      version: signer.version,
      location: signer.location,
      publicKeyBase64: toBase64(signer.publicKey),
      publicKeyHex: toHex(signer.publicKey),
      pinFile,
    };
    if (options.json) {
      const report = { dir: store.dir, keyStore: custody.kind, kekSource: store.kekSource, alreadyInitialised, root: rootReport, ledgerVerifierKey: ledgerKey, principals: reports, admin: { id: adminId, inPolicyAdmins: adminNotice === undefined }, nats, publish, pinMismatch: pinMismatch ?? null };
      io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      io.stdout(humanReport({ dir: store.dir, kekSource: store.kekSource, alreadyInitialised, root: rootReport, ledgerKey, reports, publish, nats, adminNotice }));
    }

    if (pinMismatch !== undefined) {
      io.stderr(`bulwark: warning: keys.root_public_key (${pinMismatch}) is not this root key; peers pinned to it will reject these directory entries\n`);
    }
    if (!publish.ok) setExitCode(ExitCode.failure);
  } finally {
    signer?.close();
    custody.close();
  }
}

/**
 * `<keys>/audit-ledger.vkey`: the ledger's C2SP verifier key (`<origin>+<key id>+<base64>`),
 * from svc.audit-ledger's version-1 Ed25519 key (its genesis key: the ledger's own rotations are
 * in its chain, and every reader follows them from there) and the ledger's origin
 * (`$SYMBIONT_LEDGER_ORIGIN`, else the service's default). `bulwark audit` commands read it from
 * there; `bulwark up` passes the same key to every service as BULWARK_LEDGER_PUBLIC_KEY.
 */
async function writeLedgerVerifierKey(io: CommandIO, provider: CryptoProvider, store: FileKeyStore): Promise<{ file: string; key: string }> {
  const genesis = await loadIdentity(store, ServicePrincipals.audit, 1);
  const origin = io.env[ORIGIN_ENV] || DEFAULT_LEDGER_ORIGIN;
  const key = formatVerifierKey(verifierKey(provider, origin, genesis.ed25519.publicKey));
  genesis.ed25519.secretKey.fill(0);
  genesis.x25519.secretKey.fill(0);
  const file = join(store.dir, PUBLIC_KEY_FILE);
  await writeFile(file, `${key}\n`, { mode: 0o644 });
  return { file, key };
}

function humanReport(r: {
  dir: string;
  kekSource: string;
  alreadyInitialised: boolean;
  root: { created: boolean; version: number; location: string; publicKeyBase64: string; publicKeyHex: string; pinFile: string };
  ledgerKey: { file: string; key: string };
  reports: readonly PrincipalReport[];
  publish: PublishReport;
  nats: NatsReport;
  adminNotice: string | undefined;
}): string {
  const width = Math.max(...r.reports.map((p) => p.id.length), 'root'.length);
  const lines = [
    r.alreadyInitialised
      ? `Key directory ${r.dir} is already initialised: no key was generated (KEK from ${r.kekSource}).`
      : `Key directory ${r.dir} (keys wrapped with AES-256-GCM, KEK from ${r.kekSource}):`,
    `  ${'root'.padEnd(width)}  ${r.root.created ? 'created' : 'kept   '}  ed25519 v${r.root.version}  (signs directory entries; ${r.root.location})`,
  ];
  for (const p of r.reports) {
    const state = p.created.length === 0 ? 'kept   ' : p.created.length === 2 ? 'created' : `completed (${p.created.join(', ')})`;
    lines.push(`  ${p.id.padEnd(width)}  ${state}  ed25519 + x25519 v${p.version}  valid until ${p.notAfter}`);
  }
  lines.push(
    '',
    `Root public key (Ed25519), written to ${r.root.pinFile}; pin it in every peer`,
    'as SYMBIONT_ROOT_PUBLIC_KEY or [keys] root_public_key (either encoding):',
    `  base64: ${r.root.publicKeyBase64}`,
    `  hex:    ${r.root.publicKeyHex}`,
    '',
    `Ledger verifier key (checkpoints and events; \`bulwark audit verify\` reads it from ${r.ledgerKey.file}):`,
    `  ${r.ledgerKey.key}`,
    '',
    `NATS (operator mode): operator ${r.nats.operator}, account BULWARK ${r.nats.account};`,
    `${r.nats.users.length} users (${r.nats.users.filter((u) => u.created).length} created, ${r.nats.users.filter((u) => u.issued).length} JWTs issued), server configuration for ${r.nats.listen} in`,
    `  ${r.nats.configFile}`,
    `  (start it with: nats-server -c ${r.nats.configFile})`,
    '',
    ...(r.adminNotice === undefined
      ? []
      : [`Administrator ${r.adminNotice}: add it to policy.admins (SYMBIONT_POLICY_ADMINS or [policy] admins) for the policy service to accept its changes.`, '']),
  );
  if (r.publish.ok) {
    const count = (o: PublishOutcome): number => r.reports.filter((p) => p.published === o).length;
    const verb = r.alreadyInitialised ? 'Republished' : 'Published';
    lines.push(
      `${verb} ${r.reports.length} signed directory entries to ${r.publish.bucket} on ${r.publish.url}: ${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged.`,
    );
  } else {
    lines.push(
      `Could not publish the directory to ${r.publish.bucket} on ${r.publish.url}: ${r.publish.error ?? 'unknown error'}.`,
      `The keys are kept in ${r.dir}; run bulwark init again once NATS is reachable to publish them.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `bulwark init [--dir PATH] [--nats URL] [--namespace NS] [--json] [--file PATH] [--admin ID]
 * [--nats-config-dir PATH] [--nats-listen HOST:PORT] [--nats-store-dir PATH] [--nats-monitor-port PORT]
 * [--key-store file|hsm] [--hsm-config FILE]`. With an HSM the root is the token's (never a file:
 * init makes none, and refuses a token without one), the key files are wrapped by its AES key.
 */
export const registerInitCommand: RegisterCommand = (program, io, setExitCode) => {
  program
    .command('init')
    .description('create the root key, the six service identities and the first administrator (wrapped under the KEK), the NATS operator, accounts and users and the nats-server configuration; create the streams and publish the signed directory to NATS')
    .option('--dir <path>', 'key directory (default: keys.dir, $SYMBIONT_KEY_DIR, else ./.bulwark/keys)')
    .option('--nats <url>', 'NATS server to publish the directory to (default: nats.url, $NATS_URL)')
    .option('--namespace <ns>', 'publish into the bucket <ns>_BULWARK_DIRECTORY (tests, parallel deployments)')
    .option('--json', 'print what was done as JSON')
    .option('--file <path>', 'TOML file to read (default: $SYMBIONT_CONFIG, else ./bulwark.toml if present)')
    .option('--admin <principal>', `the first administrator to enrol (default ${DEFAULT_ADMIN})`)
    .option('--nats-config-dir <path>', 'where to write nats-server.conf (default: <key dir>/nats)')
    .option('--nats-listen <host:port>', 'the address nats-server.conf listens on (default: the host and port of the NATS URL)')
    .option('--nats-monitor-port <port>', "nats-server's monitoring HTTP port (/healthz, /varz) in nats-server.conf (default: off)")
    .option('--nats-store-dir <path>', "JetStream's store directory in nats-server.conf (default: the nats config dir; the data goes to <dir>/jetstream)")
    .option('--key-store <kind>', 'file (the key directory under the KEK, the root one of its files) or hsm (the root in the token of --hsm-config, provisioned by bulwark keys hsm provision; the key files under its AES key) (default: security.hsm_enabled, $SYMBIONT_KEY_STORE_TYPE)')
    .option('--hsm-config <file>', 'the HSM configuration (TOML) for --key-store hsm (default: security.hsm_config_path, $SYMBIONT_HSM_CONFIG_PATH)')
    .action((options: InitOptions) => init(io, options, setExitCode));
};
