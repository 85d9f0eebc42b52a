/**
 * schemapin-v1 canonicalization as the JS SDK computes it (protocol note §3): every object
 * rebuilt with its keys in `Array.prototype.sort()` order (UTF-16 code units), then
 * `JSON.stringify` with no whitespace. We do exactly that, so the quirks come for free and
 * match byte for byte: array-index keys ("0".."4294967294") first in numeric order (JS
 * property order), ECMAScript number text, raw non-ASCII, no Unicode normalization.
 *
 * One deliberate difference: the SDK assigns keys with `sorted[key] = ...`, so a
 * `"__proto__"` key is silently dropped from the signed text, and a signed schema could
 * gain such a member without breaking its signature. We refuse it
 * (schema_canonicalization_failed). Values that are not plain JSON (NaN, functions, class
 * instances, cycles, nesting over the limit) are refused too, where JSON.stringify would
 * drop or rewrite them.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, SchemaPinError } from './errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from './json.js';

export const CANONICALIZATION_V1 = 'schemapin-v1';

function refuse(why: string): SchemaPinError {
  return new SchemaPinError(ErrorCode.schemaCanonicalizationFailed, `Failed to canonicalize schema: ${why}`);
}

function sortKeys(node: unknown, depth: number, maxDepth: number): unknown {
  if (node === null || typeof node === 'string' || typeof node === 'boolean') return node;
  if (typeof node === 'number') {
    if (!Number.isFinite(node)) throw refuse(`${node} is not a JSON number`);
    return node;
  }
  if (typeof node !== 'object') throw refuse(`a ${typeof node} is not a JSON value`);
  if (depth >= maxDepth) throw refuse(`nests deeper than ${maxDepth} levels`);
  if (Array.isArray(node)) {
    const out = new Array<unknown>(node.length);
    for (let i = 0; i < node.length; i++) {
      if (!(i in node)) throw refuse('a sparse array is not JSON');
      out[i] = sortKeys(node[i], depth + 1, maxDepth);
    }
    return out;
  }
  const proto = Object.getPrototypeOf(node) as unknown;
  if (proto !== Object.prototype && proto !== null) throw refuse('a class instance is not a JSON object');
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(node).sort()) {
    if (key === '__proto__') throw refuse('the key "__proto__" is dropped by the reference SDK, so it cannot be signed');
    out[key] = sortKeys((node as Record<string, unknown>)[key], depth + 1, maxDepth);
  }
  return out;
}

/** The schemapin-v1 canonical string of a schema, as the JS SDK's `canonicalizeSchema`. */
export function canonicalizeSchema(schema: unknown, maxDepth = DEFAULT_MAX_JSON_DEPTH): string {
  if (schema === undefined) throw refuse('no schema');
  return JSON.stringify(sortKeys(schema, 0, maxDepth));
}

/** SHA-256 of the canonical string's UTF-8 bytes (the SDK's `hashCanonical`). */
export function hashCanonical(canonical: string): Buffer {
  return createHash('sha256').update(canonical, 'utf8').digest();
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
