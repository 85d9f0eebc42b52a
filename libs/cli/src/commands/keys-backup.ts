/**
 * `bulwark keys backup --holders K-of-N --holder <id>=<x25519 public key, base64> ... --out FILE`
 * and `bulwark keys restore --in FILE --holder-key <id>=<file holding the x25519 secret key, base64> ... --to DIR`
 * (services/key-manager README, "Backup"). The backup runs where the key store is; the restore
 * on the machine the store goes to, with its KEK.
 * The backup holds every file of the key directory (already wrapped under the KEK) under a fresh
 * key split K of N, each share sealed to a holder, the manifest signed by the root key. The
 * restore authenticates everything first (root signature, each share, the payload) and writes
 * nothing unless all of it holds and the restored root opens under the KEK and is the pinned one;
 * it refuses a target directory that is not empty. The backup's
 * hash is anchored in the ledger (keys-backup-anchor.ts) unless --no-anchor; the restore checks
 * it there by default (a backup no keys.exported event of svc.key-manager records, or a ledger
 * that cannot be reached, is refused) and skips it only with --no-anchor-check, saying on stderr
 * which backup went unchecked.
 */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { backupHash, createBackup, restoreBackup, type BackupManifest } from '@bulwark/key-manager';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadHsmConfig, loadKek, loadRootKey, openHsmKeyStore, openStoreRootSigner, parseRootPublicKey } from '@bulwark/keystore';
import { openCustodyStore } from '../home/custody-store.js';
import { withHome } from '../home/home-io.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { PUBLIC_KEY_FILE } from './audit-source.js';
import { anchorBackup, findAnchor } from './keys-backup-anchor.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function pair(text: string, flag: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new InputError('E_USAGE', `${flag} ${JSON.stringify(text)}: expected <principal>=<value>`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function key32(text: string, what: string): Uint8Array {
  const b = Buffer.from(text.trim(), 'base64');
  if (b.length !== 32) throw new InputError('E_USAGE', `${what}: not the base64 of a 32-byte X25519 key`);
  return new Uint8Array(b);
}

/**
 * Writes the restored files into a staging directory beside `to`, opens them there (`check`:
 * the root unwraps under the KEK and is the pinned one), and only then renames the staging
 * directory to `to` (absent or empty). On any failure every directory it created is removed.
 */
async function writeRestored(to: string, files: readonly { name: string; bytes: Uint8Array }[], check: (dir: string) => Promise<void>): Promise<void> {
  const madeParent = await fs.mkdir(dirname(to), { recursive: true, mode: 0o700 });
  const staging = `${to}.restoring-${randomBytes(6).toString('hex')}`;
  try {
    await fs.mkdir(staging, { mode: 0o700 });
    for (const f of files) await fs.writeFile(join(staging, f.name), f.bytes, { mode: f.name.endsWith('.pub') ? 0o644 : 0o600, flag: 'wx' });
    await check(staging);
    // `to` was checked absent or empty; rmdir fails (and nothing is lost) if that changed since.
    await fs.rmdir(to).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    await fs.rename(staging, to);
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    if (madeParent !== undefined) await fs.rm(madeParent, { recursive: true, force: true });
    throw error;
  }
}

/** A root key file of a store under a KEK file (an HSM store has none: its root is the token's). */
const ROOT_FILE = /^root\.ed25519\.v[1-9][0-9]{0,9}\.json$/;

/**
 * An HSM store restored in `dir`: the token present (logged in with the configuration's PIN) holds
 * the pinned root, and every restored key file opens under the token's KEK (the backup is of this
 * token's store, not another's).
 */
async function checkOnToken(configPath: string, dir: string, rootPublicKey: Uint8Array, provider: CryptoProvider, env: NodeJS.ProcessEnv): Promise<void> {
  const hsm = await openHsmKeyStore({ configPath, dir, provider, env });
  try {
    if (!provider.equal(hsm.root.publicKey, rootPublicKey)) throw new InputError('E_BACKUP_ROOT', `restore: the token's root (${hsm.root.location}) is not the pinned root; nothing restored`, {});
    for (const info of await hsm.store.list()) {
      const { secretKey } = await hsm.store.get(info).catch((cause: unknown) => {
        throw new InputError('E_BACKUP_KEK', `restore: ${hsm.store.pathOf(info)} does not open under the token's KEK ${hsm.store.kekSource} (${cause instanceof Error ? cause.message : String(cause)}): the backup of another token's store; nothing restored`, {}, { cause });
      });
      secretKey.fill(0);
    }
  } finally {
    hsm.close();
  }
}

