/**
 * Strict JSON for untrusted input (schemas, signatures, discovery and revocation
 * documents, bundles, pin stores). JSON.parse alone keeps the last of two duplicate keys,
 * so `{"description":"safe","description":"<poison>"}` could be shown one way and signed
 * another; it also accepts any depth and any size. Here: the bytes must be valid UTF-8
 * (TextDecoder fatal), the text at most `maxBytes`, nesting at most `maxDepth`, and a
 * key may appear once per object. Values are built exactly as JSON.parse builds them
 * (strings and numbers are decoded by JSON.parse itself), so canonicalization sees the
 * same value the SDK would.
 */
import { SchemaPinInputError } from './errors.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface JsonLimits {
  /** Largest accepted text, in UTF-8 bytes (default 1 MiB). */
  readonly maxBytes?: number;
  /** Deepest accepted nesting of arrays and objects (default 64). */
  readonly maxDepth?: number;
}

export const DEFAULT_MAX_JSON_BYTES = 1024 * 1024;
export const DEFAULT_MAX_JSON_DEPTH = 64;

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

function fail(what: string, why: string, at?: number): SchemaPinInputError {
  const where = at === undefined ? '' : ` at offset ${at}`;
  return new SchemaPinInputError('E_SCHEMAPIN_JSON', `${what}: ${why}${where}`, { what, ...(at === undefined ? {} : { offset: at }) });
}

/** Decodes bytes as UTF-8, refusing invalid sequences, then parses strictly. */
export function parseJsonBytes(bytes: Uint8Array, what: string, limits: JsonLimits = {}): JsonValue {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_JSON_BYTES;
  if (bytes.byteLength > maxBytes) throw fail(what, `is ${bytes.byteLength} bytes, more than the limit of ${maxBytes}`);
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw fail(what, 'is not valid UTF-8');
  }
  return parseJsonText(text, what, limits);
}

/** Parses JSON text strictly: no duplicate keys, bounded depth and size, nothing after the value. */
export function parseJsonText(text: string, what: string, limits: JsonLimits = {}): JsonValue {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_JSON_BYTES;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
  // A UTF-16 length bounds the UTF-8 length from below by half and from above by 3x.
  if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) throw fail(what, `is more than the limit of ${maxBytes} bytes`);
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  const ws = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };

  const str = (): string => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) throw fail(what, 'has an unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) throw fail(what, 'has a control character inside a string', i);
      i += c === 0x5c ? 2 : 1;
    }
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      throw fail(what, 'has an invalid string escape', start);
    }
  };

  const value = (depth: number): JsonValue => {
    ws();
    const c = text[i];
    if (c === '"') return str();
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) throw fail(what, `nests deeper than ${maxDepth} levels`, i);
      i++;
      ws();
      if (c === '[') {
        const out: JsonValue[] = [];
        if (text[i] === ']') {
          i++;
          return out;
        }
        for (;;) {
          out.push(value(depth + 1));
          ws();
          if (text[i] === ',') i++;
          else if (text[i] === ']') {
            i++;
            return out;
          } else throw fail(what, "expected ',' or ']'", i);
        }
      }
      // Own data properties only, as JSON.parse defines them (also for "__proto__").
      const out: JsonObject = {};
      const seen = new Set<string>();
      if (text[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') throw fail(what, 'expected a string key', i);
        const keyAt = i;
        const key = str();
        if (seen.has(key)) throw fail(what, `has the key ${JSON.stringify(key.slice(0, 64))} twice in one object`, keyAt);
        seen.add(key);
        ws();
        if (text[i] !== ':') throw fail(what, "expected ':'", i);
        i++;
        Object.defineProperty(out, key, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return out;
        } else throw fail(what, "expected ',' or '}'", i);
      }
    }
    if (text.startsWith('true', i)) return (i += 4), true;
    if (text.startsWith('false', i)) return (i += 5), false;
    if (text.startsWith('null', i)) return (i += 4), null;
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m === null) throw fail(what, i >= text.length ? 'ends before a value' : 'is not valid JSON', i);
    i += m[0].length;
    return Number(m[0]);
  };

  const result = value(0);
  ws();
  if (i !== text.length) throw fail(what, 'has text after the JSON value', i);
  return result;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
