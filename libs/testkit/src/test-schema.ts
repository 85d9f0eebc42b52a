import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { InputError } from '@bulwark/errors';
import { databaseUrl } from './service-urls.js';

export interface TestSchema {
  /** `t_<prefix>_<10 hex chars>`: unique per call, a valid unquoted schema name. */
  readonly name: string;
  /** Drops the schema and everything in it (if it exists) from the test database. */
  drop(): Promise<void>;
}

const PREFIX = /^[a-z][a-z0-9_]{0,39}$/;

/**
 * A fresh schema name for one suite, and the means to remove it afterwards:
 *
 *   const schema = withTestSchema('ledger');
 *   afterAll(() => schema.drop());
 *
 * The schema is not created here: the code under test (a migration) creates it.
 * `drop` connects to `url` (default DATABASE_URL or the local default); for an
 * embedded `pglite:` URL there is nothing to drop.
 */
export function withTestSchema(prefix: string, options: { url?: string } = {}): TestSchema {
  if (!PREFIX.test(prefix)) {
    throw new InputError('E_TEST_SCHEMA', `test schema prefix "${prefix}" is invalid: use 1-40 characters of a-z, 0-9 and _, starting with a letter`, {
      prefix,
    });
  }
  const name = `t_${prefix}_${randomBytes(5).toString('hex')}`;
  return { name, drop: () => dropSchema(name, options.url ?? databaseUrl()) };
}

async function dropSchema(name: string, url: string): Promise<void> {
  if (url.startsWith('pglite:')) return;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // The name matches [a-z0-9_] (see PREFIX), so it needs no escaping.
    await client.query(`drop schema if exists ${name} cascade`);
  } finally {
    await client.end();
  }
}
