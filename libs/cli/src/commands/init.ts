import { resolve } from 'node:path';
import { connectBus, directoryBucketName, openDirectoryBucket, publishDirectoryEntry, ROOT_NAMESPACE, ServicePrincipals, type Bus, type Namespace, type PublishOutcome } from '@bulwark/bus';
import { busLimits, loadConfig, redactUrl, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider, toBase64, toHex, type CryptoProvider } from '@bulwark/crypto';
import { DEFAULT_SKEW_MS, signDirectoryEntry, type DirectoryEntry } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';
import {
  DEFAULT_KEY_DIR,
  FileKeyStore,
  KeyStoreError,
  ROOT_KEY_OWNER,
  ensureIdentity,
  ensureRootKey,
  loadKek,
  parseRootPublicKey,
  writeRootPin,
  type Identity,
  type KeyKind,
  type RootKey,
} from '@bulwark/keystore';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';

interface InitOptions {
  readonly dir?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly json?: boolean;
  readonly file?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
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
 * The directory entry for an identity. Deterministic in the stored keys (validity from
 * the keys' creation time), so a re-run signs the same bytes and republishing is a no-op.
 * Valid from the creation time less the envelope's clock skew, for one rotation interval.
 */
function directoryEntryFor(identity: Identity, config: BulwarkConfig): DirectoryEntry {
  const created = Date.parse(identity.created);
  return {
    id: identity.id,
    ed25519PublicKey: identity.ed25519.publicKey,
    x25519PublicKey: identity.x25519.publicKey,
    keyVersion: identity.version,
    notBefore: Math.max(0, created - DEFAULT_SKEW_MS),
    notAfter: created + config.security.key_rotation_interval_days * DAY_MS,
    revoked: false,
  };
}

/** Existing identities without a root key: a new root would silently re-sign them. */
async function refuseOrphanedIdentities(store: FileKeyStore): Promise<void> {
  const keys = await store.list();
  if (keys.length > 0 && !keys.some((k) => k.principal === ROOT_KEY_OWNER)) {
    throw new KeyStoreError(
      'E_KEY_NO_ROOT',
      `key directory ${store.dir} holds ${keys.length} keys but no root key; init will not create a new root over existing identities (restoring a root key is a key-manager operation)`,
      { dir: store.dir },
    );
  }
}

async function publishAll(bus: Bus, provider: CryptoProvider, root: RootKey, entries: readonly DirectoryEntry[], reports: PrincipalReport[], config: BulwarkConfig): Promise<void> {
  // The writer sets the bucket's limits ([bus] directory_*), creating or reconciling them.
  const kv = await openDirectoryBucket(bus, busLimits(config).directory);
  for (const [i, entry] of entries.entries()) {
    const published = await publishDirectoryEntry(bus, signDirectoryEntry(provider, root.keyPair.secretKey, entry), kv);
    reports[i]!.published = published.outcome;
  }
}

async function init(io: CommandIO, options: InitOptions, setExitCode: (code: number) => void): Promise<void> {
  const { config, sources } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const namespace = options.namespace === undefined ? ROOT_NAMESPACE : namespaceFromName(options.namespace);
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  // The KEK first: without one nothing is created, not even the directory.
  const kek = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
  const dir = resolve(io.cwd, options.dir ?? config.keys.dir ?? DEFAULT_KEY_DIR);
  const store = await FileKeyStore.open({ dir, wrapper: kek, provider });

  await refuseOrphanedIdentities(store);
  const { root, created: rootCreated } = await ensureRootKey(store, provider);
  const reports: PrincipalReport[] = [];
  const entries: DirectoryEntry[] = [];
  for (const id of Object.values(ServicePrincipals)) {
    const { identity, created } = await ensureIdentity(store, provider, id);
    const entry = directoryEntryFor(identity, config);
    entries.push(entry);
    reports.push({
      id,
      version: identity.version,
      created,
      ed25519PublicKey: toBase64(identity.ed25519.publicKey),
      x25519PublicKey: toBase64(identity.x25519.publicKey),
      notBefore: new Date(entry.notBefore).toISOString(),
      notAfter: new Date(entry.notAfter).toISOString(),
      published: null,
    });
  }
  const pinFile = await writeRootPin(store.dir, root.keyPair.publicKey);
  const alreadyInitialised = !rootCreated && reports.every((r) => r.created.length === 0);

  const pinned = config.keys.root_public_key;
  const pinMismatch =
    pinned !== undefined && !provider.equal(parseRootPublicKey(pinned, 'keys.root_public_key'), root.keyPair.publicKey) ? sources['keys.root_public_key'] : undefined;

  const url = options.nats ?? config.nats.url;
  const publish: PublishReport = { url: redactUrl(url), bucket: `${namespace.streamPrefix}BULWARK_DIRECTORY`, ok: false };
  let bus: Bus | undefined;
  try {
    bus = await connectBus({ url, name: 'bulwark-init', namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000 });
    publish.bucket = directoryBucketName(bus);
    await publishAll(bus, provider, root, entries, reports, config);
    publish.ok = true;
  } catch (error) {
    publish.error = redactUrl(error instanceof Error ? error.message : String(error)).split('\n')[0];
  } finally {
    await bus?.close();
  }

  const rootReport = {
    created: rootCreated,
    version: root.version,
    publicKeyBase64: toBase64(root.keyPair.publicKey),
    publicKeyHex: toHex(root.keyPair.publicKey),
    pinFile,
  };
  if (options.json) {
    const report = { dir: store.dir, kekSource: kek.source, alreadyInitialised, root: rootReport, principals: reports, publish, pinMismatch: pinMismatch ?? null };
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    io.stdout(humanReport({ dir: store.dir, kekSource: kek.source, alreadyInitialised, root: rootReport, reports, publish }));
  }
  if (pinMismatch !== undefined) {
    io.stderr(`bulwark: warning: keys.root_public_key (${pinMismatch}) is not this root key; peers pinned to it will reject these directory entries\n`);
  }
  if (!publish.ok) setExitCode(ExitCode.failure);
}

function humanReport(r: {
  dir: string;
  kekSource: string;
  alreadyInitialised: boolean;
  root: { created: boolean; version: number; publicKeyBase64: string; publicKeyHex: string; pinFile: string };
  reports: readonly PrincipalReport[];
  publish: PublishReport;
}): string {
  const width = Math.max(...r.reports.map((p) => p.id.length), 'root'.length);
  const lines = [
    r.alreadyInitialised
      ? `Key directory ${r.dir} is already initialised: no key was generated (KEK from ${r.kekSource}).`
      : `Key directory ${r.dir} (keys wrapped with AES-256-GCM, KEK from ${r.kekSource}):`,
    `  ${'root'.padEnd(width)}  ${r.root.created ? 'created' : 'kept   '}  ed25519 v${r.root.version}  (signs directory entries)`,
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

/** `bulwark init [--dir PATH] [--nats URL] [--namespace NS] [--json] [--file PATH]`. */
export const registerInitCommand: RegisterCommand = (program, io, setExitCode) => {
  program
    .command('init')
    .description('create the root key and the six service identities (wrapped under the KEK) and publish the signed directory to NATS')
    .option('--dir <path>', 'key directory (default: keys.dir, $SYMBIONT_KEY_DIR, else ./.bulwark/keys)')
    .option('--nats <url>', 'NATS server to publish the directory to (default: nats.url, $NATS_URL)')
    .option('--namespace <ns>', 'publish into the bucket <ns>_BULWARK_DIRECTORY (tests, parallel deployments)')
    .option('--json', 'print what was done as JSON')
    .option('--file <path>', 'TOML file to read (default: $SYMBIONT_CONFIG, else ./bulwark.toml if present)')
    .action((options: InitOptions) => init(io, options, setExitCode));
};
