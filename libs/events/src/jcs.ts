/**
 * RFC 8785 (JCS) canonical JSON, the form of `details` that goes into the event hash.
 *
 * One pass that checks and writes: only plain JSON data is accepted (a serialiser that
 * called `toJSON`, dropped `undefined` members or turned `undefined` array items into `null`
 * would let two different inputs hash the same; here each of those is an error), strings
 * and numbers are written by JSON.stringify (RFC 8785 §3.2.2.2 and §3.2.2.3 define them as
 * ECMAScript's JSON.stringify and Number serialisation), and object members are sorted by
 * UTF-16 code units (§3.2.3, JavaScript's default string order). Checked against the RFC
 * author's vectors and, on random values, against the `canonicalize` package (the author's
 * reference implementation) in jcs.test.ts. Our own because the package, plus the separate
 * check it needs, took 11.8 µs for a policy decision's details against 3-4 µs here, and
 * every event is canonicalised on the producer and again in the ledger.
 */
import { InputError } from '@bulwark/errors';

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Deeper nesting than this is refused: no event needs it, and it bounds recursion. */
export const MAX_JSON_DEPTH = 64;

// A lone surrogate has no UTF-8 encoding; TextEncoder would silently replace it with U+FFFD,
// so strings and keys holding one are refused (String.prototype.isWellFormed).

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
      if (!isWellFormed(node)) throw invalid(at, 'contains a lone UTF-16 surrogate, which has no UTF-8 encoding');
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
        if (!isWellFormed(key)) throw invalid(child, 'key contains a lone UTF-16 surrogate');
        walk((node as Record<string, unknown>)[key], child, depth + 1);
      }
    }
    ancestors.delete(node);
  };

  walk(value, path, 0);
}

/** RFC 8785 canonical text of a JSON value; throws InputError E_EVENT_DETAILS for anything that is not plain JSON. */
export function canonicalJson(value: unknown, path = 'value'): string {
  const ancestors: object[] = [];
  /** The path of the node being written, built only when there is an error to report. */
  const at: (string | number)[] = [];
  const where = (): string => at.reduce<string>((text, step) => (typeof step === 'number' ? `${text}[${step}]` : `${text}.${step}`), path);

  const write = (node: unknown): string => {
    switch (typeof node) {
      case 'string':
        if (!isWellFormed(node)) throw invalid(where(), 'contains a lone UTF-16 surrogate, which has no UTF-8 encoding');
        return JSON.stringify(node);
      case 'number':
        if (Number.isNaN(node)) throw invalid(where(), 'is NaN, which JSON (RFC 8785 §3.2.2.3) cannot represent');
        if (!Number.isFinite(node)) throw invalid(where(), `is ${node}, which JSON (RFC 8785 §3.2.2.3) cannot represent`);
        return JSON.stringify(node);
      case 'boolean':
        return node ? 'true' : 'false';
      case 'object':
        break;
      default:
        throw invalid(where(), `is a ${typeof node}, not a JSON value`);
    }
    if (node === null) return 'null';
    if (ancestors.length >= MAX_JSON_DEPTH) throw invalid(where(), `nests deeper than ${MAX_JSON_DEPTH} levels`);
    if (ancestors.includes(node)) throw invalid(where(), 'is a circular reference');
    ancestors.push(node);
    let text: string;
    if (Array.isArray(node)) {
      text = '[';
      for (let i = 0; i < node.length; i++) {
        at.push(i);
        if (!(i in node)) throw invalid(where(), 'is a hole in a sparse array');
        text += (i === 0 ? '' : ',') + write(node[i]);
        at.pop();
      }
      text += ']';
    } else {
      const proto = Object.getPrototypeOf(node) as unknown;
      if (proto !== Object.prototype && proto !== null) throw invalid(where(), `is a ${describe(node)}, not a plain object`);
      if (Object.getOwnPropertySymbols(node).length > 0) throw invalid(where(), 'has symbol keys, which JSON cannot carry');
      const keys = Object.keys(node).sort();
      text = '{';
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        at.push(key);
        if (!isWellFormed(key)) throw invalid(where(), 'key contains a lone UTF-16 surrogate');
        text += `${i === 0 ? '' : ','}${JSON.stringify(key)}:${write((node as Record<string, unknown>)[key])}`;
        at.pop();
      }
      text += '}';
    }
    ancestors.pop();
    return text;
  };

  return write(value);
}

/** String.prototype.isWellFormed (ES2024, in Node 20): false when a lone surrogate is present. */
function isWellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
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
