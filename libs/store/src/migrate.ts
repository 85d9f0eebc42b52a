import { Migrator } from 'kysely';
import type { Kysely, Migration, MigrationProvider, MigrationResultSet } from 'kysely';
import { databaseInfo } from './database.js';
import { StoreError } from './errors.js';

export type { Migration } from 'kysely';

/**
 * A service's migrations, in code so they run from `dist/` without reading a folder:
 * `{ '0001_init': { up, down }, '0002_add_index': { up } }`. They run in name order,
 * so names start with a zero-padded number.
 */
export type Migrations = Readonly<Record<string, Migration>>;

export interface MigrationReport {
  readonly schema: string;
  /** Migrations this call applied (or rolled back), in order; empty when already current. */
  readonly applied: readonly string[];
}

export interface MigrationState {
  readonly name: string;
  readonly appliedAt: Date | undefined;
}

const MIGRATION_NAME = /^[0-9]{4,}_[a-z0-9_]+$/;

/**
 * Brings the database's schema up to the last migration. The schema is created if
 * missing and holds the bookkeeping tables too (`kysely_migration`,
 * `kysely_migration_lock`). Pending migrations run in one transaction under
 * PostgreSQL's advisory lock (kysely's), so two processes starting at once apply each
 * migration once; a failure rolls back every migration of this run.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
export async function migrateToLatest(db: Kysely<any>, migrations: Migrations): Promise<MigrationReport> {
  const { schema } = databaseInfo(db);
  return report(schema, await migrator(db, schema, migrations).migrateToLatest(), 'migrate');
}

/** Undoes the last applied migration (its `down` must exist). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
export async function rollbackMigration(db: Kysely<any>, migrations: Migrations): Promise<MigrationReport> {
  const { schema } = databaseInfo(db);
  return report(schema, await migrator(db, schema, migrations).migrateDown(), 'roll back');
}

/** Every known migration and when it was applied (undefined: pending). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
export async function migrationStatus(db: Kysely<any>, migrations: Migrations): Promise<readonly MigrationState[]> {
  const { schema } = databaseInfo(db);
  try {
    const infos = await migrator(db, schema, migrations).getMigrations();
    return infos.map((info) => ({ name: info.name, appliedAt: info.executedAt }));
  } catch (cause) {
    throw new StoreError('E_MIGRATION', `cannot read the migrations of schema ${schema}: ${messageOf(cause)}`, { schema }, { cause });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- accepts any Kysely<DB>
function migrator(db: Kysely<any>, schema: string, migrations: Migrations): Migrator {
  for (const name of Object.keys(migrations)) {
    if (!MIGRATION_NAME.test(name)) {
      throw new StoreError('E_MIGRATION', `migration name "${name}" of schema ${schema} is invalid: use <number>_<words>, e.g. 0001_init`, {
        schema,
        migration: name,
      });
    }
  }
  const provider: MigrationProvider = { getMigrations: async () => ({ ...migrations }) };
  return new Migrator({ db, provider, migrationTableSchema: schema });
}

function report(schema: string, result: MigrationResultSet, action: 'migrate' | 'roll back'): MigrationReport {
  const results = result.results ?? [];
  const failed = results.find((r) => r.status === 'Error');
  if (failed) {
    throw new StoreError(
      'E_MIGRATION',
      `migration ${failed.migrationName} of schema ${schema} failed (${action}): ${messageOf(result.error)}; this run's migrations were rolled back`,
      { schema, migration: failed.migrationName, direction: failed.direction },
      { cause: result.error },
    );
  }
  if (result.error !== undefined) {
    throw new StoreError('E_MIGRATION', `cannot ${action} schema ${schema}: ${messageOf(result.error)}`, { schema }, { cause: result.error });
  }
  return { schema, applied: results.filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
