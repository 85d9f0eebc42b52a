import pg from 'pg';

/**
 * Both backends return the same JavaScript types, so a service behaves the same on
 * PGlite and on PostgreSQL. `int8` (bigint, bigserial, count(*)) becomes a JS `bigint`:
 * pg's default (a string) and PGlite's (a lossy number above 2^53) would each let a
 * ledger sequence number drift. `numeric` stays a string, timestamps are `Date`,
 * json/jsonb are parsed, bytea is a `Uint8Array` (a Buffer on pg).
 */
const INT8 = 20;
const INT8_ARRAY = 1016;

function toBigInts(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toBigInts);
  return typeof value === 'string' ? BigInt(value) : value;
}

// pg's typings accept only the built-in type ids as a union; any oid is valid here.
const builtinParser = pg.types.getTypeParser as (oid: number, format: 'text' | 'binary') => (value: string) => unknown;

/** The `types` option of a pg Pool. */
export const pgTypeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === INT8) return (value: string) => BigInt(value);
    if (oid === INT8_ARRAY) {
      const parseArray = builtinParser(INT8_ARRAY, 'text');
      return (value: string) => toBigInts(parseArray(value));
    }
    return builtinParser(oid, format ?? 'text');
  },
};

/** The `parsers` option of PGlite (it applies them to array elements too). */
export const pgliteParsers = {
  [INT8]: (value: string): bigint => BigInt(value),
};
