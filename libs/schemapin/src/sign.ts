/**
 * Signing for providers we operate: a signed tool in the SDK's demo form
 * `{ schema, signature, signed_at, ... }` that the reference verifier accepts
 * (the signature is over the schema alone, as in the SDK; the other fields are metadata),
 * and reading that form back from untrusted JSON.
 */
import { canonicalizeAndHash, CANONICALIZATION_V1 } from './canonical.js';
import { SchemaPinInputError } from './errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { loadPrivateKey } from './keys.js';
import type { SignedTool } from './pinning.js';
import { signSchemaHash } from './signature.js';

export interface SignSchemaOptions {
  readonly expiresAt?: string;
  readonly schemaVersion?: string;
  readonly previousHash?: string;
  /** Write `canonicalization: "schemapin-v1"` (v1.4); absent means the same algorithm. */
  readonly canonicalizationField?: boolean;
  readonly now?: () => number;
}

/** The SDK's `SchemaSigningWorkflow.signSchema`, wrapped in the demo form. */
export function signSchema(schema: JsonValue, privateKeyPem: string, options: SignSchemaOptions = {}): SignedTool & { schema: JsonValue } {
  const signature = signSchemaHash(canonicalizeAndHash(schema), loadPrivateKey(privateKeyPem));
  return {
    schema,
    signature,
    signed_at: new Date((options.now ?? Date.now)()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    ...(options.expiresAt === undefined ? {} : { expires_at: options.expiresAt }),
    ...(options.schemaVersion === undefined ? {} : { schema_version: options.schemaVersion }),
    ...(options.previousHash === undefined ? {} : { previous_hash: options.previousHash }),
    ...(options.canonicalizationField ? { canonicalization: CANONICALIZATION_V1 } : {}),
  };
}

const OPTIONAL_STRINGS = ['signed_at', 'expires_at', 'canonicalization', 'schema_version', 'previous_hash'] as const;

/** Reads `{ schema, signature, ... }`; throws SchemaPinInputError naming the bad field. */
export function parseSignedTool(value: JsonValue, what = 'signed tool'): SignedTool {
  if (!isJsonObject(value)) throw new SchemaPinInputError('E_SCHEMAPIN_SIGNED', `${what}: must be a JSON object { schema, signature, ... }`);
  if (!('schema' in value)) throw new SchemaPinInputError('E_SCHEMAPIN_SIGNED', `${what}: has no schema`);
  if (typeof value.signature !== 'string') throw new SchemaPinInputError('E_SCHEMAPIN_SIGNED', `${what}: signature must be a base64 string`);
  const out: Record<string, unknown> = { schema: value.schema, signature: value.signature };
  for (const field of OPTIONAL_STRINGS) {
    const v = (value as JsonObject)[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new SchemaPinInputError('E_SCHEMAPIN_SIGNED', `${what}: ${field} must be a string`);
    out[field] = v;
  }
  return out as unknown as SignedTool;
}
