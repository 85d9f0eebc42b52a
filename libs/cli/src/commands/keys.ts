/**
 * `bulwark keys list|get|invite|enroll|rotate|revoke|channel` (+ `--json`): the key manager's calls
 * (services/key-manager README) from the command line, through @bulwark/client.
 *
 * - `invite <principal> [--ttl 1h] [--admin]` prints the join bundle (a bearer secret: pass it
 *   like a password); `enroll --join <bundle | @file>` generates the principal's keys HERE,
 *   enrols them, and stores them in the local key store (KEK as for every command) with a
 *   `.creds` file for NATS (`--creds-out`, default `<keys dir>/<id>.creds`, mode 0600).
 * - `rotate --as <principal>` makes the next version of one's own key here and stores it;
 *   `rotate <principal> [--reason on_demand|compromise]` asks the key manager to have that
 *   principal's holder rotate (administrators for anyone, a principal for itself): the holder's
 *   rotation check picks it up within its check period (at most 60 s).
 * - `revoke <principal> --reason R [--version V]`, `list`, `get <principal>` as an administrator
 *   (`--as`, or $BULWARK_PRINCIPAL).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connectBus, KvDirectory, ROOT_NAMESPACE, type Bus } from '@bulwark/bus';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, type BulwarkClient, type ChannelAction, type ChannelView, type KeyView, type RevocationReason, type RotationRequestReason } from '@bulwark/client';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { BulwarkError, InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, generateKey, loadIdentity, loadKek, parseRootPublicKey, ROOT_PIN_FILE } from '@bulwark/keystore';
import { busCredentialsFor, encodeNkeySeed, inboxPrefixFor, nkeyPair, readCredsFile, writeCredsFile } from '@bulwark/nats-auth';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { namespaceFromName } from './init.js';

interface CommonOptions {
  readonly as?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly file?: string;
  readonly json?: boolean;
}

const REASONS: readonly RevocationReason[] = ['key_compromise', 'superseded', 'cessation_of_operation', 'privilege_withdrawn'];
const ROTATION_REASONS: readonly RotationRequestReason[] = ['on_demand', 'compromise'];

interface Context {
  readonly provider: CryptoProvider;
  readonly store: FileKeyStore;
  readonly rootPublicKey: Uint8Array;
  readonly url: string;
  readonly namespace: ReturnType<typeof namespaceFromName>;
}

async function context(io: CommandIO, options: CommonOptions): Promise<Context> {
  const { config, sources } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const provider = createCryptoProvider(config.security.crypto_provider, `security.crypto_provider (${sources['security.crypto_provider']})`);
  const kek = loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd });
  const store = await FileKeyStore.open({ dir: resolve(io.cwd, config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: kek, provider });
  let pin = config.keys.root_public_key;
  if (pin === undefined) {
    try {
      // root.pub labels its lines (`base64: ...`, `hex: ...`): take the base64 one.
      const text = readFileSync(join(store.dir, ROOT_PIN_FILE), 'utf8');
      pin = /^base64:\s*(\S+)$/m.exec(text)?.[1] ?? text.trim();
    } catch (cause) {
      throw new BulwarkError('E_ROOT_PIN', `no pinned root key: set keys.root_public_key or put ${ROOT_PIN_FILE} in ${store.dir}`, {}, { cause });
    }
  }
  const rootPublicKey = parseRootPublicKey(pin, config.keys.root_public_key === undefined ? join(store.dir, ROOT_PIN_FILE) : 'keys.root_public_key');
  return { provider, store, rootPublicKey, url: options.nats ?? config.nats.url, namespace: options.namespace === undefined ? ROOT_NAMESPACE : namespaceFromName(options.namespace) };
}

async function withClient<T>(io: CommandIO, options: CommonOptions, fn: (client: BulwarkClient, ctx: Context, as: string) => Promise<T>): Promise<T> {
  const as = options.as ?? io.env['BULWARK_PRINCIPAL'];
  if (as === undefined || as === '') throw new InputError('E_USAGE', 'bulwark keys: name the principal to act as with --as <principal> or $BULWARK_PRINCIPAL');
  const ctx = await context(io, options);
  const identity = await loadIdentity(ctx.store, as);
  const bus = await connectBus({ url: ctx.url, name: 'bulwark-keys', namespace: ctx.namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...(await credentialsOf(ctx.store, identity.id)) });
  try {
    const directory = await KvDirectory.open(bus, { provider: ctx.provider, rootPublicKey: ctx.rootPublicKey });
    try {
      return await fn(createBulwarkClient({ bus, sessions: { provider: ctx.provider, self: { id: identity.id, x25519: identity.x25519 }, directory }, adminTimeoutMs: 10_000 }), ctx, as);
    } finally {
      await directory.stop();
    }
  } finally {
    await bus.close();
  }
}

/** The principal's NATS credentials: in the key store (init, principal add), else the `<id>.creds` that `keys enroll` / `rotate` wrote beside it. */
export async function credentialsOf(store: FileKeyStore, id: string): Promise<{ credentials?: { jwt: string; seed: Uint8Array }; inboxPrefix?: string }> {
  const stored = await busCredentialsFor(store, id);
  const file = join(store.dir, `${id}.creds`);
  if (stored.credentials !== undefined || !existsSync(file)) return stored;
  const creds = await readCredsFile(file);
  if (creds.name !== id) throw new BulwarkError('E_NATS_CREDS', `credentials file ${file} is ${creds.name}'s, not ${id}'s`, { path: file });
  return { credentials: { jwt: creds.jwt, seed: creds.seed }, inboxPrefix: creds.inboxPrefix };
}

