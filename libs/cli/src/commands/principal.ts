import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { connectBus, directoryBucketName, ROOT_NAMESPACE, type Bus, type Namespace } from '@bulwark/bus';
import { loadConfig, redactUrl, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider, toBase64, type CryptoProvider } from '@bulwark/crypto';
import { decodeSignedDirectoryEntry } from '@bulwark/envelope';
import { BulwarkError, InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, keyFileName, loadKek, parseRootPublicKey, ROOT_KEY_OWNER, ROOT_PIN_FILE, requirePrincipalId, type KeyWrapper, type RootSigner } from '@bulwark/keystore';
import { busCredentialsFor, enrollPrincipal, exportPrincipalKeys, OPERATOR_USER, writeCredsFile, type Enrolment } from '@bulwark/nats-auth';
import { ADMIN_PRINCIPAL } from '../home/admin.js';
import { keyManagerEnvironment, withKeyStoreChoice } from '../home/custody.js';
import { openCustodyStore, tokenStoreRoot } from '../home/custody-store.js';
import { enrolAgentThroughKeyManager } from '../home/enrol-agent.js';
import { homeAt } from '../home/home.js';
import { saveSignedEntry } from '../home/entries.js';
import { openSession } from '../home/session.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { namespaceFromName } from './init.js';

interface AddOptions {
  readonly admin?: boolean;
  readonly dir?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly credsOut?: string;
  readonly out?: string;
  readonly as?: string;
  readonly json?: boolean;
  readonly file?: string;
  /** Offline on a key manager's store: `file` or `hsm`, as `bulwark init` takes it. */
  readonly keyStore?: string;
  readonly hsmConfig?: string;
}

/** Whether `dir` holds the NATS account key file a key manager's store has (read by name: no KEK needed to tell). */
function holdsAccountKeyFile(dir: string): boolean {
  return existsSync(join(dir, keyFileName({ principal: ROOT_KEY_OWNER, kind: 'nats-account', version: 1 })));
}

/** Whether `store` is a key manager's store (it holds the root's signing key), used offline. */
async function holdsRoot(store: FileKeyStore): Promise<boolean> {
  return (await store.list(ROOT_KEY_OWNER)).some((k) => k.kind === 'ed25519');
}

interface KeyManagerContext {
  readonly io: CommandIO;
  readonly provider: CryptoProvider;
  readonly kek: KeyWrapper;
  /** The administrator's key store (in a home, `<home>/admin`): no root in it. */
  readonly store: FileKeyStore;
  readonly namespace: Namespace;
  readonly url: string;
}

/**
 * The key manager enrols `id` (issue 12): as the administrator (`--as`, default analyst.admin)
 * ask `keys.invite`, make the principal's keys here and `keys.enroll` them; the key manager signs
 * the entry and issues the NATS user. The keys go to their own directory (`--out`, default
 * `principals/<id>` beside the administrator's), its NATS credentials to `<out>/<id>.creds`;
 * the signed entry is kept with the administrator's (`bulwark recover` republishes it).
 */
