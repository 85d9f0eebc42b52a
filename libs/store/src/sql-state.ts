/**
 * The SQLSTATE of a database error, from pg or PGlite (both put it in `code`), or
 * undefined for anything else: a socket error's `code` (ECONNREFUSED) is not five
 * characters of [0-9A-Z] and is not mistaken for one.
 */
export function sqlState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** True for a unique or primary key violation (23505): the row was already there. */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}
