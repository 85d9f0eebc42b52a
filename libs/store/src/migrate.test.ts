import { sql } from 'kysely';
import type { Generated, Kysely } from 'kysely';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import type { TestSchema } from '@bulwark/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, createDatabase } from './database.js';
import { migrateToLatest, migrationStatus, rollbackMigration } from './migrate.js';
import type { Migrations } from './migrate.js';
import { isUniqueViolation, sqlState } from './sql-state.js';

interface NotesDb {
  notes: { id: Generated<number>; body: string };
}

const notesMigrations: Migrations = {
  '0001_notes': {
    up: async (db) => {
      await db.schema.createTable('notes').addColumn('id', 'serial', (c) => c.primaryKey()).addColumn('body', 'text', (c) => c.notNull()).execute();
    },
    down: async (db) => {
      await db.schema.dropTable('notes').execute();
    },
  },
  '0002_notes_body_index': {
    up: async (db) => {
      await db.schema.createIndex('notes_body').on('notes').column('body').execute();
    },
    down: async (db) => {
      await db.schema.dropIndex('notes_body').execute();
    },
  },
};

const schemas: TestSchema[] = [];
const open: Kysely<unknown>[] = [];

async function openNotes(prefix = 'store_mig'): Promise<{ db: Kysely<NotesDb>; schema: TestSchema }> {
  const schema = withTestSchema(prefix);
  schemas.push(schema);
  const db = await createDatabase<NotesDb>({ url: databaseUrl(), schema: schema.name });
  open.push(db as Kysely<unknown>);
  return { db, schema };
}

async function openSame(schema: TestSchema): Promise<Kysely<NotesDb>> {
  const db = await createDatabase<NotesDb>({ url: databaseUrl(), schema: schema.name });
  open.push(db as Kysely<unknown>);
  return db;
}

async function tablesOf(db: Kysely<NotesDb>, schema: string): Promise<string[]> {
  const rows = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = ${schema} order by table_name`.execute(db);
  return rows.rows.map((r) => r.table_name);
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => closeDatabase(db)));
});

afterAll(async () => {
  await Promise.all(schemas.map((s) => s.drop()));
});

describe('migrateToLatest on PostgreSQL', () => {
  it('creates the schema and applies every migration inside it, bookkeeping included', async () => {
    const { db, schema } = await openNotes();
    const report = await migrateToLatest(db, notesMigrations);
    expect(report).toEqual({ schema: schema.name, applied: ['0001_notes', '0002_notes_body_index'] });
    expect(await tablesOf(db, schema.name)).toEqual(['kysely_migration', 'kysely_migration_lock', 'notes']);
    await db.insertInto('notes').values({ body: 'hello' }).execute();
    expect(await db.selectFrom('notes').select('body').execute()).toEqual([{ body: 'hello' }]);
    const duplicate = await db.insertInto('notes').values({ id: 1, body: 'again' }).execute().catch((e: unknown) => e);
    expect(isUniqueViolation(duplicate)).toBe(true);
    expect(sqlState(new Error('x'))).toBeUndefined();
  });

  it('applies nothing on a second run, and only the new migration when one is added', async () => {
    const { db } = await openNotes();
    const first = { '0001_notes': notesMigrations['0001_notes']! };
    expect((await migrateToLatest(db, first)).applied).toEqual(['0001_notes']);
    expect((await migrateToLatest(db, first)).applied).toEqual([]);
    expect((await migrateToLatest(db, notesMigrations)).applied).toEqual(['0002_notes_body_index']);
    const status = await migrationStatus(db, notesMigrations);
    expect(status.map((m) => m.name)).toEqual(['0001_notes', '0002_notes_body_index']);
    expect(status.every((m) => m.appliedAt instanceof Date)).toBe(true);
  });

  it('rolls back the last migration with its down', async () => {
    const { db, schema } = await openNotes();
    await migrateToLatest(db, notesMigrations);
    expect((await rollbackMigration(db, notesMigrations)).applied).toEqual(['0002_notes_body_index']);
    expect((await rollbackMigration(db, notesMigrations)).applied).toEqual(['0001_notes']);
    expect(await tablesOf(db, schema.name)).toEqual(['kysely_migration', 'kysely_migration_lock']);
  });

  it('keeps two schemas with the same table name apart', async () => {
    const a = await openNotes('store_iso_a');
    const b = await openNotes('store_iso_b');
    await migrateToLatest(a.db, notesMigrations);
    await migrateToLatest(b.db, notesMigrations);
    await a.db.insertInto('notes').values({ body: 'only in a' }).execute();
    expect(await a.db.selectFrom('notes').select('body').execute()).toEqual([{ body: 'only in a' }]);
    expect(await b.db.selectFrom('notes').select('body').execute()).toEqual([]);
  });

  it('never falls through to another schema when its own table is missing', async () => {
    const a = await openNotes('store_iso_c');
    await migrateToLatest(a.db, notesMigrations);
    const b = await openNotes('store_iso_d');
    await expect(b.db.selectFrom('notes').selectAll().execute()).rejects.toThrow(/relation "notes" does not exist/);
  });

  it('runs each migration once when two processes migrate at the same moment', async () => {
    const { db: first, schema } = await openNotes('store_race');
    const second = await openSame(schema);
    let runs = 0;
    const slow: Migrations = {
      '0001_slow': {
        up: async (db) => {
          runs += 1;
          await db.schema.createTable('ran').addColumn('n', 'integer').execute();
          await db.insertInto('ran' as never).values({ n: runs } as never).execute();
          // Long enough that, without the lock, the other migrator would start too.
          await sql`select pg_sleep(0.3)`.execute(db);
        },
      },
    };
    const [x, y] = await Promise.all([migrateToLatest(first, slow), migrateToLatest(second, slow)]);
    expect([...x.applied, ...y.applied]).toEqual(['0001_slow']);
    expect(runs).toBe(1);
    const rows = await sql<{ n: number }>`select n from ran`.execute(first);
    expect(rows.rows).toEqual([{ n: 1 }]);
  });

  it('names the failing migration and rolls back the whole run', async () => {
    const { db, schema } = await openNotes();
    const broken: Migrations = {
      ...notesMigrations,
      '0003_broken': {
        up: async (trx) => {
          await sql`alter table no_such_table add column x int`.execute(trx);
        },
      },
    };
    const attempt = migrateToLatest(db, broken);
    await expect(attempt).rejects.toMatchObject({ name: 'StoreError', code: 'E_MIGRATION', context: { schema: schema.name, migration: '0003_broken' } });
    await expect(attempt).rejects.toThrow(`migration 0003_broken of schema ${schema.name} failed (migrate): relation "no_such_table" does not exist`);
    expect(await tablesOf(db, schema.name)).toEqual(['kysely_migration', 'kysely_migration_lock']);
  });

  it('refuses a migration name that would not sort by number', async () => {
    const { db } = await openNotes();
    await expect(migrateToLatest(db, { init: notesMigrations['0001_notes']! })).rejects.toThrow(/migration name "init" of schema .* is invalid/);
  });
});
