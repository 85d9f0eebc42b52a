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

// A string JSON.stringify would write as itself between quotes: no quote, backslash,
// control character or surrogate (a lone surrogate is escaped, a pair kept; both are rare).
// eslint-disable-next-line no-control-regex -- the control characters are what JSON.stringify escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** Counts, during one write, what makes the text differ from RFC 8785 (index keys, lone surrogates). */
interface Scan {
  irregular: number;
}

function quote(s: string, scan: Scan): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  if (!isWellFormed(s)) scan.irregular++;
  return JSON.stringify(s);
}

// Keys repeat across schemas ("type", "description", "properties", ...): the quoted text of
// a key that needs no escaping, with its colon, is made once. Bounded; emptied when full.
const keyTexts = new Map<string, string>();
const KEY_TEXTS_LIMIT = 4096;

function keyText(key: string, scan: Scan): string {
  const hit = keyTexts.get(key);
  if (hit !== undefined) return hit;
  if (NEEDS_ESCAPE.test(key)) return `${quote(key, scan)}:`;
  const text = `"${key}":`;
  if (key.length <= 64) {
    if (keyTexts.size >= KEY_TEXTS_LIMIT) keyTexts.clear();
    keyTexts.set(key, text);
  }
  return text;
}

/**
 * `sort()` order (UTF-16 code units, which is what `<` compares): by insertion for the few
 * keys of a typical object, where Array#sort's generic machinery costs more than the sorting.
 */
function sortKeys(keys: string[]): string[] {
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > key; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = key;
  }
  return keys;
}

const byNumber = (a: string, b: string): number => Number(a) - Number(b);

/**
 * An object's keys in the order the SDK's text has them: `sort()` order, except that the
 * array-index keys come first in numeric order (the rebuilt object's JS property order).
 */
function orderedKeys(node: object, scan: Scan): string[] {
  const proto = Object.getPrototypeOf(node) as unknown;
  if (proto !== Object.prototype && proto !== null) throw refuse('a class instance is not a JSON object');
  const keys = sortKeys(Object.keys(node));
  let indexKeys: string[] | undefined;
  for (const key of keys) {
    const c = key.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39 && isIndexKey(key)) (indexKeys ??= []).push(key);
    else if (c === 0x5f && key === '__proto__') throw refuse('the key "__proto__" is dropped by the reference SDK, so it cannot be signed');
  }
  if (indexKeys === undefined) return keys;
  scan.irregular++;
  return [...indexKeys.sort(byNumber), ...keys.filter((k) => !isIndexKey(k))];
}

/**
 * Writes the text the SDK's rebuild-then-JSON.stringify writes, directly: no rebuilt copy
 * of the schema is allocated, and strings that need no escaping are not passed through
 * JSON.stringify; keys are sorted by insertion and their quoted text is reused. On an MCP
 * tool this takes about what a plain JSON.stringify of the schema takes (the SDK's rebuild
 * then stringify: twice that).
 */
function write(node: unknown, depth: number, maxDepth: number, scan: Scan): string {
  switch (typeof node) {
    case 'string':
      return quote(node, scan);
    case 'number':
      // String(n) is JSON.stringify's number text for every finite number (-0 included).
      if (!Number.isFinite(node)) throw refuse(`${node} is not a JSON number`);
      return String(node);
    case 'boolean':
      return node ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw refuse(`a ${typeof node} is not a JSON value`);
  }
  if (node === null) return 'null';
  if (depth >= maxDepth) throw refuse(`nests deeper than ${maxDepth} levels`);
  if (Array.isArray(node)) {
    let out = '[';
    for (let i = 0; i < node.length; i++) {
      if (!(i in node)) throw refuse('a sparse array is not JSON');
      out += i === 0 ? write(node[i], depth + 1, maxDepth, scan) : `,${write(node[i], depth + 1, maxDepth, scan)}`;
    }
    return `${out}]`;
  }
  const keys = orderedKeys(node, scan);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const member = keyText(key, scan) + write((node as Record<string, unknown>)[key], depth + 1, maxDepth, scan);
    out += i === 0 ? member : `,${member}`;
  }
  return `${out}}`;
}

/**
 * The SDK's text, written in one pass (see `write`). The top level of an object is written
 * member by member so that each member's text is known, with whether it holds array-index
 * keys or lone surrogates: without them a member's text is exactly its RFC 8785 text (same
 * key order, number and string forms), which content.ts reuses instead of a second pass.
 */
const NO_MEMBERS: CanonicalParts['members'] = new Map();

export function canonicalParts(schema: unknown, maxDepth = DEFAULT_MAX_JSON_DEPTH, withMembers = true): CanonicalParts {
  if (schema === undefined) throw refuse('no schema');
  const scan: Scan = { irregular: 0 };
  if (!withMembers || typeof schema !== 'object' || schema === null || Array.isArray(schema)) return { text: write(schema, 0, maxDepth, scan), members: NO_MEMBERS };
  const members = new Map<string, { text: string; jcs: boolean }>();
  if (maxDepth <= 0) throw refuse(`nests deeper than ${maxDepth} levels`);
  const keys = orderedKeys(schema, scan);
  let text = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const before = scan.irregular;
    const quoted = keyText(key, scan);
    const member = write((schema as Record<string, unknown>)[key], 1, maxDepth, scan);
    members.set(key, { text: member, jcs: scan.irregular === before });
    text += `${i === 0 ? '' : ','}${quoted}${member}`;
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

/**
 * The same digest as hex, for the verifier: it needs the hex (schema_hash) and the bytes, and
 * the bytes decoded from the hex come from Node's Buffer pool, where a digest Buffer of its own
 * would be a new backing store for the garbage collector to track on every verification.
 */
export function hashCanonicalHex(canonical: string): string {
  return hash('sha256', canonical, 'hex') as string;
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
