/**
 * The content pin (beyond SchemaPin, which pins keys only): SHA-256 over the RFC 8785 form
 * of what the model reads and what the tool accepts: name, description, input and output
 * schemas, annotations. A provider that changes a tool's description under the same key
 * (a "rug pull", MITRE ATLAS AML.T0109) changes this hash; mcp-scan hashes the description
 * alone with MD5.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '@bulwark/events';
import { canonicalParts, type CanonicalParts } from './canonical.js';
import { isJsonObject, type JsonValue } from './json.js';

/** The members of an MCP tool definition the content hash covers (others are ignored). */
export const CONTENT_FIELDS = ['name', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;

/** The covered members; snake_case spellings (input_schema, ...) are read too. */
export function toolContent(schema: unknown): Record<string, JsonValue> {
  const s = isJsonObject(schema) ? schema : {};
  const pick = (camel: string, snake: string): JsonValue => s[camel] ?? s[snake] ?? null;
  return {
    name: pick('name', 'name'),
    description: pick('description', 'description'),
    inputSchema: pick('inputSchema', 'input_schema') ?? pick('parameters', 'parameters'),
    outputSchema: pick('outputSchema', 'output_schema'),
    annotations: pick('annotations', 'annotations'),
  };
}

/** The RFC 8785 text of the covered members. */
export function contentText(schema: unknown, parts?: CanonicalParts): string {
  // Fast path: reuse the schemapin-v1 text of each member where it is also its RFC 8785 text
  // (no array-index keys, no lone surrogates; canonical.ts). Keys in JCS order.
  const p = parts ?? (isJsonObject(schema) ? canonicalParts(schema) : undefined);
  if (p !== undefined && isJsonObject(schema)) {
    const member = (...names: string[]): { text: string; jcs: boolean } | null => {
      for (const n of names) {
        const m = p.members.get(n);
        if (m !== undefined && schema[n] !== null) return m;
      }
      return null;
    };
    const fields = [member('annotations'), member('description'), member('inputSchema', 'input_schema', 'parameters'), member('name'), member('outputSchema', 'output_schema')];
    if (fields.every((f) => f === null || f.jcs)) {
      const [a, d, i, n, o] = fields.map((f) => (f === null ? 'null' : f.text));
      return `{"annotations":${a},"description":${d},"inputSchema":${i},"name":${n},"outputSchema":${o}}`;
    }
  }
  return canonicalJson(toolContent(schema), 'tool');
}

/** `sha256:<hex>` of JCS({name, description, inputSchema, outputSchema, annotations}). */
export function contentHash(schema: unknown, parts?: CanonicalParts): string {
  return `sha256:${createHash('sha256').update(contentText(schema, parts), 'utf8').digest('hex')}`;
}