async function addThroughKeyManager(ctx: KeyManagerContext, id: string, options: AddOptions): Promise<void> {
  const as = options.as ?? ADMIN_PRINCIPAL;
  if ((await ctx.store.list(as)).length === 0) {
    throw new BulwarkError(
      'E_NOT_RUNNING',
      `bulwark principal add ${id}: the key manager enrols principals (it alone holds the root key), as an administrator; ${ctx.store.dir} has no keys of ${as}: start the system with \`bulwark up\` (which makes them) and run this again`,
      { principal: id, dir: ctx.store.dir },
    );
  }
  const env = { ...ctx.io.env, SYMBIONT_KEY_DIR: ctx.store.dir };
  const session = await openSession({ env, cwd: ctx.io.cwd, principal: as, name: 'bulwark-principal-add', natsUrl: ctx.url, namespace: ctx.namespace }).catch((error: unknown) => {
    throw new BulwarkError('E_NOT_RUNNING', `bulwark principal add ${id}: no key manager reachable at ${redactUrl(ctx.url)} as ${as} (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); start the system with \`bulwark up\` and run this again`, { principal: id }, { cause: error });
  });
  const out = await FileKeyStore.open({ dir: resolve(ctx.io.cwd, options.out ?? join(dirname(ctx.store.dir), 'principals', id)), wrapper: ctx.kek, provider: ctx.provider });
  let enrolled;
  try {
    // Enrolled already: a second invite would give it new keys behind its holder's back.
    const known = session.directory.lookup(id);
    if (known !== undefined || (await out.list(id)).length > 0) {
      throw new InputError('E_USAGE', `bulwark principal add ${id}: already enrolled (${known === undefined ? `keys in ${out.dir}` : `directory entry v${known.keyVersion}`}); rotate with \`bulwark keys rotate --as ${id}\` where its keys are, or revoke it`, { principal: id });
    }
    enrolled = await enrolAgentThroughKeyManager(session, ctx.url, id, { admin: options.admin === true });
  } finally {
    await session.close();
  }
  try {
    const { version, ed25519, x25519 } = enrolled.identity;
    await out.put({ principal: id, kind: 'ed25519', version }, ed25519.secretKey);
    await out.put({ principal: id, kind: 'x25519', version }, x25519.secretKey);
    const signed = decodeSignedDirectoryEntry(new Uint8Array(Buffer.from(enrolled.certified.entry, 'base64')));
    saveSignedEntry(ctx.store.dir, signed);
    const credsFile = resolve(ctx.io.cwd, options.credsOut ?? join(out.dir, `${id}.creds`));
    await writeCredsFile(credsFile, { name: id, ...enrolled.credentials });
    const report = { id, admin: options.admin === true, via: 'key-manager', by: as, version, natsUser: enrolled.credentials.publicKey, notAfter: enrolled.certified.notAfter, keyDir: out.dir, credsFile, ed25519PublicKey: toBase64(ed25519.publicKey), x25519PublicKey: toBase64(x25519.publicKey) };
    if (options.json) ctx.io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else {
      ctx.io.stdout(
        `${id}${report.admin ? ' (administrator)' : ''}: enrolled by the key manager (invited by ${as}), ed25519 + x25519 v${version}, valid until ${report.notAfter}\n` +
          `  keys in ${out.dir}, NATS credentials in ${credsFile} (mode 0600; it holds the secret seed)\n`,
      );
    }
  } finally {
    enrolled.identity.ed25519.secretKey.fill(0);
    enrolled.identity.x25519.secretKey.fill(0);
    enrolled.credentials.seed.fill(0);
  }
}

/**
 * The environment whose configuration says where the root is: `--key-store` / `--hsm-config` as
 * `bulwark init` takes them; else, for `--dir` of a home's key manager store
 * (`<home>/key-manager/keys`), the custody the home recorded at its first start, as `bulwark up`
 * gives it to the key manager (its HSM configuration, or its own KEK file); else the caller's
 * (SYMBIONT_KEY_STORE_TYPE, SYMBIONT_HSM_CONFIG_PATH, as the key manager reads them). The PIN is
 * the HSM configuration's (`pin_file`, or SYMBIONT_HSM_PIN). `chosen`: the custody was named for
 * this command (flags, or the home's record), not only inherited from the shell.
 */
function custodyEnvironment(io: CommandIO, options: AddOptions): { env: NodeJS.ProcessEnv; chosen: boolean } {
  if (options.keyStore !== undefined || options.hsmConfig !== undefined) return { env: withKeyStoreChoice(io.env, options, io.cwd), chosen: true };
  if (options.dir === undefined) return { env: io.env, chosen: false };
  const dir = resolve(io.cwd, options.dir);
  const home = homeAt(dirname(dirname(dir)));
  return existsSync(home.marker) && home.keyManagerKeysDir === dir ? { env: keyManagerEnvironment(home, io.env), chosen: true } : { env: io.env, chosen: false };
}

/**
 * A key manager's store on an HSM, opened as the key manager opens it (openCustodyStore: the
 * token logged in with the configuration's PIN, its root and AES key found, the key files under
 * it), for an offline enrolment whose entry the token signs (C_Sign). Refused, before anything is
 * written, unless the directory is a key manager's store made on this token: its `root.pub` the
 * token's root (and the pinned keys.root_public_key, when set), no root key file, the NATS account
 * key there to sign the principal's NATS user.
 */
