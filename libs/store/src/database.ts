import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { connectError, connectFailureReason } from './connect-error.js';
import { StoreError } from './errors.js';
import { EmbeddedDialect } from './pglite-driver.js';
import { lockDataDir } from './pglite-lock.js';
import { assertSchemaName } from './schema-name.js';
import { parseDatabaseUrl } from './url.js';
import type { DatabaseTarget } from './url.js';
import { pgliteParsers, pgTypeParsers } from './value-types.js';

export interface DatabaseOptions {
  /** `postgres://...`, `pglite:memory` or `pglite:<dir>`; absent or empty means `pglite:memory`. */
  readonly url?: string | undefined;
  /** The service's own schema: every unqualified table name resolves in it, and only in it. */
  readonly schema: string;
  /** PostgreSQL pool size (default 5). PGlite has one session, whatever this says. */
  readonly maxConnections?: number;
  /** How long to wait for a PostgreSQL connection, in ms (default 5000). */
  readonly connectTimeoutMs?: number;
  /** Shown in pg_stat_activity (default `bulwark-<schema>`). */
  readonly applicationName?: string;
  /**
   * Called when an idle pooled connection fails (the server restarted, say). The pool
   * drops that connection and the next query opens a new one, so the default ignores it.
   */
  readonly onIdleError?: (error: Error) => void;
}

/** What a database handle points at, for logs, health reports and error messages. */
export interface DatabaseInfo {
  readonly backend: DatabaseTarget['backend'];
  /** The URL with its password masked. */
  readonly target: string;
  readonly schema: string;
}

export type DatabaseHealth =
  | { readonly ready: true; readonly latencyMs: number }
  | { readonly ready: false; readonly reason: string; readonly error: StoreError };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- keyed by any Kysely<DB>
const infos = new WeakMap<Kysely<any>, DatabaseInfo & { readonly source: DatabaseTarget }>();

/**
 * Opens the service's database and checks that it answers. The search_path of every
 * connection is the service's schema alone, so unqualified names never reach another
 * service's tables (or `public`). The schema itself is created by `migrateToLatest`.
 */
export async function createDatabase<DB>(options: DatabaseOptions): Promise<Kysely<DB>> {
  assertSchemaName(options.schema);
  const target = parseDatabaseUrl(options.url);
  const db = target.backend === 'postgres' ? await openPostgres<DB>(target, options) : await openPglite<DB>(target, options.schema);
  infos.set(db, { backend: target.backend, target: target.display, schema: options.schema, source: target });
  return db;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
export function databaseInfo(db: Kysely<any>): DatabaseInfo {
  const info = infos.get(db);
  if (!info) throw new StoreError('E_DB_UNKNOWN', 'this Kysely instance was not opened by createDatabase', {});
  return { backend: info.backend, target: info.target, schema: info.schema };
}

/** Readiness: a `select 1` that answers within `timeoutMs` (default 2000). Never throws. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
export async function checkDatabase(db: Kysely<any>, timeoutMs = 2000): Promise<DatabaseHealth> {
  const info = infos.get(db);
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to select 1 within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([sql`select 1`.execute(db), timeout]);
    return { ready: true, latencyMs: performance.now() - started };
  } catch (cause) {
    const error = info
      ? connectError(info.source, cause)
      : new StoreError('E_DB_CONNECT', `database check failed: ${connectFailureReason(cause)}`, {}, { cause });
    return { ready: false, reason: connectFailureReason(cause), error };
  } finally {
    clearTimeout(timer);
  }
}

/** Closes the pool or the embedded instance (and releases its data directory). Safe to call twice. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
export async function closeDatabase(db: Kysely<any>): Promise<void> {
  await db.destroy();
}

async function openPostgres<DB>(target: DatabaseTarget & { backend: 'postgres' }, options: DatabaseOptions): Promise<Kysely<DB>> {
  const { connectionString, startupOptions } = withSearchPath(target.url, options.schema);
  const pool = new pg.Pool({
    connectionString,
    options: startupOptions,
    max: options.maxConnections ?? 5,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    application_name: options.applicationName ?? `bulwark-${options.schema}`,
    types: pgTypeParsers,
  });
  pool.on('error', (error) => options.onIdleError?.(error));
  return opened(new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), target);
}

/**
 * `db` once a first query answered; else it is destroyed and the failure is a connect error.
 * The first query goes through kysely on purpose: kysely's destroy() does nothing for a
 * driver that never ran a query, which would leave the pool (or PGlite) open.
 */
async function opened<DB>(db: Kysely<DB>, target: DatabaseTarget): Promise<Kysely<DB>> {
  try {
    await sql`select 1`.execute(db);
  } catch (cause) {
    await db.destroy().catch(() => undefined);
    throw connectError(target, cause);
  }
  return db;
}

/**
 * The search_path goes into the connection's startup options, so it holds for every
 * pooled connection from its first query on and beats a role's or database's default.
 * pg lets options in the URL override the ones passed beside it, so any `options=`
 * in the URL is moved out and ours is appended after it (the last `-c` wins).
 */
function withSearchPath(url: string, schema: string): { connectionString: string; startupOptions: string } {
  const parsed = new URL(url);
  const userOptions = parsed.searchParams.get('options');
  parsed.searchParams.delete('options');
  const startupOptions = [userOptions, `-c search_path=${schema}`].filter((part) => part !== null && part !== '').join(' ');
  return { connectionString: parsed.toString(), startupOptions };
}

async function openPglite<DB>(target: DatabaseTarget & { backend: 'pglite' }, schema: string): Promise<Kysely<DB>> {
  // PGlite serves a single session, so each service's schema gets its own instance
  // (and its own directory): services never share tables, only events.
  const dataDir = target.dataDir === undefined ? undefined : join(resolve(target.dataDir), schema);
  let release = (): void => undefined;
  let pglite: PGlite | undefined;
  try {
    if (dataDir !== undefined) {
      mkdirSync(resolve(dataDir, '..'), { recursive: true });
      release = lockDataDir(dataDir);
    }
    pglite = new PGlite(dataDir, { parsers: pgliteParsers });
    await pglite.waitReady;
    await pglite.exec(`set search_path to ${schema}`);
  } catch (cause) {
    await pglite?.close().catch(() => undefined);
    release();
    if (cause instanceof StoreError) throw cause;
    throw connectError(target, cause);
  }
  return opened(new Kysely<DB>({ dialect: new EmbeddedDialect(pglite, release) }), target);
}
