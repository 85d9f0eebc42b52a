import { InputError } from '@bulwark/errors';

/**
 * Where a database lives, decided from the URL alone:
 * - `postgres://user:pass@host:port/db` or `postgresql://...`: a PostgreSQL server.
 * - absent, empty, `pglite:` or `pglite:memory`: embedded PGlite, in memory.
 * - `pglite:<dir>` (`pglite:./data`, `pglite:/var/lib/bulwark`): embedded PGlite whose
 *   files live in `<dir>/<schema>`.
 */
export type DatabaseTarget =
  | { readonly backend: 'postgres'; readonly url: string; readonly display: string; readonly host: string; readonly port: number; readonly database: string }
  | { readonly backend: 'pglite'; readonly dataDir: string | undefined; readonly display: string };

/** The URL with any password (in the authority or a `password=` parameter) replaced by `***`. */
export function maskDatabaseUrl(url: string): string {
  // Greedy up to the last @ of the authority, so a password with a raw @ is hidden whole.
  return url.replace(/(\/\/[^:/@?#]*:)[^/?#]*@/, '$1***@').replace(/([?&]password=)[^&#]*/gi, '$1***');
}

export function parseDatabaseUrl(url: string | undefined): DatabaseTarget {
  const raw = (url ?? '').trim();
  if (raw === '' || raw === 'pglite:' || raw === 'pglite:memory') {
    return { backend: 'pglite', dataDir: undefined, display: 'pglite:memory' };
  }
  if (raw.startsWith('pglite:')) return parsePgliteUrl(raw);
  if (raw.startsWith('postgres://') || raw.startsWith('postgresql://')) return parsePostgresUrl(raw);
  throw new InputError(
    'E_DB_URL',
    `database URL ${maskDatabaseUrl(raw)} is not supported: use postgres://user@host:port/db, pglite:memory or pglite:<dir>`,
    { url: maskDatabaseUrl(raw) },
  );
}

function parsePgliteUrl(raw: string): DatabaseTarget {
  const dataDir = raw.slice('pglite:'.length);
  // `pglite://x` reads like a host name; refuse it rather than guess a directory.
  if (dataDir.startsWith('//')) {
    throw new InputError('E_DB_URL', `database URL ${raw} is ambiguous: write pglite:<dir>, e.g. pglite:./data or pglite:/var/lib/bulwark`, {
      url: raw,
    });
  }
  return { backend: 'pglite', dataDir, display: raw };
}

function parsePostgresUrl(raw: string): DatabaseTarget {
  const display = maskDatabaseUrl(raw);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new InputError('E_DB_URL', `database URL ${display} is malformed: expected postgres://user@host:port/db`, { url: display });
  }
  const decode = (part: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new InputError('E_DB_URL', `database URL ${display} has a malformed %-escape in "${part}"`, { url: display });
    }
  };
  const database = decode(parsed.pathname.replace(/^\//, ''));
  if (database.includes('/')) {
    throw new InputError('E_DB_URL', `database URL ${display} names database "${database}", which contains a slash`, { url: display });
  }
  const host = parsed.hostname === '' ? (parsed.searchParams.get('host') ?? 'localhost') : parsed.hostname;
  const port = parsed.port === '' ? 5432 : Number(parsed.port);
  const user = decode(parsed.username);
  return { backend: 'postgres', url: raw, display, host, port, database: database === '' ? user : database };
}