async function openTokenStore(config: BulwarkConfig, provider: CryptoProvider, env: NodeJS.ProcessEnv, cwd: string, dir: string): Promise<{ store: FileKeyStore; root: RootSigner; close(): void }> {
  const notKeyManagerStore = (why: string) =>
    new InputError('E_USAGE', `bulwark principal add --dir ${dir}: ${why}: not a key manager's store on the HSM (bulwark init --key-store hsm, or bulwark up --key-store hsm, makes one); nothing written`, { dir });
  // Checked before the token is opened: FileKeyStore.open would create a missing directory.
  if (!existsSync(join(dir, ROOT_PIN_FILE))) throw notKeyManagerStore(`it has no ${ROOT_PIN_FILE}`);
  const custody = await openCustodyStore(config, provider, env, cwd, dir);
  if (custody.kind !== 'hsm') {
    custody.close();
    throw new InputError('E_USAGE', 'bulwark principal add: the HSM key store needs security.hsm_config_path (SYMBIONT_HSM_CONFIG_PATH, --hsm-config)', {});
  }
  try {
    const { root } = await tokenStoreRoot(custody, provider, 'principal add', "enrol on it without the HSM configuration (its root is a file)");
    const pinned = config.keys.root_public_key;
    if (pinned !== undefined && !provider.equal(parseRootPublicKey(pinned, 'keys.root_public_key'), root.publicKey)) {
      throw new InputError('E_USAGE', `bulwark principal add: the token's root ${root.location} is not the pinned keys.root_public_key; nothing written`, {});
    }
    if (!(await custody.store.list(ROOT_KEY_OWNER)).some((k) => k.kind === 'nats-account')) throw notKeyManagerStore('it holds no NATS account key');
    return { store: custody.store, root, close: () => custody.close() };
  } catch (error) {
    custody.close();
    throw error;
  }
}

/**
 * `bulwark principal add agent.<uuid>|analyst.<name> [--admin]`. With an administrator's key
 * directory (a home's `<home>/admin`: the CLI never holds the root) it is a call to the running
 * key manager (addThroughKeyManager), and says so when none runs. Only offline on a key manager's
 * own store (`--dir` of a store that holds the root, before any key manager runs, as init does;
 * or, with the HSM configuration, a store on the token, whose root signs there) it makes the
 * identity keys, a directory entry signed by the root key (published with the operator's NATS
 * user) and the NATS user itself (DESIGN §3a); idempotent: a re-run keeps the keys and
 * republishes the same entry.
 */
async function add(outerIO: CommandIO, id: string, options: AddOptions, setExitCode: (code: number) => void): Promise<void> {
  const principal = requirePrincipalId(id, 'bulwark principal add');
  if (principal.kind === 'svc') throw new InputError('E_USAGE', `bulwark principal add ${id}: services are enrolled by bulwark init`, { principal: id });
  if (options.admin === true && principal.kind !== 'analyst') throw new InputError('E_USAGE', `bulwark principal add ${id} --admin: only analysts can be administrators`, { principal: id });
  const custody = custodyEnvironment(outerIO, options);
  const io: CommandIO = { ...outerIO, env: custody.env };
  const { config, sources } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const namespace = options.namespace === undefined ? ROOT_NAMESPACE : namespaceFromName(options.namespace);
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const dir = resolve(io.cwd, options.dir ?? config.keys.dir ?? DEFAULT_KEY_DIR);
  // On the token when asked for here, or when the HSM is configured (SYMBIONT_KEY_STORE_TYPE=hsm)
  // and the directory is a key manager's store (its NATS account key file): an administrator's
  // directory with the HSM variables in the shell still enrols through the key manager.
  if (config.security.hsm_enabled && (custody.chosen || holdsAccountKeyFile(dir))) {
    const token = await openTokenStore(config, provider, io.env, io.cwd, dir);
    try {
      return await addOffline({ io, config, provider, namespace, store: token.store, root: token.root }, id, options, setExitCode);
    } finally {
      token.close();
    }
  }
  const kek = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
  const store = await FileKeyStore.open({ dir, wrapper: kek, provider });
  if (!(await holdsRoot(store))) return addThroughKeyManager({ io, provider, kek, store, namespace, url: options.nats ?? config.nats.url }, id, options);
  return addOffline({ io, config, provider, namespace, store }, id, options, setExitCode);
}

