import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { connectBus, KvDirectory, ROOT_NAMESPACE } from '@bulwark/bus';
import { busCredentialsFor } from '@bulwark/nats-auth';
import { createBulwarkClient, type BulwarkClient, type PolicyAdmin, type PolicyChangeReply } from '@bulwark/client';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { BulwarkError, InputError, isBulwarkError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey, readRootPinFile, ROOT_PIN_FILE } from '@bulwark/keystore';
import { parsePolicies, PolicyParseError, printPolicy } from '@bulwark/policy-language';
import { ADMIN_PRINCIPAL } from '../home/admin.js';
import { withHome } from '../home/home-io.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { namespaceFromName } from './init.js';

export interface AdminConnectOptions {
  /** The principal to act as (its keys come from the key store). */
  readonly as: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly file?: string;
}

export interface PolicyAdminConnection {
  readonly admin: PolicyAdmin;
  close(): Promise<void>;
}

export interface PolicyAdminDeps {
  /** Opens an encrypted session client to the policy service; injectable so tests bring their own world. */
  readonly connect: (io: CommandIO, options: AdminConnectOptions) => Promise<PolicyAdminConnection>;
}

interface CommonOptions {
  readonly dir?: string;
  readonly as?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly file?: string;
  readonly json?: boolean;
}

// Remote refusals that are the caller's input, not a failure of the service: exit 2.
const INPUT_CODES = new Set(['E_POLICY_TEXT', 'E_POLICY_EXISTS', 'E_POLICY_UNKNOWN', 'E_POLICY_VERSION', 'E_POLICY_ADMIN']);

/**
 * `bulwark policy push FILES...`, `bulwark policy list`, `bulwark policy rollback NAME --to V`:
 * administration of the running policy service over the bus (services/policy README). Each
 * change is an event in the ledger; the command waits until the service applied it.
 */
export function createPolicyAdminCommand(deps: PolicyAdminDeps = { connect: connectAdmin }): RegisterCommand {
  return (program, io, setExitCode) => {
    // `policy.ts` creates `bulwark policy`; these verbs join it.
    const policy = program.commands.find((c) => c.name() === 'policy') ?? program.command('policy');
    const common = (cmd: ReturnType<typeof policy.command>) =>
      cmd
        .option('--dir <home>', 'the home of the running system (default: $SYMBIONT_HOME, else ./.bulwark when it is one)')
        .option('--as <principal>', `the administrator principal to act as (default $BULWARK_PRINCIPAL, else the home's ${ADMIN_PRINCIPAL})`)
        .option('--nats <url>', 'NATS server (default: nats.url, $NATS_URL)')
        .option('--namespace <ns>', 'subject and stream namespace (tests, parallel deployments)')
        .option('--file <path>', 'configuration file')
        .option('--json', 'print JSON');
    common(policy.command('push').description('register or update each policy of FILES in the running service (one ledger event per policy); exit 1 if one is not applied').argument('<files...>', 'policy files or directories of *.policy')).action(
      async (files: string[], options: CommonOptions) => setExitCode(await withAdmin(io, deps, options, (admin) => push(io, admin, files, options))),
    );
    common(policy.command('list').description('list the policies in force: name, active version, every version, file, rules')).action(async (options: CommonOptions) =>
      setExitCode(await withAdmin(io, deps, options, (admin) => list(io, admin, options))),
    );
    common(policy.command('rollback').description('make an earlier version of a policy active again (a ledger event)').argument('<name>', 'policy name').requiredOption('--to <version>', 'the version to make active')).action(
      async (name: string, options: CommonOptions & { to: string }) => setExitCode(await withAdmin(io, deps, options, (admin) => rollback(io, admin, name, options))),
    );
  };
}

export const registerPolicyAdminCommand: RegisterCommand = createPolicyAdminCommand();

async function withAdmin(outer: CommandIO, deps: PolicyAdminDeps, options: CommonOptions, fn: (admin: PolicyAdmin) => Promise<number>): Promise<number> {
  const io = withHome(outer, options.dir);
  const inHome = io !== outer;
  const as = options.as ?? (io.env['BULWARK_PRINCIPAL'] || (inHome ? ADMIN_PRINCIPAL : undefined));
  if (as === undefined || as === '') throw new InputError('E_USAGE', 'bulwark policy: name the administrator with --as <principal> or $BULWARK_PRINCIPAL (or use a home: --dir)');
  const connection = await deps.connect(io, { as, ...pick(options) });
  try {
    return await fn(connection.admin);
  } catch (e) {
    if (isBulwarkError(e) && INPUT_CODES.has(e.code)) throw new InputError(e.code, e.message, e.context, { cause: e });
    throw e;
  } finally {
    await connection.close();
  }
}

function pick(options: CommonOptions): Omit<AdminConnectOptions, 'as'> {
  return {
    ...(options.nats === undefined ? {} : { nats: options.nats }),
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    ...(options.file === undefined ? {} : { file: options.file }),
  };
}

/** Every `*.policy` file under each path (a file is taken as given). */
function policyFiles(io: CommandIO, paths: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (path: string) => {
    let stat;
    try {
      stat = statSync(path);
    } catch {
      throw new InputError('E_USAGE', `bulwark policy push: ${relative(io.cwd, path) || path}: no such file or directory`);
    }
    if (!stat.isDirectory()) return void out.push(path);
    for (const entry of readdirSync(path).sort()) {
      const child = join(path, entry);
      if (statSync(child).isDirectory() || entry.endsWith('.policy')) walk(child);
    }
  };
  for (const p of paths) walk(resolve(io.cwd, p));
  return out;
}

