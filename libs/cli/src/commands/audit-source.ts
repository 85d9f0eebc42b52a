/**
 * What every `bulwark audit` command needs: the ledger database (read directly, in its
 * own schema), the ledger's public key, dates. The public key is looked up in this order:
 * `--public-key` (inline or a file holding it), `$BULWARK_AUDIT_PUBLIC_KEY`, then
 * `<keys.dir>/audit-ledger.vkey`. It is either a C2SP verifier key
 * `<origin>+<key id>+<base64>`, or the audit-ledger service identity's raw Ed25519 public
 * key (64 hex digits or base64, as `bulwark init` prints it), named by the origin
 * (`--origin`, else `$SYMBIONT_LEDGER_ORIGIN`, else the service's default).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseVerifierKey, verifierKey, type LedgerDatabase, type VerifierKey } from '@bulwark/audit-ledger';
import { loadConfig, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider, fromHex, type CryptoProvider } from '@bulwark/crypto';
import { BulwarkError, InputError, isBulwarkError } from '@bulwark/errors';
import { closeDatabase, createDatabase, maskDatabaseUrl, type Kysely } from '@bulwark/store';
import type { CommandIO } from '../io.js';

export const DEFAULT_LEDGER_SCHEMA = 'audit_ledger';
export const PUBLIC_KEY_ENV = 'BULWARK_AUDIT_PUBLIC_KEY';
export const PUBLIC_KEY_FILE = 'audit-ledger.vkey';
/** The audit-ledger service's own default origin (its SYMBIONT_LEDGER_ORIGIN). */
export const DEFAULT_LEDGER_ORIGIN = 'bulwark.local/audit';
export const ORIGIN_ENV = 'SYMBIONT_LEDGER_ORIGIN';

export interface DatabaseFlags {
  readonly database?: string;
  readonly schema?: string;
}

export interface KeyFlags {
  readonly publicKey?: string;
  readonly origin?: string;
}

export interface LedgerKey {
  readonly crypto: CryptoProvider;
  readonly logKey: VerifierKey;
  readonly origin: string;
}

export function loadCliConfig(io: CommandIO): BulwarkConfig {
  return loadConfig({ env: io.env, cwd: io.cwd }).config;
}

const VKEY_SHAPE = /^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$/;
const RAW_HEX = /^[0-9a-fA-F]{64}$/;
const RAW_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

function isKeyText(text: string): boolean {
  return VKEY_SHAPE.test(text) || RAW_HEX.test(text) || RAW_BASE64.test(text);
}

/** The trusted ledger key (never taken from the data being verified). */
export function resolveLedgerKey(io: CommandIO, flags: KeyFlags, config: () => BulwarkConfig): LedgerKey {
  const crypto = createCryptoProvider();
  let text: string;
  let where: string;
  if (flags.publicKey !== undefined) {
    const value = flags.publicKey.trim();
    if (isKeyText(value)) {
      text = value;
      where = '--public-key';
    } else {
      const path = resolve(io.cwd, value);
      if (!existsSync(path)) throw new InputError('E_USAGE', `--public-key: ${JSON.stringify(value)} is neither a verifier key (<origin>+<key id>+<base64>) nor a readable file`);
      text = readFileSync(path, 'utf8').trim();
      where = `--public-key file ${value}`;
    }
  } else if (io.env[PUBLIC_KEY_ENV] !== undefined && io.env[PUBLIC_KEY_ENV] !== '') {
    text = io.env[PUBLIC_KEY_ENV]!.trim();
    where = PUBLIC_KEY_ENV;
  } else {
    const path = resolve(io.cwd, join(config().keys.dir ?? '.bulwark/keys', PUBLIC_KEY_FILE));
    if (!existsSync(path)) {
      throw new InputError('E_USAGE', `no ledger public key: pass --public-key, set ${PUBLIC_KEY_ENV}, or write the ledger's verifier key to ${path}`);
    }
    text = readFileSync(path, 'utf8').trim();
    where = path;
  }
  if (RAW_HEX.test(text) || RAW_BASE64.test(text)) {
    const publicKey = RAW_HEX.test(text) ? fromHex(text, where) : new Uint8Array(Buffer.from(text, 'base64'));
    if (publicKey.length !== 32) throw new InputError('E_USAGE', `${where}: an Ed25519 public key is 32 bytes`);
    // The service names its ledger key after its origin, so the raw key needs the origin to become a note key.
    const origin = flags.origin ?? (io.env[ORIGIN_ENV] || DEFAULT_LEDGER_ORIGIN);
    return { crypto, logKey: verifierKey(crypto, origin, publicKey), origin };
  }
  let logKey: VerifierKey;
  try {
    logKey = parseVerifierKey(crypto, text);
  } catch (cause) {
    throw new InputError('E_USAGE', `${where}: not a ledger verifier key: ${cause instanceof Error ? cause.message : String(cause)}`, {}, { cause });
  }
  // The ledger names its key after its origin; --origin is for a ledger that does not.
  return { crypto, logKey, origin: flags.origin ?? logKey.name };
}