export const registerKeysBackupCommand: RegisterCommand = (program, outerIO, setExitCode) => {
  const io = outerIO;
  const keys = program.commands.find((c) => c.name() === 'keys') ?? program.command('keys');
  keys
    .command('backup')
    .description('write the key store encrypted, its key split K of N among recovery holders, its hash anchored in the ledger (where the store is)')
    .requiredOption('--holders <k-of-n>', 'shares needed and shares made, e.g. 2-of-3')
    .requiredOption('--holder <id=x25519>', "a recovery holder and its X25519 public key (base64); once per holder", collect)
    .requiredOption('--out <file>', 'the backup file (created, mode 0600; never replaced)')
    .option('--no-anchor', "do not record the backup's hash in the ledger (an offline backup; NATS is needed otherwise)")
    .option('--dir <home>', 'the home whose key store, root pin and NATS to use (default: $SYMBIONT_HOME, else ./.bulwark when it is one)')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON')
    .action(async (o: { holders: string; holder: string[]; out: string; anchor: boolean; dir?: string; file?: string; json?: boolean }) => {
      const io: CommandIO = withHome(outerIO, o.dir, 'key-manager');
      const m = /^([1-9]\d?)-of-([1-9]\d{0,2})$/.exec(o.holders);
      if (m === null) throw new InputError('E_USAGE', `--holders ${JSON.stringify(o.holders)}: use K-of-N, e.g. 2-of-3`);
      const holders = o.holder.map((h) => {
        const [id, pub] = pair(h, '--holder');
        return { id, x25519PublicKey: key32(pub, `--holder ${id}`) };
      });
      if (holders.length !== Number(m[2])) throw new InputError('E_USAGE', `--holders ${o.holders} names ${m[2]} holders, but ${holders.length} --holder were given`);
      const out = resolve(io.cwd, o.out);
      if (existsSync(out)) throw new InputError('E_USAGE', `--out ${out}: exists; a backup is never replaced`);
      const { config } = loadConfig({ env: io.env, cwd: io.cwd, ...(o.file === undefined ? {} : { configPath: o.file }) });
      const provider = createCryptoProvider(config.security.crypto_provider);
      const custody = await openCustodyStore(config, provider, io.env, io.cwd, resolve(io.cwd, config.keys.dir ?? DEFAULT_KEY_DIR));
      try {
        const { store } = custody;
        const files = [];
        for (const name of (await fs.readdir(store.dir)).sort()) {
          const path = join(store.dir, name);
          if ((await fs.stat(path)).isFile()) files.push({ name, bytes: new Uint8Array(await fs.readFile(path)) });
        }
        // The manifest is signed through the root signer: on an HSM by the token, whose root is in no file.
        const root = custody.kind === 'hsm' ? custody.root : await openStoreRootSigner(store, provider);
        let manifest: BackupManifest;
        try {
          manifest = await createBackup({ provider, files, holders, threshold: Number(m[1]), root });
        } finally {
          if (custody.kind === 'file') root.close();
        }
        const hash = backupHash(provider, manifest);
        // Anchored before the file exists: a backup that cannot be anchored is not left behind.
        const anchor = o.anchor ? await anchorBackup(io, o.file, { kind: 'key_store_backup', backup_id: manifest.backupId, sha256: hash, threshold: manifest.threshold, holders: holders.map((h) => h.id), files: files.length }, store) : undefined;
        await fs.writeFile(out, `${JSON.stringify(manifest)}\n`, { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
          throw new InputError('E_USAGE', `--out ${out}: ${e.code === 'EEXIST' ? 'exists; a backup is never replaced' : `cannot write it (${e.code ?? 'error'})`}`);
        });
        const anchored = anchor === undefined ? 'not anchored in the ledger (--no-anchor)' : `anchored in the ledger (keys.exported event ${anchor.eventId})`;
        const hsmToken = custody.kind === 'hsm' ? custody.root.location : null;
        if (o.json === true) {
          io.stdout(`${JSON.stringify({ backupId: manifest.backupId, hash, files: files.length, threshold: manifest.threshold, holders: holders.map((h) => h.id), out, anchorEventId: anchor?.eventId ?? null, keyStore: custody.kind, hsmToken })}\n`);
        } else {
          io.stdout(`backup ${manifest.backupId}: ${files.length} files, ${m[1]} of ${m[2]} holders, sha256 ${hash}, in ${out}; ${anchored}\n`);
          if (hsmToken !== null) io.stdout(`The root is in the HSM (${hsmToken}), not in this backup, and cannot be exported: back the token up by the HSM's own means; the files here are wrapped by the token's key and open only with it.\n`);
        }
      } finally {
        custody.close();
      }
      setExitCode(ExitCode.ok);
    });

  keys
    .command('restore')
    .description('restore a key store from a backup and K holder keys into an empty directory; writes nothing unless every check passes')
    .requiredOption('--in <file>', 'the backup file')
    .requiredOption('--holder-key <id=file>', "a holder and a file holding its X25519 secret key (base64); once per holder present", collect)
    .requiredOption('--to <dir>', 'the key directory to restore into (absent or empty)')
    .option('--root-public-key <key>', 'the pinned root public key (default keys.root_public_key)')
    .option('--no-anchor-check', "restore without checking the backup's anchor in the ledger (a warning names the backup left unchecked); by default the ledger database must verify (under the backup's audit-ledger.vkey) and hold this backup's hash (its keys.exported event from svc.key-manager)")
    .option('--database <url>', 'the ledger database the anchor is checked in (default $DATABASE_URL, then [database] url)')
    .option('--schema <name>', 'the ledger schema the anchor is checked in (default $SYMBIONT_LEDGER_SCHEMA, then audit_ledger)')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON')
    .action(async (o: { in: string; holderKey: string[]; to: string; rootPublicKey?: string; anchorCheck: boolean; database?: string; schema?: string; file?: string; json?: boolean }) => {
      // The ledger flags only say where the check looks: with the check skipped they would be silently unused.
      if (!o.anchorCheck && (o.database !== undefined || o.schema !== undefined)) throw new InputError('E_USAGE', 'bulwark keys restore: --database / --schema name the ledger the anchor is checked in; they do not go with --no-anchor-check');
      const { config } = loadConfig({ env: io.env, cwd: io.cwd, ...(o.file === undefined ? {} : { configPath: o.file }) });
      const provider = createCryptoProvider(config.security.crypto_provider);
      const pin = o.rootPublicKey ?? config.keys.root_public_key;
      if (pin === undefined) throw new InputError('E_USAGE', 'bulwark keys restore: pin the root with --root-public-key or keys.root_public_key (the backup is checked against it)');
      const rootPublicKey = parseRootPublicKey(pin, '--root-public-key');
      // The KEK (or the token's) the restored store is to open under, required before anything is
      // read: a store restored where its KEK is not would only fail later, at every service's start.
      const hsmConfigPath = config.security.hsm_enabled ? config.security.hsm_config_path : undefined;
      const target = hsmConfigPath === undefined ? { kind: 'file' as const, kek: loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd }) } : { kind: 'hsm' as const, configPath: loadHsmConfig(hsmConfigPath, io.env).path };
      let manifest: BackupManifest;
      try {
        manifest = JSON.parse(readFileSync(resolve(io.cwd, o.in), 'utf8')) as BackupManifest;
      } catch (cause) {
        throw new InputError('E_USAGE', `--in ${o.in}: not a readable backup file`, {}, { cause });
      }
      const holders = o.holderKey.map((h) => {
        const [id, file] = pair(h, '--holder-key');
        return { id, x25519SecretKey: key32(readFileSync(resolve(io.cwd, file), 'utf8'), `--holder-key ${id}`) };
      });
      const to = resolve(io.cwd, o.to);
      const existing = await fs.readdir(to).catch(() => [] as string[]);
      if (existing.length > 0) throw new InputError('E_USAGE', `--to ${to} is not empty; restore only into an empty directory (nothing is overwritten)`);
      const files = await restoreBackup({ provider, manifest, rootPublicKey, holders });
      const hash = backupHash(provider, manifest);
      let anchoredAt: number | undefined;
      if (o.anchorCheck) {
        const vkey = files.find((f) => f.name === PUBLIC_KEY_FILE);
        if (vkey === undefined) throw new InputError('E_BACKUP_NOT_ANCHORED', `restore: backup ${manifest.backupId} holds no ${PUBLIC_KEY_FILE}: the ledger it is anchored in cannot be verified; nothing restored (--no-anchor-check restores it unchecked)`, {});
        const flags = { ...(o.database === undefined ? {} : { database: o.database }), ...(o.schema === undefined ? {} : { schema: o.schema }) };
        const found = await findAnchor(io, flags, () => config, { backupId: manifest.backupId, verifierKeyText: new TextDecoder().decode(vkey.bytes).trim(), sha256: hash });
        if (found === undefined) throw new InputError('E_BACKUP_NOT_ANCHORED', `restore: backup ${manifest.backupId} (sha256 ${hash}) is not anchored in the ledger: no keys.exported event of svc.key-manager records it; nothing restored`, { backupId: manifest.backupId });
        anchoredAt = found.seq;
      } else {
        // Said before anything is written, so that an operator sees it even if the restore then fails.
        io.stderr(`warning: --no-anchor-check: backup ${manifest.backupId} (sha256 ${hash}) is restored WITHOUT checking the ledger for its keys.exported anchor; a backup made elsewhere or never declared is not detected\n`);
      }
      for (const f of files) if (basename(f.name) !== f.name || f.name.startsWith('.')) throw new InputError('E_USAGE', `backup holds a file name ${JSON.stringify(f.name)} that is not a plain name: refused`);
      const holdsRootFile = files.some((f) => ROOT_FILE.test(f.name));
      if (target.kind === 'hsm' && holdsRootFile) throw new InputError('E_BACKUP_CUSTODY', `restore: backup ${manifest.backupId} holds a root key file: it is of a store under a KEK file, not of an HSM store; nothing restored`, {});
      if (target.kind === 'file' && !holdsRootFile) throw new InputError('E_BACKUP_CUSTODY', `restore: backup ${manifest.backupId} holds no root key file: it is of an HSM store (its root is in the token); restore it with the HSM configuration (SYMBIONT_KEY_STORE_TYPE=hsm, SYMBIONT_HSM_CONFIG_PATH); nothing restored`, {});
      await writeRestored(to, files, async (dir) => {
        if (target.kind === 'hsm') return checkOnToken(target.configPath, dir, rootPublicKey, provider, io.env);
        const { kek } = target;
        const root = await loadRootKey(await FileKeyStore.open({ dir, wrapper: kek, provider })).catch((cause: unknown) => {
          throw new InputError('E_BACKUP_KEK', `restore: the restored root key does not open under ${kek.source} (${cause instanceof Error ? cause.message : String(cause)}): the wrong KEK for this backup; nothing restored`, {}, { cause });
        });
        root.keyPair.secretKey.fill(0);
        if (!Buffer.from(root.keyPair.publicKey).equals(Buffer.from(rootPublicKey))) throw new InputError('E_BACKUP_ROOT', 'restore: the root key in the backup is not the pinned root; nothing restored', {});
      });
      if (o.json === true) io.stdout(`${JSON.stringify({ backupId: manifest.backupId, sha256: hash, files: files.length, to, anchorChecked: anchoredAt !== undefined, anchoredAtSeq: anchoredAt ?? null })}\n`);
      else io.stdout(`restored backup ${manifest.backupId}: ${files.length} files in ${to}; ${anchoredAt === undefined ? 'its anchor in the ledger NOT checked (--no-anchor-check)' : `its hash anchored in the ledger at seq ${anchoredAt}`}\n`);
      setExitCode(ExitCode.ok);
    });
};
