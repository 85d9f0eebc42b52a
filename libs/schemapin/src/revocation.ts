/**
 * Revocation (protocol note §6): a key is revoked when its fingerprint is in the discovery
 * document's `revoked_keys` OR in a standalone revocation document (v1.2). Both are always
 * checked; a hit in either is `key_revoked`. Checked before pinning and before the signature.
 */
import { ErrorCode, SchemaPinError } from './errors.js';
import { isJsonObject, type JsonObject } from './json.js';

export const RevocationReason = {
  keyCompromise: 'key_compromise',
  superseded: 'superseded',
  cessationOfOperation: 'cessation_of_operation',
  privilegeWithdrawn: 'privilege_withdrawn',
} as const;
export type RevocationReason = (typeof RevocationReason)[keyof typeof RevocationReason];

export interface RevokedKey {
  readonly fingerprint: string;
  readonly revoked_at: string;
  readonly reason: RevocationReason;
}

export interface RevocationDocument {
  readonly schemapin_version: string;
  readonly domain: string;
  readonly updated_at: string;
  readonly revoked_keys: readonly RevokedKey[];
}

/** A new standalone revocation document (the SDK's `buildRevocationDocument`). */
export function buildRevocationDocument(domain: string, updatedAt = new Date().toISOString()): RevocationDocument {
  return { schemapin_version: '1.2', domain, updated_at: updatedAt, revoked_keys: [] };
}

/** Adds a revoked key (the SDK's `addRevokedKey`); returns a new document. */
export function addRevokedKey(doc: RevocationDocument, fingerprint: string, reason: RevocationReason, revokedAt = new Date().toISOString()): RevocationDocument {
  return { ...doc, updated_at: revokedAt, revoked_keys: [...doc.revoked_keys, { fingerprint, revoked_at: revokedAt, reason }] };
}

/** Checks the shape of a standalone revocation document; throws discovery_invalid. */
export function parseRevocationDocument(value: unknown): RevocationDocument {
  if (!isJsonObject(value) || !Array.isArray(value.revoked_keys)) {
    throw new SchemaPinError(ErrorCode.discoveryInvalid, 'revocation document must be an object with a revoked_keys array');
  }
  for (const entry of value.revoked_keys) {
    if (!isJsonObject(entry) || typeof entry.fingerprint !== 'string') {
      throw new SchemaPinError(ErrorCode.discoveryInvalid, 'revocation document: every revoked_keys entry needs a fingerprint string');
    }
  }
  return value as unknown as RevocationDocument;
}

/** The fingerprints a discovery document's `revoked_keys` lists (missing means none). */
export function simpleRevokedList(discovery: JsonObject): string[] {
  const list = discovery.revoked_keys;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new SchemaPinError(ErrorCode.discoveryInvalid, 'discovery revoked_keys must be an array');
  return list.filter((x): x is string => typeof x === 'string');
}

/** Throws key_revoked if `fingerprint` is revoked by either source (the SDK's `checkRevocationCombined`). */
export function checkRevocationCombined(simpleRevoked: readonly string[], doc: RevocationDocument | null, fingerprint: string): void {
  if (simpleRevoked.includes(fingerprint)) {
    throw new SchemaPinError(ErrorCode.keyRevoked, `Key ${fingerprint} is revoked (discovery revoked_keys)`, { fingerprint });
  }
  const hit = doc?.revoked_keys.find((k) => k.fingerprint === fingerprint);
  if (hit !== undefined) {
    throw new SchemaPinError(ErrorCode.keyRevoked, `Key ${fingerprint} is revoked: ${hit.reason}`, { fingerprint, reason: hit.reason });
  }
}
