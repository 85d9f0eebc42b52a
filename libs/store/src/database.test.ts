import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDatabase, closeDatabase, createDatabase, databaseInfo } from './database.js';
import { StoreError } from './errors.js';
import { maskDatabaseUrl } from './url.js';

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('createDatabase on PostgreSQL', () => {
  const schema = withTestSchema('store_db');
  let db: Kysely<unknown>;

  beforeAll(async () => {
    db = await createDatabase({ url: databaseUrl(), schema: schema.name, maxConnections: 3 });
  });

  afterAll(async () => {
    await closeDatabase(db);
    await schema.drop();
  });

  it('sets every pooled connection search_path to the service schema alone', async () => {
    // Three connections at once, so more than one pooled connection answers.
    const paths = await Promise.all(
      [1, 2, 3].map(() => db.connection().execute(async (conn) => (await sql<{ search_path: string }>`show search_path`.execute(conn)).rows[0]?.search_path)),
    );
    expect(paths).toEqual([schema.name, schema.name, schema.name]);
  });

  it('keeps the search_path when the URL carries its own startup options', async () => {
    const url = new URL(databaseUrl());
    url.searchParams.set('options', '-c statement_timeout=4321');
    const other = await createDatabase({ url: url.toString(), schema: schema.name });
    try {
      const row = (await sql<{ search_path: string; statement_timeout: string }>`select current_setting('search_path') as search_path, current_setting('statement_timeout') as statement_timeout`.execute(other)).rows[0];
      expect(row).toEqual({ search_path: schema.name, statement_timeout: '4321ms' });
    } finally {
      await closeDatabase(other);
    }
  });

  it('returns int8 as bigint, exact beyond 2^53', async () => {
    const row = (await sql<{ big: bigint; list: bigint[]; n: number }>`select 9007199254740993::int8 as big, array[1, 2]::int8[] as list, 7::int4 as n`.execute(db)).rows[0];
    expect(row).toEqual({ big: 9007199254740993n, list: [1n, 2n], n: 7 });
    const echoed = (await sql<{ v: bigint }>`select ${9007199254740993n}::int8 as v`.execute(db)).rows[0];
    expect(echoed).toEqual({ v: 9007199254740993n });
  });

  it('reports what it is connected to, password masked', () => {
    expect(databaseInfo(db)).toEqual({ backend: 'postgres', target: maskDatabaseUrl(databaseUrl()), schema: schema.name });
  });

  it('answers the readiness check', async () => {
    const health = await checkDatabase(db);
    expect(health.ready).toBe(true);
  });
});

describe('createDatabase failures', () => {
  it('names host:port/database and the reason when nothing listens', async () => {
    const port = await unusedPort();
    const attempt = createDatabase({ url: `postgres://postgres:pw@127.0.0.1:${port}/test`, schema: 'svc' });
    await expect(attempt).rejects.toThrow(StoreError);
    await expect(attempt).rejects.toThrow(`cannot connect to PostgreSQL at 127.0.0.1:${port}/test: connection refused (ECONNREFUSED)`);
    await expect(attempt).rejects.toMatchObject({ code: 'E_DB_CONNECT', context: { host: '127.0.0.1', port, database: 'test' } });
  });

  it('gives up after connectTimeoutMs when the server accepts but never answers', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      await expect(createDatabase({ url: `postgres://postgres@127.0.0.1:${port}/test`, schema: 'svc', connectTimeoutMs: 300 })).rejects.toThrow(
        new RegExp(`^cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}/test: connection timed out`),
      );
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('says the database does not exist', async () => {
    const url = new URL(databaseUrl());
    url.pathname = '/no_such_db_bulwark';
    await expect(createDatabase({ url: url.toString(), schema: 'svc' })).rejects.toThrow(/no_such_db_bulwark: database does not exist \(3D000\)/);
  });

  it('rejects a bad schema name before connecting', async () => {
    await expect(createDatabase({ url: databaseUrl(), schema: 'Bad-Name' })).rejects.toMatchObject({ code: 'E_DB_SCHEMA' });
  });

  it('reports not ready, without throwing, once the database is closed', async () => {
    const schema = withTestSchema('store_closed');
    const db = await createDatabase({ url: databaseUrl(), schema: schema.name });
    await closeDatabase(db);
    await closeDatabase(db);
    const health = await checkDatabase(db);
    expect(health.ready).toBe(false);
    if (!health.ready) expect(health.error.code).toBe('E_DB_CONNECT');
    await schema.drop();
  });
});
