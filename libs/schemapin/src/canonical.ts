/**
 * schemapin-v1 canonicalization as the JS SDK computes it (protocol note §3): every object
 * rebuilt with its keys in `Array.prototype.sort()` order (UTF-16 code units), then
 * `JSON.stringify` with no whitespace. We write the same bytes in one pass (canonicalParts):
 * array-index keys ("0".."4294967294") first in numeric order (JS property order),
 * ECMAScript number text, raw non-ASCII, no Unicode normalization. The canonicalization
 * test also checks it against that rebuild-and-stringify on random values.
 *
 * One deliberate difference: the SDK assigns keys with `sorted[key] = ...`, so a
 * `"__proto__"` key is silently dropped from the signed text, and a signed schema could
 * gain such a member without breaking its signature. We refuse it
 * (schema_canonicalization_failed). Values that are not plain JSON (NaN, functions, class
 * instances, cycles, nesting over the limit) are refused too, where JSON.stringify would
 * drop or rewrite them.
 */
import { hash } from 'node:crypto';
import { ErrorCode, SchemaPinError } from './errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from './json.js';

export const CANONICALIZATION_V1 = 'schemapin-v1';

function refuse(why: string): SchemaPinError {
  return new SchemaPinError(ErrorCode.schemaCanonicalizationFailed, `Failed to canonicalize schema: ${why}`);
}

/** An array-index key ("0".."4294967294" in canonical form): JS emits these first, in numeric order. */
function isIndexKey(key: string): boolean {
  if (key.length === 0 || key.length > 10) return false;
  const c = key.charCodeAt(0);
  if (c < 0x30 || c > 0x39 || (c === 0x30 && key.length > 1)) return false;
  for (let i = 1; i < key.length; i++) {
    const d = key.charCodeAt(i);
    if (d < 0x30 || d > 0x39) return false;
  }
  return Number(key) <= 4294967294;
}

const isWellFormed = (text: string): boolean => (text as string & { isWellFormed(): boolean }).isWellFormed();

/** What one pass over a schema yields: the canonical text and, for a top-level object, each member's text. */
export interface CanonicalParts {
  readonly text: string;
  /** Top-level member → its canonical text, and whether that subtree is also its RFC 8785 form. */
  readonly members: ReadonlyMap<string, { readonly text: string; readonly jcs: boolean }>;
}

/**
 * The SDK's algorithm, kept as it is because V8's JSON.stringify is the fastest writer of
 * that text: rebuild each object with its keys in `sort()` order (JS then emits array-index
 * keys first, in numeric order, by its property-order rules), then JSON.stringify. The top
 * level is written member by member so that each member's text is known; the rebuild also
 * notes whether a member holds array-index keys or lone surrogates. Without them a member's
 * text is exactly its RFC 8785 text (same key order, number and string forms), which
 * content.ts reuses instead of a second pass.
 */
export function canonicalParts(schema: unknown, maxDepth = DEFAULT_MAX_JSON_DEPTH, withMembers = true): CanonicalParts {
  if (schema === undefined) throw refuse('no schema');
  let notJcs = 0;
  const rebuild = (node: unknown, depth: number): unknown => {
    switch (typeof node) {
      case 'string':
        if (!isWellFormed(node)) notJcs++;
        return node;
      case 'number':
        if (!Number.isFinite(node)) throw refuse(`${node} is not a JSON number`);
        return node;
      case 'boolean':
        return node;
      case 'object':
        break;
      default:
        throw refuse(`a ${typeof node} is not a JSON value`);
    }
    if (node === null) return null;
    if (depth >= maxDepth) throw refuse(`nests deeper than ${maxDepth} levels`);
    if (Array.isArray(node)) {
      const out = new Array<unknown>(node.length);
      for (let i = 0; i < node.length; i++) {
        if (!(i in node)) throw refuse('a sparse array is not JSON');
        out[i] = rebuild(node[i], depth + 1);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const key of sortedKeys(node)) out[key] = rebuild((node as Record<string, unknown>)[key], depth + 1);
    return out;
  };
  const sortedKeys = (node: object): string[] => {
    const proto = Object.getPrototypeOf(node) as unknown;
    if (proto !== Object.prototype && proto !== null) throw refuse('a class instance is not a JSON object');
    const keys = Object.keys(node).sort();
    for (const key of keys) {
      const c = key.charCodeAt(0);
      if (c >= 0x30 && c <= 0x39 && isIndexKey(key)) notJcs++;
      else if (c === 0x5f && key === '__proto__') throw refuse('the key "__proto__" is dropped by the reference SDK, so it cannot be signed');
      else if (c >= 0xd800 && c <= 0xdfff && !isWellFormed(key)) notJcs++;
    }
    return keys;
  };
  const members = new Map<string, { text: string; jcs: boolean }>();
  if (!withMembers || typeof schema !== 'object' || schema === null || Array.isArray(schema)) return { text: JSON.stringify(rebuild(schema, 0)), members };
  if (maxDepth <= 0) throw refuse(`nests deeper than ${maxDepth} levels`);
  const keys = sortedKeys(schema);
  const texts: Record<string, string> = {};
  for (const key of keys) {
    const before = notJcs;
    const text = JSON.stringify(rebuild((schema as Record<string, unknown>)[key], 1));
    members.set(key, { text, jcs: notJcs === before && isWellFormed(key) });
    texts[key] = text;
  }
  // The top level in JS property order too (index keys first), as JSON.stringify would write it.
  let text = '{';
  let first = true;
  for (const key of Object.keys(texts)) {
    text += `${first ? '' : ','}${JSON.stringify(key)}:${texts[key]}`;
    first = false;
  }
  return { text: `${text}}`, members };
}

/** The schemapin-v1 canonical string of a schema, as the JS SDK's `canonicalizeSchema`. */
export function canonicalizeSchema(schema: unknown, maxDepth = DEFAULT_MAX_JSON_DEPTH): string {
  return canonicalParts(schema, maxDepth, false).text;
}

/** SHA-256 of the canonical string's UTF-8 bytes (the SDK's `hashCanonical`). */
export function hashCanonical(canonical: string): Buffer {
  // One-shot crypto.hash (Node ≥ 20.12): the string is hashed as UTF-8, ~1.3 µs less than createHash.
  return hash('sha256', canonical, 'buffer') as unknown as Buffer;
}

export function canonicalizeAndHash(schema: unknown): Buffer {
  return hashCanonical(canonicalizeSchema(schema));
}

/**
 * The v1.4 `canonicalization` field: absent or "schemapin-v1" is the algorithm above; any
 * other value fails before any crypto work (protocol note §3).
 */
export function checkCanonicalization(value: unknown): SchemaPinError | null {
  if (value === undefined || value === null || value === CANONICALIZATION_V1) return null;
  return new SchemaPinError(ErrorCode.canonicalizationUnsupported, `Unsupported canonicalization: ${String(value).slice(0, 64)}`);
}