export interface LedgerConnection {
  readonly db: Kysely<LedgerDatabase>;
  readonly where: string;
  close(): Promise<void>;
}

/** Where the ledger is looked for: --database, $DATABASE_URL, [database] url; the schema from --schema, $SYMBIONT_LEDGER_SCHEMA, audit_ledger. `where` names it with the password masked; `url` undefined when none is set. */
export function ledgerLocation(io: CommandIO, flags: DatabaseFlags, config: () => BulwarkConfig): { url: string | undefined; schema: string; where: string } {
  const given = flags.database ?? io.env['DATABASE_URL'] ?? config().database.url;
  const url = given === '' ? undefined : given;
  const schema = flags.schema ?? (io.env['SYMBIONT_LEDGER_SCHEMA'] || DEFAULT_LEDGER_SCHEMA);
  return { url, schema, where: `schema ${schema} at ${url === undefined ? '(no database set)' : maskDatabaseUrl(url)}` };
}

/** Opens the ledger schema read-only in intent (no migration) and checks the tables are there. */
export async function openLedgerDatabase(io: CommandIO, flags: DatabaseFlags, config: () => BulwarkConfig): Promise<LedgerConnection> {
  const { url, schema, where } = ledgerLocation(io, flags, config);
  if (url === undefined) throw new InputError('E_USAGE', 'no ledger database: pass --database URL or set DATABASE_URL');
  let db: Kysely<LedgerDatabase>;
  try {
    db = await createDatabase<LedgerDatabase>({ url, schema, maxConnections: 2, applicationName: 'bulwark-cli-audit' });
  } catch (cause) {
    if (isBulwarkError(cause)) {
      // PGlite serves one process: the running ledger holds it.
      const hint = /already open in process/.test(cause.message) ? '; the embedded PGlite serves one process: run this while the system is stopped, or run Bulwark on PostgreSQL' : '';
      throw new InputError('E_USAGE', `--database / --schema: ${cause.message}${hint}`, {}, { cause });
    }
    throw cause;
  }
  try {
    await db.selectFrom('ledger_head').select('size').executeTakeFirstOrThrow();
  } catch (cause) {
    await closeDatabase(db);
    const message = cause instanceof Error ? cause.message.split('\n')[0]! : String(cause);
    if (/does not exist|no result/i.test(message)) throw new InputError('E_USAGE', `${where}: no audit ledger there (${message})`, { schema }, { cause });
    throw new BulwarkError('E_DATABASE', `cannot read the audit ledger in ${where}: ${message}`, { schema }, { cause });
  }
  return { db, where, close: () => closeDatabase(db) };
}

const DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** YYYY-MM-DD (UTC midnight) or an ISO 8601 time with a zone. */
export function parseDate(option: string, value: string): Date {
  const date = new Date(value);
  if (!DATE.test(value) || Number.isNaN(date.getTime())) throw new InputError('E_USAGE', `${option}: ${JSON.stringify(value)} is not a date (use YYYY-MM-DD or an ISO 8601 time with a zone)`);
  return date;
}
