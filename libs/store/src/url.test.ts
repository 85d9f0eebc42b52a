import { InputError } from '@bulwark/errors';
import { describe, expect, it } from 'vitest';
import { assertSchemaName } from './schema-name.js';
import { maskDatabaseUrl, parseDatabaseUrl } from './url.js';

describe('parseDatabaseUrl', () => {
  it('reads a PostgreSQL URL with its host, port and database', () => {
    expect(parseDatabaseUrl('postgres://svc:secret@db.internal:6432/bulwark')).toMatchObject({
      backend: 'postgres',
      host: 'db.internal',
      port: 6432,
      database: 'bulwark',
      display: 'postgres://svc:***@db.internal:6432/bulwark',
    });
    expect(parseDatabaseUrl('postgresql://postgres@127.0.0.1/test')).toMatchObject({ port: 5432, database: 'test' });
  });

  it('defaults to in-memory PGlite when the URL is absent, empty, pglite: or pglite:memory', () => {
    for (const url of [undefined, '', '  ', 'pglite:', 'pglite:memory']) {
      expect(parseDatabaseUrl(url)).toEqual({ backend: 'pglite', dataDir: undefined, display: 'pglite:memory' });
    }
  });

  it('reads pglite:<dir> as an embedded data directory', () => {
    expect(parseDatabaseUrl('pglite:./data')).toEqual({ backend: 'pglite', dataDir: './data', display: 'pglite:./data' });
    expect(parseDatabaseUrl('pglite:/var/lib/bulwark')).toMatchObject({ dataDir: '/var/lib/bulwark' });
  });

  it('rejects an unknown scheme with an InputError naming the URL, password masked', () => {
    const attempt = () => parseDatabaseUrl('mysql://root:hunter2@db/x');
    expect(attempt).toThrow(InputError);
    expect(attempt).toThrow('database URL mysql://root:***@db/x is not supported');
    try {
      attempt();
    } catch (error) {
      expect((error as InputError).code).toBe('E_DB_URL');
      expect(JSON.stringify((error as InputError).context)).not.toContain('hunter2');
    }
  });

  it('rejects a malformed PostgreSQL URL and an ambiguous pglite:// URL', () => {
    expect(() => parseDatabaseUrl('postgres://user:pw@host:notaport/db')).toThrow(/postgres:\/\/user:\*\*\*@host:notaport\/db is malformed/);
    expect(() => parseDatabaseUrl('pglite://data')).toThrow(/ambiguous/);
    expect(() => parseDatabaseUrl('postgres://h/%zz')).toThrow(/malformed %-escape in "%zz"/);
  });
});

describe('maskDatabaseUrl', () => {
  it('hides a password in the authority or in a password= parameter', () => {
    expect(maskDatabaseUrl('postgres://u:p%40ss@h/db')).toBe('postgres://u:***@h/db');
    expect(maskDatabaseUrl('postgres://h/db?user=u&password=pw&sslmode=require')).toBe('postgres://h/db?user=u&password=***&sslmode=require');
    expect(maskDatabaseUrl('postgres://u@h/db')).toBe('postgres://u@h/db');
    expect(maskDatabaseUrl('postgres://u:p@ss@h:5432/db')).toBe('postgres://u:***@h:5432/db');
  });
});

describe('assertSchemaName', () => {
  it('accepts plain lower-case names', () => {
    expect(() => assertSchemaName('audit_ledger')).not.toThrow();
    expect(() => assertSchemaName('_x1')).not.toThrow();
  });

  it.each(['Audit', '1ledger', 'a-b', 'a;drop', '', 'x'.repeat(64), 'pg_temp', 'information_schema'])('rejects %j', (name) => {
    expect(() => assertSchemaName(name)).toThrow(InputError);
  });
});