interface OfflineContext {
  readonly io: CommandIO;
  readonly config: BulwarkConfig;
  readonly provider: CryptoProvider;
  readonly namespace: Namespace;
  /** A key manager's store: the root (a file in it, or `root`), the NATS account key. */
  readonly store: FileKeyStore;
  /** The root that signs the entry; default the store's root key file. */
  readonly root?: RootSigner;
}

/** The enrolment on a key manager's own store (see add). */
async function addOffline(ctx: OfflineContext, id: string, options: AddOptions, setExitCode: (code: number) => void): Promise<void> {
  const { io, config, provider, namespace, store } = ctx;
  const enrol = (bus?: Bus): Promise<Enrolment> =>
    enrollPrincipal({ store, provider, id, admin: options.admin === true, namespace, validityDays: config.security.key_rotation_interval_days, ...(bus === undefined ? {} : { bus }), ...(ctx.root === undefined ? {} : { root: ctx.root }) });
  const url = options.nats ?? config.nats.url;
  let enrolment: Enrolment | undefined;
  let error: string | undefined;
  let bucket = `${namespace.streamPrefix}BULWARK_DIRECTORY`;
  let bus: Bus | undefined;
  try {
    bus = await connectBus({ url, name: 'bulwark-principal-add', namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...(await busCredentialsFor(store, OPERATOR_USER)) });
    bucket = directoryBucketName(bus);
    enrolment = await enrol(bus);
  } catch (e) {
    error = redactUrl(e instanceof Error ? e.message : String(e)).split('\n')[0];
  } finally {
    await bus?.close();
  }
  // Unreachable NATS: the keys and the NATS user are still made (and kept); publish on a re-run.
  enrolment ??= await enrol();
  saveSignedEntry(store.dir, enrolment.signed);
  if (options.credsOut !== undefined) await writeCredsFile(resolve(io.cwd, options.credsOut), enrolment.credentials);
  enrolment.credentials.seed.fill(0);

  const report = {
    id,
    admin: options.admin === true,
    version: enrolment.identity.version,
    created: enrolment.createdKeys,
    ed25519PublicKey: toBase64(enrolment.identity.ed25519.publicKey),
    x25519PublicKey: toBase64(enrolment.identity.x25519.publicKey),
    notAfter: new Date(enrolment.entry.notAfter).toISOString(),
    nats: { user: enrolment.credentials.publicKey, created: enrolment.natsUserCreated, issued: enrolment.natsJwtIssued, inboxPrefix: enrolment.credentials.inboxPrefix },
    credsFile: options.credsOut === undefined ? null : resolve(io.cwd, options.credsOut),
    // Where the entry was signed: the token's root (C_Sign) or the store's root key file.
    signedBy: ctx.root === undefined ? `the root key file in ${store.dir}` : `the HSM's root ${ctx.root.location}`,
    publish: { url: redactUrl(url), bucket, ok: error === undefined, ...(error === undefined ? {} : { error }), outcome: enrolment.published },
  };
  if (options.json) {
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const state = report.created.length === 0 ? 'kept' : 'created';
    const lines = [
      `${id}${report.admin ? ' (administrator)' : ''}: identity ${state}, ed25519 + x25519 v${report.version}, valid until ${report.notAfter}; entry signed by ${report.signedBy}`,
      `  NATS user ${report.nats.user} (${report.nats.created ? 'created' : 'kept'}${report.nats.issued ? ', JWT issued' : ''}), replies under ${report.nats.inboxPrefix}`,
      ...(report.credsFile === null ? [] : [`  credentials written to ${report.credsFile} (mode 0600; it holds the secret seed)`]),
      error === undefined
        ? `  directory entry ${enrolment.published ?? 'published'} in ${bucket} on ${report.publish.url}`
        : `  could not publish the directory entry to ${bucket} on ${report.publish.url}: ${error}; the keys are kept, run the command again once NATS is reachable`,
    ];
    io.stdout(`${lines.join('\n')}\n`);
  }
  if (error !== undefined) setExitCode(ExitCode.failure);
}

