import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDatabase, closeDatabase, createDatabase, databaseInfo } from './database.js';
import { migrateToLatest } from './migrate.js';
import type { Migrations } from './migrate.js';
import { isUniqueViolation, sqlState } from './sql-state.js';

interface CounterDb {
  counters: { name: string; value: bigint };
}

const counterMigrations: Migrations = {
  '0001_counters': {
    up: async (db) => {
      await db.schema.createTable('counters').addColumn('name', 'text', (c) => c.primaryKey()).addColumn('value', 'int8', (c) => c.notNull()).execute();
    },
  },
};

// A PGlite instance takes seconds to start (tens of seconds on a loaded 2-core
// machine): one in-memory instance serves the whole describe block, and the hooks and
// tests that start one get a longer timeout.
const PGLITE_START_MS = 120_000;

describe('createDatabase on in-memory PGlite', () => {
  let db: Kysely<CounterDb>;

  beforeAll(async () => {
    db = await createDatabase<CounterDb>({ schema: 'svc_counter' });
  }, PGLITE_START_MS);

  afterAll(async () => {
    await closeDatabase(db);
  });

  it('migrates into its schema, idempotently', async () => {
    expect(databaseInfo(db)).toEqual({ backend: 'pglite', target: 'pglite:memory', schema: 'svc_counter' });
    expect((await migrateToLatest(db, counterMigrations)).applied).toEqual(['0001_counters']);
    expect((await migrateToLatest(db, counterMigrations)).applied).toEqual([]);
    const tables = await sql<{ table_schema: string; table_name: string }>`select table_schema, table_name from information_schema.tables where table_name = 'counters'`.execute(db);
    expect(tables.rows).toEqual([{ table_schema: 'svc_counter', table_name: 'counters' }]);
    expect((await sql<{ search_path: string }>`show search_path`.execute(db)).rows[0]?.search_path).toBe('svc_counter');
  });

  it('returns int8 as bigint, like the PostgreSQL backend', async () => {
    await db.insertInto('counters').values({ name: 'big', value: 9007199254740993n }).execute();
    expect(await db.selectFrom('counters').select('value').where('name', '=', 'big').executeTakeFirst()).toEqual({ value: 9007199254740993n });
  });

  it('reports a duplicate key as a unique violation', async () => {
    await db.insertInto('counters').values({ name: 'once', value: 1n }).execute();
    const error = await db.insertInto('counters').values({ name: 'once', value: 2n }).execute().catch((e: unknown) => e);
    expect(isUniqueViolation(error)).toBe(true);
    expect(sqlState(error)).toBe('23505');
  });

  it('supports savepoints inside a transaction', async () => {
    const trx = await db.startTransaction().execute();
    await trx.insertInto('counters').values({ name: 'kept', value: 1n }).execute();
    const afterSavepoint = await trx.savepoint('before_drop').execute();
    await afterSavepoint.insertInto('counters').values({ name: 'undone', value: 2n }).execute();
    await afterSavepoint.rollbackToSavepoint('before_drop').execute();
    await trx.commit().execute();
    const names = await db.selectFrom('counters').select('name').where('name', 'in', ['kept', 'undone']).execute();
    expect(names).toEqual([{ name: 'kept' }]);
  });

  it('answers the readiness check', async () => {
    expect((await checkDatabase(db)).ready).toBe(true);
  });
});

describe('createDatabase on a PGlite data directory', () => {
  let root: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'bulwark-store-'));
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('keeps data across reopen, in <dir>/<schema>, and refuses a second opener meanwhile', async () => {
    const url = `pglite:${root}`;
    const first = await createDatabase<CounterDb>({ url, schema: 'svc_disk' });
    try {
      expect(existsSync(join(root, 'svc_disk', 'PG_VERSION'))).toBe(true);
      await migrateToLatest(first, counterMigrations);
      await first.insertInto('counters').values({ name: 'persisted', value: 42n }).execute();
      await expect(createDatabase({ url, schema: 'svc_disk' })).rejects.toMatchObject({
        code: 'E_DB_CONNECT',
        message: expect.stringMatching(/svc_disk: it is already open in this process/),
      });
    } finally {
      await closeDatabase(first);
    }
    expect(existsSync(join(root, 'svc_disk.lock'))).toBe(false);

    const reopened = await createDatabase<CounterDb>({ url, schema: 'svc_disk' });
    try {
      expect((await migrateToLatest(reopened, counterMigrations)).applied).toEqual([]);
      expect(await reopened.selectFrom('counters').selectAll().execute()).toEqual([{ name: 'persisted', value: 42n }]);
    } finally {
      await closeDatabase(reopened);
    }
  }, 2 * PGLITE_START_MS);

  it('names the directory when it cannot be created', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    await expect(createDatabase({ url: `pglite:${file}/data`, schema: 'svc' })).rejects.toMatchObject({
      code: 'E_DB_CONNECT',
      message: expect.stringMatching(/^cannot open embedded PGlite database pglite:.*a-file\/data: .*ENOTDIR/),
    });
  });
});
