/**
 * One home for a running system (issue 11): a directory that holds everything a running
 * Bulwark needs and every command that talks to it reads. `--dir D`, else `$SYMBIONT_HOME`,
 * else `./.bulwark`.
 *
 * ```
 * <home>/bulwark-home.json   marker: { format: "bulwark-home/v1", created }
 * <home>/kek                 development home KEK (0600), only when SYMBIONT_KEK(_FILE) is unset
 * <home>/key-manager/kek     the key manager's own development KEK (0600), only when
 *                            SYMBIONT_KEY_MANAGER_KEK_FILE is unset
 * <home>/key-manager/keys/   the key manager's store (`bulwark init`): the root key, the NATS
 *                            operator and account keys, every identity init made; entries/
 * <home>/key-manager/custody.json  when the key manager's custody is an HSM (`bulwark up
 *                            --key-store hsm`): the HSM configuration; the root is the token's
 * <home>/admin/              the administrator's own keys and NATS user, the operator's NATS
 *                            user, root.pub, audit-ledger.vkey, entries/ (under the home KEK):
 *                            what every command that talks to the running system reads
 * <home>/run/keys/<service>/ each other service's own keys (under the home KEK), per start
 * <home>/nats/               nats-server configuration and JetStream store (when `up` runs NATS)
 * <home>/db/                 embedded PGlite, one directory per schema (when DATABASE_URL is unset)
 * <home>/logs/<service>.log  each service's pino log
 * <home>/run/up.json         the running system: NATS URL, database, processes, metrics ports
 * ```
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BulwarkError, InputError } from '@bulwark/errors';

export const HOME_ENV = 'SYMBIONT_HOME';
export const DEFAULT_HOME = '.bulwark';
export const HOME_MARKER = 'bulwark-home.json';
export const HOME_FORMAT = 'bulwark-home/v1';

export interface Home {
  readonly dir: string;
  readonly marker: string;
  readonly kekFile: string;
  /** The previous layout's single store (root and all, under the home KEK): migrated by `bulwark up`. */
  readonly legacyKeysDir: string;
  readonly keyManagerKekFile: string;
  readonly keyManagerKeysDir: string;
  /** Where the key manager's keys are when not under its KEK file: `{ store: "hsm", hsm_config }` (custody.ts). */
  readonly custodyFile: string;
  readonly adminDir: string;
  readonly natsDir: string;
  readonly dbDir: string;
  readonly logsDir: string;
  readonly runDir: string;
  readonly stateFile: string;
}

export function homeAt(dir: string): Home {
  return {
    dir,
    marker: join(dir, HOME_MARKER),
    kekFile: join(dir, 'kek'),
    legacyKeysDir: join(dir, 'keys'),
    keyManagerKekFile: join(dir, 'key-manager', 'kek'),
    keyManagerKeysDir: join(dir, 'key-manager', 'keys'),
    custodyFile: join(dir, 'key-manager', 'custody.json'),
    adminDir: join(dir, 'admin'),
    natsDir: join(dir, 'nats'),
    dbDir: join(dir, 'db'),
    logsDir: join(dir, 'logs'),
    runDir: join(dir, 'run'),
    stateFile: join(dir, 'run', 'up.json'),
  };
}

/** `--dir`, else `$SYMBIONT_HOME`, else `./.bulwark`, resolved against the working directory. */
export function resolveHome(cwd: string, env: NodeJS.ProcessEnv, dirFlag: string | undefined): Home {
  const chosen = dirFlag ?? (env[HOME_ENV] || DEFAULT_HOME);
  return homeAt(resolve(cwd, chosen));
}

export class HomeError extends BulwarkError {}

/**
 * Reads the marker of an existing home. A directory that is not empty and has no marker, or
 * whose marker is not ours, is refused rather than written into (nothing is overwritten).
 */
export function checkHome(home: Home): 'absent' | 'empty' | 'home' {
  if (!existsSync(home.dir)) return 'absent';
  if (!statSync(home.dir).isDirectory()) throw new InputError('E_HOME', `${home.dir}: not a directory`, { dir: home.dir });
  if (!existsSync(home.marker)) {
    if (readdirSync(home.dir).length === 0) return 'empty';
    throw new InputError('E_HOME', `${home.dir} is not a Bulwark home (no ${HOME_MARKER}) and is not empty: choose an empty or new directory with --dir`, { dir: home.dir });
  }
  let format: unknown;
  try {
    format = (JSON.parse(readFileSync(home.marker, 'utf8')) as { format?: unknown }).format;
  } catch (cause) {
    throw new HomeError('E_HOME_CORRUPT', `${home.marker} is corrupt (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}); the home was left as it is`, { dir: home.dir }, { cause });
  }
  if (format !== HOME_FORMAT) throw new HomeError('E_HOME_CORRUPT', `${home.marker}: format ${JSON.stringify(format)} is not ${HOME_FORMAT}; the home was left as it is`, { dir: home.dir });
  return 'home';
}

/** Creates the home (0700) and its marker if it is new; an existing home is checked, never rewritten. */
export function ensureHome(home: Home): { created: boolean } {
  const state = checkHome(home);
  if (state === 'home') {
    for (const d of [home.logsDir, home.runDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
    return { created: false };
  }
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.marker, `${JSON.stringify({ format: HOME_FORMAT, created: new Date().toISOString() }, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
  for (const d of [home.logsDir, home.runDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  return { created: true };
}

/** A command that talks to a running system needs an existing home. */
export function requireHome(home: Home): void {
  if (checkHome(home) !== 'home') {
    throw new InputError('E_HOME', `no Bulwark home at ${home.dir}: start one with \`npm start\` (bulwark up --dir ${home.dir}), or pass --dir / set ${HOME_ENV}`, { dir: home.dir });
  }
}
