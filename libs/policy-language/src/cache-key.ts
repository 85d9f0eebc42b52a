/**
 * A canonical JSON text of a JSON value (README "Cache"): how the decision cache's request
 * keys (request-key.ts) hold lists and objects read whole, and the text of a key (`keyText`).
 *
 * A key only has to be deterministic (equal JSON values, whatever their key order, give
 * one key) and injective (different JSON values give different keys); RFC 8785 gives both
 * but its number formatting and UTF-16 key sort cost ~11 µs per request in the
 * `canonicalize` package. This text is JSON with object keys sorted by UTF-16 code units
 * (`Array.prototype.sort`) and strings and numbers written by `JSON.stringify`, which is
 * already deterministic and injective for finite numbers and for strings (well-formed
 * JSON.stringify escapes lone surrogates, ES2019). The result is valid JSON denoting the
 * same value.
 *
 * Values that are not plain JSON (undefined, functions, symbols, bigints, non-finite
 * numbers, objects that are not plain or arrays, sparse arrays, nesting deeper than
 * MAX_KEY_DEPTH, which covers cycles) have no key: the caller decides them uncached.
 * `-0` and `0` share the key `0`: they are one JSON number, and the evaluator compares with
 * `===`, for which they are equal.
 */
export const MAX_KEY_DEPTH = 256;

export function cacheKey(value: unknown): string | undefined {
  try {
    return writeKey(value, 0);
  } catch (e) {
    if (e === NO_KEY) return undefined;
    throw e;
  }
}

/** Thrown by `writeKey` for a value that has no key; callers turn it into `undefined`. */
export const NO_KEY = Symbol('no cache key');

/** The key text of `value` found `depth` levels down; throws NO_KEY for what is not plain JSON. */
export function writeKey(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return quoteKey(value);
    case 'number':
      if (!Number.isFinite(value)) throw NO_KEY;
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw NO_KEY;
  }
  if (value === null) return 'null';
  if (depth >= MAX_KEY_DEPTH) throw NO_KEY;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw NO_KEY;
      if (i > 0) out += ',';
      out += writeKey(value[i], depth + 1);
    }
    return out + ']';
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw NO_KEY;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (i > 0) out += ',';
    out += quoteKey(key) + ':' + writeKey(record[key], depth + 1);
  }
  return out + '}';
}

// Most strings need no escape; JSON.stringify is only called for those that may.
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON must escape
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON.stringify writes it. */
export function quoteKey(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}