interface ExportOptions {
  readonly out: string;
  readonly dir?: string;
  readonly json?: boolean;
  readonly file?: string;
}

/**
 * `bulwark principal export <id> --out DIR`: a key directory of the principal's own files
 * (identity, NATS user, root.pub), still under the KEK, to run a service from: without the
 * root and account keys a compromised service cannot sign entries or mint NATS users.
 */
async function exportKeys(io: CommandIO, id: string, options: ExportOptions): Promise<void> {
  requirePrincipalId(id, 'bulwark principal export');
  const { config, sources } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const kek = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
  const store = await FileKeyStore.open({ dir: resolve(io.cwd, options.dir ?? config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: kek, provider });
  const out = resolve(io.cwd, options.out);
  const files = await exportPrincipalKeys(store, id, out);
  if (options.json) io.stdout(`${JSON.stringify({ id, dir: out, files }, null, 2)}\n`);
  else io.stdout(`${id}: ${files.length} files in ${out} (run it with SYMBIONT_KEY_DIR=${out} and the same KEK)\n`);
}

/** `bulwark principal add <id> [--admin] [--dir PATH] [--nats URL] [--namespace NS] [--creds-out PATH] [--json] [--file PATH]`. */
export const registerPrincipalCommand: RegisterCommand = (program, io, setExitCode) => {
  const principal = program.command('principal').description('enrol agents and analysts (identity keys, signed directory entry, NATS user); export one principal\'s keys');
  principal
    .command('add <id>')
    .description('enrol agent.<uuid> or analyst.<name> (idempotent: keeps existing keys)')
    .option('--admin', 'an administrator (analysts only): policy administration, audit, keys')
    .option('--dir <path>', 'key directory (default: keys.dir, $SYMBIONT_KEY_DIR, else ./.bulwark/keys)')
    .option('--nats <url>', 'NATS server to publish the directory entry to (default: nats.url, $NATS_URL)')
    .option('--namespace <ns>', 'the bus namespace (tests, parallel deployments), as given to bulwark init')
    .option('--creds-out <path>', 'also write the NATS credentials as a .creds file (mode 0600) for NATS tools (through the key manager: instead of <out>/<id>.creds)')
    .option('--out <dir>', "through the key manager: the new principal's key directory (default: principals/<id> beside the administrator's key directory)")
    .option('--as <principal>', `through the key manager: the administrator who invites (default ${ADMIN_PRINCIPAL})`)
    .option('--key-store <kind>', "offline on a key manager's store (--dir): file (its root a file under the KEK) or hsm (the root in the token of --hsm-config, which signs the entry) (default: security.hsm_enabled, $SYMBIONT_KEY_STORE_TYPE; for <home>/key-manager/keys the home's recorded custody)")
    .option('--hsm-config <file>', 'the HSM configuration (TOML) for --key-store hsm (default: security.hsm_config_path, $SYMBIONT_HSM_CONFIG_PATH); the PIN from its pin_file or $SYMBIONT_HSM_PIN')
    .option('--json', 'print what was done as JSON')
    .option('--file <path>', 'TOML file to read (default: $SYMBIONT_CONFIG, else ./bulwark.toml if present)')
    .action((id: string, options: AddOptions) => add(io, id, options, setExitCode));
  principal
    .command('export <id>')
    .description("write a key directory of the principal's own keys and NATS user only (to run a service without the root and account keys)")
    .requiredOption('--out <dir>', 'the directory to write (created 0700; must hold nobody else\'s keys)')
    .option('--dir <path>', 'key directory (default: keys.dir, $SYMBIONT_KEY_DIR, else ./.bulwark/keys)')
    .option('--json', 'print what was written as JSON')
    .option('--file <path>', 'TOML file to read (default: $SYMBIONT_CONFIG, else ./bulwark.toml if present)')
    .action((id: string, options: ExportOptions) => exportKeys(io, id, options));
};
