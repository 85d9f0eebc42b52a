import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl } from './service-urls.js';
import { withTestSchema } from './test-schema.js';

describe('withTestSchema', () => {
  const client = new pg.Client({ connectionString: databaseUrl() });

  beforeAll(async () => {
    await client.connect();
  });

  afterAll(async () => {
    await client.end();
  });

  async function schemaExists(name: string): Promise<boolean> {
    const result = await client.query('select 1 from pg_namespace where nspname = $1', [name]);
    return result.rowCount === 1;
  }

  it('gives a unique t_<prefix>_<random> name each call', () => {
    const a = withTestSchema('ledger');
    const b = withTestSchema('ledger');
    expect(a.name).toMatch(/^t_ledger_[0-9a-f]{10}$/);
    expect(b.name).not.toBe(a.name);
  });

  it('drops the schema and its tables, and tolerates a schema never created', async () => {
    const schema = withTestSchema('testkit');
    await client.query(`create schema ${schema.name}`);
    await client.query(`create table ${schema.name}.t (x int)`);
    expect(await schemaExists(schema.name)).toBe(true);
    await schema.drop();
    expect(await schemaExists(schema.name)).toBe(false);
    await expect(schema.drop()).resolves.toBeUndefined();
  });

  it('rejects a prefix that would need quoting', () => {
    expect(() => withTestSchema('Bad-Prefix')).toThrow(/test schema prefix "Bad-Prefix" is invalid/);
  });
});