async function push(io: CommandIO, admin: PolicyAdmin, paths: readonly string[], options: CommonOptions): Promise<number> {
  // Parse everything before changing anything: a bad file fails the push as a whole (file:line:col).
  const changes: { name: string; text: string; file: string }[] = [];
  for (const path of policyFiles(io, paths)) {
    const file = relative(io.cwd, path) || path;
    const text = readFileSync(path, 'utf8');
    let policies;
    try {
      policies = parsePolicies(text, { file }).policies;
    } catch (err) {
      // A parse error is bad input (exit 2), and its message names file:line:col.
      if (err instanceof PolicyParseError) throw new InputError(err.code, err.message, err.context, { cause: err });
      throw err;
    }
    // A file of one policy goes as written (comments kept); several go one by one in normal form.
    for (const ast of policies) changes.push({ name: ast.name, text: policies.length === 1 ? text : printPolicy(ast), file });
  }
  if (changes.length === 0) throw new InputError('E_USAGE', 'bulwark policy push: no policy in the files given');
  const known = new Set((await admin.list()).policies.map((p) => p.name));
  const replies: (PolicyChangeReply & { action: 'registered' | 'updated' })[] = [];
  for (const change of changes) {
    const action = known.has(change.name) ? 'updated' : 'registered';
    const reply = action === 'updated' ? await admin.update(change.text, change.file) : await admin.register(change.text, change.file);
    known.add(change.name);
    replies.push({ ...reply, action });
    if (!options.json) io.stdout(`${action} ${reply.name} version ${reply.version} (${describeApplied(reply)})\n`);
  }
  if (options.json) io.stdout(`${JSON.stringify(replies)}\n`);
  return replies.every((r) => r.applied) ? ExitCode.ok : ExitCode.negative;
}

function describeApplied(reply: PolicyChangeReply): string {
  return reply.applied ? `in force, set ${reply.setVersion}` : `event ${reply.eventId} published, not yet applied by the service`;
}

async function list(io: CommandIO, admin: PolicyAdmin, options: CommonOptions): Promise<number> {
  const reply = await admin.list();
  if (options.json) {
    io.stdout(`${JSON.stringify(reply)}\n`);
    return ExitCode.ok;
  }
  io.stdout(`policy set ${reply.setVersion}: ${reply.policies.length} ${reply.policies.length === 1 ? 'policy' : 'policies'}\n`);
  for (const p of reply.policies) io.stdout(`${p.name}  version ${p.activeVersion} of [${p.versions.join(', ')}]  ${p.rules} rules  ${p.file}\n`);
  return ExitCode.ok;
}

async function rollback(io: CommandIO, admin: PolicyAdmin, name: string, options: CommonOptions & { to: string }): Promise<number> {
  if (!/^[1-9]\d{0,15}$/.test(options.to)) throw new InputError('E_USAGE', `bulwark policy rollback: --to ${JSON.stringify(options.to)} is not a positive integer version`);
  const reply = await admin.rollback(name, Number(options.to));
  if (options.json) io.stdout(`${JSON.stringify(reply)}\n`);
  else io.stdout(`rolled back ${reply.name} to version ${reply.version} (${describeApplied(reply)})\n`);
  return reply.applied ? ExitCode.ok : ExitCode.negative;
}

/**
 * The production connection: configuration, the principal's keys from the file key store
 * (KEK from SYMBIONT_KEK or keys.kek_file), the directory from NATS KV checked against the
 * pinned root key (keys.root_public_key, else `root.pub` in the key directory).
 */
async function connectAdmin(io: CommandIO, options: AdminConnectOptions): Promise<PolicyAdminConnection> {
  const { client, close } = await connectClient(io, options, 'bulwark-policy-admin');
  return { admin: client.policyAdmin, close };
}

/** An encrypted-session client acting as `options.as` (also used by `bulwark tools review|approve|reject`). */
export async function connectClient(io: CommandIO, options: AdminConnectOptions, name: string): Promise<{ client: BulwarkClient; close: () => Promise<void> }> {
  const { config, sources } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const kek = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
  const store = await FileKeyStore.open({ dir: resolve(io.cwd, config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: kek, provider });
  const identity = await loadIdentity(store, options.as);
  const pin = config.keys.root_public_key ?? readPin(store.dir);
  const rootPublicKey = parseRootPublicKey(pin, config.keys.root_public_key === undefined ? join(store.dir, ROOT_PIN_FILE) : 'keys.root_public_key');
  const namespace = options.namespace === undefined ? ROOT_NAMESPACE : namespaceFromName(options.namespace);
  // The administrator's own NATS user when its key store holds one (DESIGN §3a).
  const credentials = await busCredentialsFor(store, identity.id);
  const bus = await connectBus({ url: options.nats ?? config.nats.url, name, namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...credentials });
  try {
    const directory = await KvDirectory.open(bus, { provider, rootPublicKey });
    const client = createBulwarkClient({ bus, sessions: { provider, self: { id: identity.id, x25519: identity.x25519 }, directory } });
    return { client, close: () => bus.close() };
  } catch (e) {
    await bus.close();
    throw e;
  }
}

function readPin(dir: string): string {
  const path = join(dir, ROOT_PIN_FILE);
  if (!existsSync(path)) throw new BulwarkError('E_ROOT_PIN', `no pinned root key: set keys.root_public_key or run bulwark init to write ${path}`, { dir });
  return readRootPinFile(path);
}
