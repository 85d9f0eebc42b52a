/**
 * The content pin (beyond SchemaPin, which pins keys only): SHA-256 over the RFC 8785 form
 * of what the model reads and what the tool accepts: name, description, input and output
 * schemas, annotations. A provider that changes a tool's description under the same key
 * (a "rug pull", MITRE ATLAS AML.T0109) changes this hash; mcp-scan hashes the description
 * alone with MD5.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '@bulwark/events';
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

/** `sha256:<hex>` of JCS({name, description, inputSchema, outputSchema, annotations}). */
export function contentHash(schema: unknown): string {
  return `sha256:${createHash('sha256').update(canonicalJson(toolContent(schema), 'tool'), 'utf8').digest('hex')}`;
}
