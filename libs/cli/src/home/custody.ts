/**
 * Custody of a home's keys (issue 12 "Custody", DESIGN §8). The root signing key and the NATS
 * operator and account keys live only in the key manager's store, `<home>/key-manager/keys`,
 * under the key manager's own KEK (`SYMBIONT_KEY_MANAGER_KEK_FILE`, else the development file
 * `<home>/key-manager/kek`; or the HSM with SYMBIONT_KEY_STORE_TYPE=hsm). `bulwark init` writes
 * there; `bulwark up` then copies out, re-wrapped under the home KEK, only what each other party
 * needs: the administrator's directory `<home>/admin` (its identity, its NATS user, the
 * operator's NATS user, the root pin, the ledger verifier key, the signed entries), which every
 * command that talks to the running system reads, and each service's `<home>/run/keys/<name>`.
 * A process holding the home KEK can thus never unwrap the root: it is wrapped under another key.
 */
import { cpSync, existsSync, mkdirSync, promises as fs, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { ServicePrincipals } from '@bulwark/bus';
import { InputError } from '@bulwark/errors';
import { HSM_PIN_ENV, KEK_ENV, KEK_FILE_ENV, loadHsmConfig, PENDING_DIR, readRootPinFile, ROOT_KEY_OWNER, ROOT_PIN_FILE, type FileKeyStore, type KeyKind, type StoredKeyInfo } from '@bulwark/keystore';
import { PUBLIC_KEY_FILE } from '../commands/audit-source.js';
import type { CommandIO } from '../io.js';
import { ADMIN_PRINCIPAL } from './admin.js';
import { ENTRIES_DIR } from './entries.js';
import { HomeError, type Home } from './home.js';
import { openKeyStore } from './session.js';

export const KEY_MANAGER_KEK_FILE_ENV = 'SYMBIONT_KEY_MANAGER_KEK_FILE';

const WRAPPED_KEY = /^(.+)\.(ed25519|x25519|nats-operator|nats-account|nats-system-account|nats-user)\.v[1-9][0-9]{0,9}\.json$/;
const JWT_FILE = /^(.+)\.nats-user\.v[1-9][0-9]{0,9}\.jwt$/;

/** The configuration's variables that put a store on an HSM (`@bulwark/config`). */
export const KEY_STORE_TYPE_ENV = 'SYMBIONT_KEY_STORE_TYPE';
export const HSM_CONFIG_ENV = 'SYMBIONT_HSM_CONFIG_PATH';
const CUSTODY_FORMAT = 'bulwark-custody/v1';

/** Where the key manager's keys are: under its KEK file (the default), or on an HSM. */
export type KeyManagerCustody = { readonly kind: 'file' } | { readonly kind: 'hsm'; readonly hsmConfig: string };

/** The home's recorded custody (`<home>/key-manager/custody.json`); none recorded is `file`. */
export function readCustody(home: Home): KeyManagerCustody {
  if (!existsSync(home.custodyFile)) return { kind: 'file' };
  let doc: { format?: unknown; store?: unknown; hsm_config?: unknown };
  try {
    doc = JSON.parse(readFileSync(home.custodyFile, 'utf8')) as typeof doc;
  } catch (cause) {
    throw new HomeError('E_HOME_CORRUPT', `${home.custodyFile} is corrupt (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}); the home was left as it is`, { path: home.custodyFile }, { cause });
  }
  if (doc.format !== CUSTODY_FORMAT || doc.store !== 'hsm' || typeof doc.hsm_config !== 'string' || doc.hsm_config === '') {
    throw new HomeError('E_HOME_CORRUPT', `${home.custodyFile}: not a ${CUSTODY_FORMAT} record of an HSM custody ({"format", "store": "hsm", "hsm_config"}); the home was left as it is`, { path: home.custodyFile });
  }
  return { kind: 'hsm', hsmConfig: doc.hsm_config };
}

/** `--key-store file|hsm` and `--hsm-config F` (which alone means hsm), checked; undefined when neither is given. */
export function keyStoreChoice(requested: { keyStore?: string | undefined; hsmConfig?: string | undefined }, cwd: string): KeyManagerCustody | undefined {
  const kind = requested.keyStore ?? (requested.hsmConfig === undefined ? undefined : 'hsm');
  if (kind === undefined) return undefined;
  if (kind === 'file') {
    if (requested.hsmConfig !== undefined) throw new InputError('E_USAGE', '--hsm-config is for --key-store hsm', {});
    return { kind };
  }
  if (kind !== 'hsm') throw new InputError('E_USAGE', `--key-store ${JSON.stringify(kind)}: use file or hsm`, { keyStore: kind });
  if (requested.hsmConfig === undefined) throw new InputError('E_USAGE', '--key-store hsm needs --hsm-config <file> (the HSM configuration, TOML)', {});
  return { kind, hsmConfig: resolve(cwd, requested.hsmConfig) };
}

/** `--key-store` / `--hsm-config` (`bulwark init`, offline `principal add`) as the configuration's variables, which they override; neither given: `env` as it is. */
export function withKeyStoreChoice(env: NodeJS.ProcessEnv, requested: { keyStore?: string | undefined; hsmConfig?: string | undefined }, cwd: string): NodeJS.ProcessEnv {
  const chosen = keyStoreChoice(requested, cwd);
  if (chosen === undefined) return env;
  return { ...env, [KEY_STORE_TYPE_ENV]: chosen.kind, ...(chosen.kind === 'hsm' ? { [HSM_CONFIG_ENV]: chosen.hsmConfig } : {}) };
}

/**
 * `bulwark up --key-store hsm --hsm-config F` (or SYMBIONT_KEY_STORE_TYPE=hsm with
 * SYMBIONT_HSM_CONFIG_PATH): the key manager's custody, fixed at the home's first start and
 * recorded, so that later starts need no flag. A different choice for a home that has one is
 * refused, and so is an HSM for a home whose key manager's store already exists under a KEK file
 * (its root is a file: it cannot move into a token, and a token root would not be the pinned one).
 */
export function chooseCustody(home: Home, requested: { keyStore?: string | undefined; hsmConfig?: string | undefined }, cwd: string, env: NodeJS.ProcessEnv): KeyManagerCustody {
  const wanted = keyStoreChoice(requested, cwd);
  const recorded = readCustody(home);
  const storeExists = existsSync(home.keyManagerKeysDir) && readdirSync(home.keyManagerKeysDir).length > 0;
  const describe = (c: KeyManagerCustody): string => (c.kind === 'file' ? 'a KEK file' : `the HSM of ${c.hsmConfig}`);
  if (wanted === undefined || (wanted.kind === recorded.kind && (wanted.kind === 'file' || (recorded.kind === 'hsm' && wanted.hsmConfig === recorded.hsmConfig)))) return recorded;
  if (existsSync(home.custodyFile) || storeExists) {
    throw new HomeError('E_HOME_CUSTODY', `${home.dir}: the key manager's keys are under ${describe(recorded)} (${existsSync(home.custodyFile) ? home.custodyFile : home.keyManagerKeysDir}), not ${describe(wanted)}; a home's custody is chosen at its first start (start a new home for another)`, { dir: home.dir });
  }
  if (wanted.kind === 'file') return wanted;
  // Read now (module, token, PIN source): a wrong file stops here, before the home records it.
  loadHsmConfig(wanted.hsmConfig, env);
  mkdirSync(join(home.custodyFile, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(home.custodyFile, `${JSON.stringify({ format: CUSTODY_FORMAT, store: 'hsm', hsm_config: wanted.hsmConfig }, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
  return wanted;
}

/**
 * The environment of the key manager (and of the `bulwark init` that fills its store): its own
 * store and its own KEK file, or its HSM; the home KEK (SYMBIONT_KEK) is not passed on, so that
 * the two never coincide by accident.
 */
export function keyManagerEnvironment(home: Home, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const custody = readCustody(home);
  const out: NodeJS.ProcessEnv = { ...env, SYMBIONT_KEY_DIR: home.keyManagerKeysDir };
  delete out[KEK_ENV];
  if (custody.kind === 'hsm') {
    delete out[KEK_FILE_ENV];
    out[KEY_STORE_TYPE_ENV] = 'hsm';
    out[HSM_CONFIG_ENV] = custody.hsmConfig;
  } else {
    out[KEK_FILE_ENV] = env[KEY_MANAGER_KEK_FILE_ENV] || home.keyManagerKekFile;
    out[KEY_STORE_TYPE_ENV] = 'file';
    delete out[HSM_CONFIG_ENV];
  }
  const pin = join(home.keyManagerKeysDir, ROOT_PIN_FILE);
  if (!env['SYMBIONT_ROOT_PUBLIC_KEY'] && existsSync(pin)) out['SYMBIONT_ROOT_PUBLIC_KEY'] = readRootPinFile(pin);
  return out;
}

/** The environment of anyone but the key manager: no HSM (it is the key manager's alone), not its PIN. */
export function withoutHsm(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, [KEY_STORE_TYPE_ENV]: 'file' };
  delete out[HSM_CONFIG_ENV];
  delete out[HSM_PIN_ENV];
  return out;
}

/** The key manager's KEK: SYMBIONT_KEY_MANAGER_KEK_FILE, else a development file made on first start. */
export function ensureKeyManagerKek(io: CommandIO, home: Home): void {
  if (readCustody(home).kind === 'hsm' || io.env[KEY_MANAGER_KEK_FILE_ENV] || existsSync(home.keyManagerKekFile)) return;
  mkdirSync(join(home.keyManagerKekFile, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(home.keyManagerKekFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  io.stderr(`bulwark up: warning: generated the key manager's development key-encryption key in ${home.keyManagerKekFile} (mode 0600); production uses ${KEY_MANAGER_KEK_FILE_ENV} or an HSM\n`);
}

/** Replaces `to` with `from`'s bytes atomically (mode as given). */
async function copyFile(from: string, to: string, mode: number): Promise<void> {
  const tmp = `${to}.${process.pid}.tmp`;
  await fs.writeFile(tmp, await fs.readFile(from), { mode });
  await fs.chmod(tmp, mode);
  await fs.rename(tmp, to);
}

/** Whose keys a directory gets: an owner's identity and NATS user, or only its NATS user (the operator's, owned by `root`). */
export interface KeySelection {
  readonly owner: string;
  readonly kinds: readonly KeyKind[];
}

const ownKeys = (principal: string): KeySelection => ({ owner: principal, kinds: ['ed25519', 'x25519', 'nats-user'] });
/** The operator's NATS user: its files are `root.nats-user.v1.*`, beside (never with) the root's signing key. */
const OPERATOR_NATS_USER: KeySelection = { owner: ROOT_KEY_OWNER, kinds: ['nats-user'] };

/**
 * Copies the selected private keys from `source` into `target`, unwrapped from one KEK and
 * wrapped under the other (a key `target` already holds is kept: it may be newer than the
 * source's, e.g. rotated by `bulwark keys rotate`; a different key under the same name is
 * refused, and one that does not open under `target`'s KEK fails), their NATS user JWTs, and the public files `names`. The root's signing key and the
 * NATS operator and account keys are not selectable (`kinds` never names them for root).
 */
export async function exportOwnKeys(source: FileKeyStore, target: FileKeyStore, selections: readonly KeySelection[], names: readonly string[] = [ROOT_PIN_FILE]): Promise<void> {
  for (const { owner, kinds } of selections) {
    const keys = (await source.list(owner)).filter((k) => kinds.includes(k.kind));
    if (keys.length === 0) throw new HomeError('E_CUSTODY', `no keys of ${owner} in the key manager's store ${source.dir}: run bulwark up again (its init makes them)`, { principal: owner });
    const held = await target.list(owner);
    for (const info of keys) {
      const same = held.find((k) => k.kind === info.kind && k.version === info.version);
      if (same !== undefined) {
        if (Buffer.compare(Buffer.from(same.publicKey), Buffer.from(info.publicKey)) !== 0) {
          throw new HomeError('E_CUSTODY', `${target.pathOf(info)} holds another ${info.kind} v${info.version} of ${owner} than the key manager's store; move it aside and run bulwark up again`, { path: target.pathOf(info) });
        }
        // It must open under the target's KEK: a wrong home KEK stops `up` here, before anything starts.
        (await target.get(info)).secretKey.fill(0);
        continue;
      }
      const { secretKey } = await source.get(info);
      try {
        await target.put(info, secretKey);
      } finally {
        secretKey.fill(0);
      }
    }
    if (kinds.includes('nats-user')) {
      for (const name of readdirSync(source.dir)) if (JWT_FILE.exec(name)?.[1] === owner) await copyFile(join(source.dir, name), join(target.dir, name), 0o600);
    }
  }
  for (const name of names) if (existsSync(join(source.dir, name))) await copyFile(join(source.dir, name), join(target.dir, name), 0o644);
}

/**
 * `<home>/admin`: the administrator's identity and NATS user, the operator's NATS user (`bulwark
 * status`, `recover`), the root pin, the ledger verifier key and the signed entries (`recover`
 * republishes them), under the home KEK (`homeEnv`).
 */
export async function exportAdminDirectory(source: FileKeyStore, home: Home, homeEnv: NodeJS.ProcessEnv, cwd: string): Promise<FileKeyStore> {
  const { store } = await openKeyStore({ ...homeEnv, SYMBIONT_KEY_DIR: home.adminDir }, cwd);
  await exportOwnKeys(source, store, [ownKeys(ADMIN_PRINCIPAL), OPERATOR_NATS_USER], [ROOT_PIN_FILE, PUBLIC_KEY_FILE]);
  const entries = join(source.dir, ENTRIES_DIR);
  if (existsSync(entries)) {
    mkdirSync(join(store.dir, ENTRIES_DIR), { recursive: true, mode: 0o755 });
    for (const name of readdirSync(entries)) await copyFile(join(entries, name), join(store.dir, ENTRIES_DIR, name), 0o644);
  }
  return store;
}

/**
 * What a rotating service wrote into its own directory since the last export and the key
 * manager's store never holds (the holder keeps its new versions itself): its versions above the
 * store's, their NATS user JWTs, and its pending slot (a rotation staged and maybe committed).
 * Without them a restarted service would come back on init's version 1, which the directory no
 * longer certifies, and the ledger would not hold the key its chain puts in force.
 */
async function ownLaterVersions(source: FileKeyStore, principal: string, dir: string, homeEnv: NodeJS.ProcessEnv, cwd: string): Promise<{ keys: { info: StoredKeyInfo; secretKey: Uint8Array }[]; files: { name: string; data: Buffer }[] }> {
  const out = { keys: [] as { info: StoredKeyInfo; secretKey: Uint8Array }[], files: [] as { name: string; data: Buffer }[] };
  if (!existsSync(dir)) return out;
  const exported = Math.max(0, ...(await source.list(principal)).filter((k) => k.kind === 'ed25519').map((k) => k.version));
  const { store: old } = await openKeyStore({ ...homeEnv, SYMBIONT_KEY_DIR: dir }, cwd);
  try {
    for (const info of (await old.list(principal)).filter((k) => ownKeys(principal).kinds.includes(k.kind) && k.version > exported)) {
      out.keys.push({ info, secretKey: (await old.get(info)).secretKey });
    }
  } catch (cause) {
    for (const k of out.keys) k.secretKey.fill(0);
    throw new HomeError('E_CUSTODY', `${dir} holds later versions of ${principal} that do not open under the home KEK (${cause instanceof Error ? cause.message : String(cause)}); move it aside and run bulwark up again`, { principal, dir }, { cause });
  }
  for (const name of readdirSync(dir)) {
    const jwt = /^(.+)\.nats-user\.v([1-9][0-9]{0,9})\.jwt$/.exec(name);
    if (jwt?.[1] === principal && Number(jwt[2]) > exported) out.files.push({ name, data: readFileSync(join(dir, name)) });
  }
  const pending = join(dir, PENDING_DIR);
  if (existsSync(pending)) for (const name of readdirSync(pending)) out.files.push({ name: join(PENDING_DIR, name), data: readFileSync(join(pending, name)) });
  return out;
}

/**
 * A service's own key directory, written afresh at each start from the key manager's store (never
 * the key manager's: it runs from its store), keeping only what the service itself rotated to
 * since (`ownLaterVersions`).
 */
export async function exportServiceDirectory(source: FileKeyStore, principal: string, dir: string, homeEnv: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  if (principal === ServicePrincipals.keys) throw new HomeError('E_CUSTODY', `${principal} runs from its own store ${source.dir}, not from an exported directory`, { principal });
  const later = await ownLaterVersions(source, principal, dir, homeEnv, cwd);
  rmSync(dir, { recursive: true, force: true });
  const { store } = await openKeyStore({ ...homeEnv, SYMBIONT_KEY_DIR: dir }, cwd);
  await exportOwnKeys(source, store, [ownKeys(principal)]);
  try {
    for (const { info, secretKey } of later.keys) await store.put(info, secretKey);
  } finally {
    for (const k of later.keys) k.secretKey.fill(0);
  }
  for (const { name, data } of later.files) {
    mkdirSync(join(store.dir, name, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(join(store.dir, name), data, { mode: 0o600 });
  }
  return store.dir;
}

/**
 * A home of the previous layout (one store `<home>/keys`, the root in it under the home KEK):
 * its keys move into the key manager's store, re-wrapped under the key manager's KEK, its other
 * files (pins, JWTs, entries) are copied, and then `<home>/keys` is removed, so that nothing
 * under the home KEK keeps the root. A half-done move (both present) is refused, not guessed at.
 */
export async function migrateLegacyKeys(io: CommandIO, home: Home, homeEnv: NodeJS.ProcessEnv, kmEnv: NodeJS.ProcessEnv): Promise<void> {
  if (!existsSync(home.legacyKeysDir)) return;
  if (readCustody(home).kind === 'hsm') {
    throw new HomeError('E_HOME_LAYOUT', `${home.dir} has ${home.legacyKeysDir} (the previous layout, a root key file) and an HSM custody: a file root cannot move into the token; start a new home`, { dir: home.dir });
  }
  if (existsSync(home.keyManagerKeysDir) && readdirSync(home.keyManagerKeysDir).length > 0) {
    throw new HomeError(
      'E_HOME_LAYOUT',
      `${home.dir} has both ${home.legacyKeysDir} (the previous layout, the root under the home KEK) and ${home.keyManagerKeysDir}: an earlier migration did not finish; remove ${home.keyManagerKeysDir} and run bulwark up again to redo it from ${home.legacyKeysDir}`,
      { dir: home.dir },
    );
  }
  const { store: legacy } = await openKeyStore({ ...homeEnv, SYMBIONT_KEY_DIR: home.legacyKeysDir }, io.cwd);
  const { store: km } = await openKeyStore(kmEnv, io.cwd);
  cpSync(legacy.dir, km.dir, { recursive: true, filter: (src) => !WRAPPED_KEY.test(basename(src)) });
  for (const info of await legacy.list()) {
    const { secretKey } = await legacy.get(info);
    try {
      await km.put(info, secretKey);
    } finally {
      secretKey.fill(0);
    }
  }
  rmSync(legacy.dir, { recursive: true, force: true });
  io.stderr(`bulwark up: moved the keys of ${home.legacyKeysDir} (previous layout) into the key manager's store ${km.dir}, under its own KEK; ${home.legacyKeysDir} is removed\n`);
}
