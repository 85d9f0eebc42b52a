/**
 * RFC 8785 (JCS) canonical JSON, the form of `details` that goes into the event hash.
 *
 * The serialisation itself is the `canonicalize` package (the RFC author's algorithm:
 * ECMAScript number formatting, keys sorted by UTF-16 code units, JSON.stringify string
 * escaping), checked against the RFC author's vectors in jcs.test.ts. This wrapper adds
 * what the package leaves to its caller: it accepts only plain JSON data. The package
 * would call `toJSON`, drop `undefined` object members and turn `undefined` array items
 * into `null`, so two different inputs could hash the same; here each of those is an error.
 */
import canonicalize from 'canonicalize';
import { InputError } from '@bulwark/errors';

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Deeper nesting than this is refused: no event needs it, and it bounds recursion. */
export const MAX_JSON_DEPTH = 64;

// With the `u` flag a valid surrogate pair is one code point, so only lone surrogates match.
// A lone surrogate has no UTF-8 encoding; TextEncoder would silently replace it with U+FFFD.
const LONE_SURROGATE = /\p{Cs}/u;

function invalid(path: string, why: string): InputError {
  return new InputError('E_EVENT_DETAILS', `${path}: ${why}`, { path });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object without prototype';
  return typeof value;
}

/**
 * Throws InputError E_EVENT_DETAILS naming the first value (by path, e.g. `details.a[2]`)
 * that is not plain JSON: NaN, ±Infinity, undefined, bigint, functions, symbols, lone
 * surrogates, sparse arrays, class instances (Date, Map, Buffer, ...), cycles, or nesting
 * deeper than MAX_JSON_DEPTH.
 */
export function assertJsonValue(value: unknown, path = 'value'): asserts value is JsonValue {
  const ancestors = new Set<object>();

  const walk = (node: unknown, at: string, depth: number): void => {
    if (node === null || typeof node === 'boolean') return;
    if (typeof node === 'number') {
      if (Number.isNaN(node)) throw invalid(at, 'is NaN, which JSON (RFC 8785 §3.2.2.3) cannot represent');
      if (!Number.isFinite(node)) throw invalid(at, `is ${node}, which JSON (RFC 8785 §3.2.2.3) cannot represent`);
      return;
    }
    if (typeof node === 'string') {
      if (LONE_SURROGATE.test(node)) throw invalid(at, 'contains a lone UTF-16 surrogate, which has no UTF-8 encoding');
      return;
    }
    if (typeof node !== 'object') throw invalid(at, `is a ${typeof node}, not a JSON value`);
    if (depth >= MAX_JSON_DEPTH) throw invalid(at, `nests deeper than ${MAX_JSON_DEPTH} levels`);
    if (ancestors.has(node)) throw invalid(at, 'is a circular reference');
    ancestors.add(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        if (!(i in node)) throw invalid(`${at}[${i}]`, 'is a hole in a sparse array');
        walk(node[i], `${at}[${i}]`, depth + 1);
      }
    } else {
      const proto = Object.getPrototypeOf(node) as unknown;
      if (proto !== Object.prototype && proto !== null) throw invalid(at, `is a ${describe(node)}, not a plain object`);
      if (Object.getOwnPropertySymbols(node).length > 0) throw invalid(at, 'has symbol keys, which JSON cannot carry');
      for (const key of Object.keys(node)) {
        const child = `${at}.${key}`;
        if (LONE_SURROGATE.test(key)) throw invalid(child, 'key contains a lone UTF-16 surrogate');
        walk((node as Record<string, unknown>)[key], child, depth + 1);
      }
    }
    ancestors.delete(node);
  };

  walk(value, path, 0);
}

/** RFC 8785 canonical text of a JSON value; throws InputError E_EVENT_DETAILS for anything that is not plain JSON. */
export function canonicalJson(value: unknown, path = 'value'): string {
  assertJsonValue(value, path);
  const text = canonicalize(value);
  // The package returns undefined only for inputs assertJsonValue already refuses; keep the invariant explicit.
  if (typeof text !== 'string') throw invalid(path, 'has no canonical JSON form');
  return text;
}

/** Parses JSON text (e.g. a wire message's details_json) and checks it is plain JSON. */
export function parseJson(text: string, path = 'value'): JsonValue {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new InputError('E_EVENT_DETAILS', `${path}: not valid JSON (${(cause as Error).message})`, { path }, { cause });
  }
  assertJsonValue(value, path);
  return value;
}