function printView(io: CommandIO, v: KeyView): void {
  // Rotation: due (the holder rotates), and overdue once the ledger recorded it (keys.rotation_overdue).
  const requested = v.rotationRequested === null ? '' : `  rotation requested (${v.rotationRequested.reason}) by ${v.rotationRequested.by} at ${v.rotationRequested.at}`;
  const interval = v.rotateAfter === null ? '' : v.rotationOverdue ? `  rotation OVERDUE (due ${v.rotateAfter})` : v.rotationDue && Date.parse(v.rotateAfter) <= Date.now() ? `  rotation due (since ${v.rotateAfter})` : `  rotate after ${v.rotateAfter}`;
  const rotation = `${requested}${interval}`;
  io.stdout(`${v.principal}  active v${v.activeVersion ?? '-'}  min verify v${v.minVerifyVersion}${rotation}\n`);
  for (const x of v.versions) {
    const extra = x.revocation === null ? '' : `  revoked ${x.revocation.reason} ${x.revocation.at}`;
    io.stdout(`  v${x.version}  ${x.state}${x.verifies ? '' : ' (does not verify)'}  ${x.created}${extra}${x.deleteAfter === null ? '' : `  deleted after ${x.deleteAfter}`}\n`);
  }
}

const TTL = /^([1-9]\d{0,6})(s|m|h|d)$/;
function ttlMs(text: string): number {
  const m = TTL.exec(text);
  if (m === null) throw new InputError('E_USAGE', `--ttl ${JSON.stringify(text)}: use a number and s, m, h or d (e.g. 1h, at most 7d)`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** A fresh NATS user nkey: its public key for the key manager, its text seed for the .creds file. */
export function newNatsUser(provider: CryptoProvider): { publicKey: string; seed: Uint8Array } {
  const raw = generateKey(provider, 'nats-user');
  const pair = nkeyPair('nats-user', raw);
  const out = { publicKey: pair.getPublicKey(), seed: encodeNkeySeed('nats-user', raw) };
  pair.clear();
  raw.fill(0);
  return out;
}

async function storeIdentity(store: FileKeyStore, id: string, version: number, keys: { ed25519: { secretKey: Uint8Array }; x25519: { secretKey: Uint8Array } }): Promise<void> {
  await store.put({ principal: id, kind: 'ed25519', version }, keys.ed25519.secretKey);
  await store.put({ principal: id, kind: 'x25519', version }, keys.x25519.secretKey);
}

export const registerKeysCommand: RegisterCommand = (program, io, setExitCode) => {
  const keys = program.command('keys').description('the key manager: list, invite, enroll, rotate, revoke');
  const common = (cmd: ReturnType<typeof keys.command>) =>
    cmd
      .option('--as <principal>', 'the principal to act as (default $BULWARK_PRINCIPAL)')
      .option('--nats <url>', 'NATS server (default: nats.url, $NATS_URL)')
      .option('--namespace <ns>', 'subject and stream namespace (tests, parallel deployments)')
      .option('--file <path>', 'configuration file')
      .option('--json', 'print JSON');

  common(keys.command('list').description('every principal key: versions, states, minimum verify version (administrators)')).action(async (o: CommonOptions) => {
    const reply = await withClient(io, o, (c) => c.keys.list());
    if (o.json === true) io.stdout(`${JSON.stringify(reply)}\n`);
    else {
      for (const v of reply.principals) printView(io, v);
      if (reply.providerKeys.length > 0) io.stdout('SchemaPin provider keys (recorded from the ledger\'s pins):\n');
      for (const k of reply.providerKeys) io.stdout(`  ${k.fingerprint}  ${k.revoked ? 'revoked' : 'pinned'}  ${k.tools.length === 0 ? '-' : k.tools.join(' ')}\n`);
    }
    setExitCode(ExitCode.ok);
  });

  common(keys.command('get').description("one principal's key").argument('<principal>')).action(async (principal: string, o: CommonOptions) => {
    const v = await withClient(io, o, (c) => c.keys.get(principal));
    if (o.json === true) io.stdout(`${JSON.stringify(v)}\n`);
    else printView(io, v);
    setExitCode(ExitCode.ok);
  });

  common(keys.command('invite').description('a one-time join token for a new agent or analyst (prints the join bundle: a secret)').argument('<principal>', 'agent.<uuid> or analyst.<name>').option('--ttl <duration>', 'lifetime of the token (default 1h, at most 7d)', '1h').option('--admin', 'an analyst enrolled as an administrator')).action(
    async (principal: string, o: CommonOptions & { ttl: string; admin?: boolean }) => {
      const reply = await withClient(io, o, (c) => c.keys.invite(principal, { ttlMs: ttlMs(o.ttl), ...(o.admin === true ? { admin: true } : {}) }));
      if (o.json === true) io.stdout(`${JSON.stringify(reply)}\n`);
      else io.stdout(`join bundle for ${reply.principal} (token ${reply.tid}, expires ${reply.expires}); give it to the principal over a secure channel:\n${reply.join}\n`);
      setExitCode(ExitCode.ok);
    },
  );

  keys
    .command('enroll')
    .description('enrol this principal with a join bundle: its keys are generated here and stored in the local key store')
    .requiredOption('--join <bundle>', 'the join bundle, or @file to read it from a file')
    .option('--creds-out <path>', 'where to write the NATS .creds file (default <keys dir>/<id>.creds)')
    .option('--nats <url>', 'NATS server (default: nats.url, $NATS_URL)')
    .option('--namespace <ns>', 'subject and stream namespace')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON')
    .action(async (o: CommonOptions & { join: string; credsOut?: string }) => {
      const text = o.join.startsWith('@') ? readFileSync(resolve(io.cwd, o.join.slice(1)), 'utf8') : o.join;
      const bundle = parseJoinBundle(text);
      const ctx = await context(io, o);
      const credentials = bundle.natsJwt !== null && bundle.natsSeed !== null ? { credentials: { jwt: bundle.natsJwt, seed: bundle.natsSeed }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id: bundle.principal }) } : {};
      const bus: Bus = await connectBus({ url: ctx.url, name: `${bundle.principal}#enroll`, namespace: ctx.namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...credentials });
      const nats = newNatsUser(ctx.provider);
      try {
        const directory = await KvDirectory.open(bus, { provider: ctx.provider, rootPublicKey: ctx.rootPublicKey });
        try {
          const { identity, certified } = await enrollWithJoinBundle({ bus, provider: ctx.provider, directory, bundle, natsUser: nats.publicKey });
          await storeIdentity(ctx.store, identity.id, identity.version, identity);
          let credsFile: string | null = null;
          if (certified.natsJwt !== null) {
            credsFile = resolve(io.cwd, o.credsOut ?? join(ctx.store.dir, `${identity.id}.creds`));
            await writeCredsFile(credsFile, { name: identity.id, jwt: certified.natsJwt, seed: nats.seed, publicKey: nats.publicKey, inboxPrefix: inboxPrefixFor({ kind: 'principal', id: identity.id }) });
          }
          if (o.json === true) io.stdout(`${JSON.stringify({ principal: identity.id, version: certified.version, notAfter: certified.notAfter, keyStore: ctx.store.location, credsFile })}\n`);
          else io.stdout(`enrolled ${identity.id} version ${certified.version} (valid until ${certified.notAfter}); keys in ${ctx.store.location}${credsFile === null ? '' : `, NATS credentials in ${credsFile}`}\n`);
        } finally {
          await directory.stop();
        }
      } finally {
        nats.seed.fill(0);
        await bus.close();
      }
      setExitCode(ExitCode.ok);
    });

  common(
    keys
      .command('rotate')
      .description("rotate one's own key (--as): the next version is generated here and stored; or, naming a principal, ask the key manager to have its holder rotate it (administrators for anyone, a principal for itself)")
      .argument('[principal]', 'whose rotation to request (its holder rotates at its next check, within 60 s)')
      .option('--reason <reason>', `with a principal: ${ROTATION_REASONS.join(' | ')} (compromise: the old version stops verifying once the holder rotated)`)
      .option('--creds-out <path>', 'where to write the new NATS .creds file (default <keys dir>/<id>.creds)'),
  ).action(
    async (principal: string | undefined, o: CommonOptions & { credsOut?: string; reason?: string }) => {
      if (principal !== undefined) {
        if (o.credsOut !== undefined) throw new InputError('E_USAGE', 'keys rotate <principal> asks the holder to rotate: --creds-out is for rotating one\'s own key (keys rotate --as <principal>, no argument)');
        const reason = o.reason ?? 'on_demand';
        if (!(ROTATION_REASONS as readonly string[]).includes(reason)) throw new InputError('E_USAGE', `--reason ${JSON.stringify(reason)}: use one of ${ROTATION_REASONS.join(', ')}`);
        const v = await withClient(io, o, (c) => c.keys.requestRotation(principal, reason as RotationRequestReason));
        if (o.json === true) io.stdout(`${JSON.stringify(v)}\n`);
        else {
          const asked = v.rotationRequested;
          io.stdout(asked === null ? `no rotation outstanding for ${v.principal} (active v${v.activeVersion ?? '-'})\n` : `rotation of ${v.principal} v${v.activeVersion ?? '-'} requested (${asked.reason}) by ${asked.by} at ${asked.at}; its holder rotates at its next check${asked.reason === 'compromise' ? ', then the old version stops verifying' : ''}\n`);
          printView(io, v);
        }
        setExitCode(ExitCode.ok);
        return;
      }
      if (o.reason !== undefined) throw new InputError('E_USAGE', '--reason goes with a principal: keys rotate <principal> --reason on_demand|compromise (rotating one\'s own key here takes no reason)');
      const nats = newNatsUser(createCryptoProvider());
      const result = await withClient(io, o, async (c, ctx, as) => {
        const current = await c.keys.get(as);
        const version = current.versions.length + 1;
        const next = { ed25519: ctx.provider.ed25519.generateKeyPair(), x25519: ctx.provider.x25519.generateKeyPair() };
        const certified = await c.keys.rotate(as, version, { ...next, natsUser: nats.publicKey });
        await storeIdentity(ctx.store, as, certified.version, next);
        let credsFile: string | null = null;
        if (certified.natsJwt !== null) {
          credsFile = resolve(io.cwd, o.credsOut ?? join(ctx.store.dir, `${as}.creds`));
          await writeCredsFile(credsFile, { name: as, jwt: certified.natsJwt, seed: nats.seed, publicKey: nats.publicKey, inboxPrefix: inboxPrefixFor({ kind: 'principal', id: as }) });
        }
        return { principal: as, version: certified.version, notAfter: certified.notAfter, credsFile };
      });
      nats.seed.fill(0);
      if (o.json === true) io.stdout(`${JSON.stringify(result)}\n`);
      else io.stdout(`rotated ${result.principal} to version ${result.version} (valid until ${result.notAfter})\n`);
      setExitCode(ExitCode.ok);
    },
  );

  common(keys.command('revoke').description('revoke a key version for good (administrators, incident response)').argument('<principal>').requiredOption('--reason <reason>', REASONS.join(' | ')).option('--version <n>', 'the version (default: the active one)')).action(
    async (principal: string, o: CommonOptions & { reason: string; version?: string }) => {
      if (!(REASONS as readonly string[]).includes(o.reason)) throw new InputError('E_USAGE', `--reason ${JSON.stringify(o.reason)}: use one of ${REASONS.join(', ')}`);
      if (o.version !== undefined && !/^[1-9]\d{0,9}$/.test(o.version)) throw new InputError('E_USAGE', `--version ${JSON.stringify(o.version)} is not a positive integer`);
      const v = await withClient(io, o, (c) => c.keys.revoke(principal, o.reason as RevocationReason, o.version === undefined ? undefined : Number(o.version)));
      if (o.json === true) io.stdout(`${JSON.stringify(v)}\n`);
      else printView(io, v);
      setExitCode(ExitCode.ok);
    },
  );

  common(
    keys
      .command('channel')
      .description('one-to-many channels: list, get, create, add, revoke a subscriber, rotate (each change a new epoch wrapped to the subscribers; changes are the administrators\')')
      .argument('<action>', CHANNEL_ACTIONS.join(' | '))
      .argument('[channel]', 'the channel, e.g. soc.incidents (all but list)')
      .argument('[subscribers...]', 'create: the subscribers; add, revoke: the one subscriber'),
  ).action(async (action: string, channel: string | undefined, subscribers: string[], o: CommonOptions) => {
    const request = channelAction(action, channel, subscribers);
    if (request === 'list') {
      const { channels } = await withClient(io, o, (c) => c.keys.channels());
      if (o.json === true) io.stdout(`${JSON.stringify({ channels })}\n`);
      else if (channels.length === 0) io.stdout('no channels\n');
      else for (const v of channels) printChannel(io, v);
    } else {
      const v = await withClient(io, o, (c) => c.keys.channel(request));
      if (o.json === true) io.stdout(`${JSON.stringify(v)}\n`);
      else printChannel(io, v);
    }
    setExitCode(ExitCode.ok);
  });
};

const CHANNEL_ACTIONS = ['list', 'get', 'create', 'add', 'revoke', 'rotate'] as const;

/** The request `bulwark keys channel <action> [channel] [subscribers...]` stands for, or a usage error saying what is missing. */
export function channelAction(action: string, channel: string | undefined, subscribers: readonly string[]): ChannelAction | 'list' {
  const usage = (why: string) => new InputError('E_USAGE', `keys channel ${action}: ${why}`);
  if (!(CHANNEL_ACTIONS as readonly string[]).includes(action)) throw new InputError('E_USAGE', `keys channel: the action must be one of ${CHANNEL_ACTIONS.join(', ')} (got ${JSON.stringify(action)})`);
  if (action === 'list') {
    if (channel !== undefined) throw usage('takes no channel');
    return 'list';
  }
  if (channel === undefined) throw usage('name the channel');
  switch (action) {
    case 'create':
      if (subscribers.length === 0) throw usage('name at least one subscriber');
      return { action, channel, subscribers };
    case 'add':
    case 'revoke':
      if (subscribers.length !== 1) throw usage(`name exactly one subscriber (got ${subscribers.length})`);
      return { action, channel, subscriber: subscribers[0]! };
    default:
      if (subscribers.length > 0) throw usage('takes no subscriber');
      return { action: action as 'get' | 'rotate', channel };
  }
}

function printChannel(io: CommandIO, v: ChannelView): void {
  io.stdout(`${v.channel}  epoch ${v.epoch}  ${v.reason}${v.subject === undefined ? '' : ` ${v.subject}`}  ${v.at}\n`);
  for (const s of v.subscribers) io.stdout(`  ${s.id}  v${s.keyVersion}\n`);
}
