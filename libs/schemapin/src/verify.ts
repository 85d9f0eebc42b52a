/**
 * `verifySchemaOffline` as the JS SDK runs it (protocol note §7), with the same result
 * fields, error codes and warnings:
 *   1. the `canonicalization` id (anything but schemapin-v1 fails before any crypto),
 *   2. the discovery document (`public_key_pem` must hold an SPKI PEM),
 *   3. the key (P-256 only) and its fingerprint,
 *   4. revocation, from the discovery list AND the standalone document,
 *   5. the pin (`tool_id@domain`),
 *   6. canonicalize + SHA-256, 7. ECDSA verify over the digest,
 * then the v1.0/1.1 upgrade warning and the v1.4 `expires_at` check (a past expiry stays
 * valid with the warning `signature_expired`, as the SDK does).
 *
 * One deliberate difference, on by default: the SDK writes the pin in step 5, before the
 * signature is checked, so a forged first request pins its key. With `pinning: 'after_verify'`
 * (the default) step 5 only compares, and the pin is written once everything passed
 * (signature, and the DNS TXT cross-check when given). `pinning: 'reference'` reproduces
 * the SDK exactly (the vectors' `pin_store_after`).
 */
import { canonicalizeSchema, checkCanonicalization, hashCanonicalHex } from './canonical.js';
import { verifyDnsMatch, type DnsTxtRecord } from './dns.js';
import { ErrorCode, SchemaPinError } from './errors.js';
import { isJsonObject } from './json.js';
import { loadPublicKey, type LoadedPublicKey } from './keys.js';
import type { KeyPinStore, PinCheck } from './pin-store.js';

/** What the verifier needs of a pin store: a KeyPinStore, or a view of one tool's pin (pinning.ts). */
export type PinLookup = Pick<KeyPinStore, 'check' | 'checkAndPin'>;
import { checkRevocationCombined, simpleRevokedList, type RevocationDocument } from './revocation.js';
import { verifySchemaHash } from './signature.js';

export type PinningStatus = Exclude<PinCheck, 'changed'>;

/** The SDK's result object. `key_pinning` is null when no pin store was given (skills). */
export interface VerificationResult {
  valid: boolean;
  domain: string;
  developer_name?: string | null;
  key_pinning?: { status: PinningStatus } | null;
  warnings?: string[];
  error_code?: ErrorCode;
  error_message?: string;
  expires_at?: string;
  expired?: boolean;
  /** Not an SDK field: the fingerprint of the key that verified (for pinning and caches). */
  key_fingerprint?: string;
  /** Not an SDK field: `sha256:<hex>` of the schemapin-v1 canonical schema that verified. */
  schema_hash?: string;
}

export interface VerifyOptions {
  /** The signature's `canonicalization` field (v1.4). */
  readonly canonicalization?: string | null;
  /** The signature's `expires_at` (v1.4). */
  readonly expiresAt?: string | null;
  /** A parsed `_schemapin.<domain>` TXT record (v1.4); a mismatch is domain_mismatch. */
  readonly dnsTxt?: DnsTxtRecord | null;
  /** 'after_verify' (default): pin only once the signature verified. 'reference': the SDK's order. */
  readonly pinning?: 'after_verify' | 'reference';
  readonly now?: () => number;
  /** The schema's canonical text, when the caller already has it (canonicalParts). */
  readonly canonical?: string;
}

function failure(domain: string, err: SchemaPinError): VerificationResult {
  return { valid: false, domain, error_code: err.errorCode, error_message: err.message };
}

/** The v1.4 expiry check (the SDK's `applyExpirationCheck`): degraded, not failed; unparseable fails open with a warning. */
export function applyExpirationCheck(result: VerificationResult, expiresAt: string | null | undefined, now: number = Date.now()): VerificationResult {
  if (expiresAt === null || expiresAt === undefined) return result;
  const warnings = (result.warnings ??= []);
  const ts = new Date(expiresAt).getTime();
  if (Number.isNaN(ts)) {
    warnings.push('signature_expires_at_unparseable');
    return result;
  }
  result.expires_at = expiresAt;
  if (ts < now) {
    result.expired = true;
    warnings.push('signature_expired');
  }
  return result;
}

/** Steps 2-4: the discovery key, loaded and not revoked. Throws SchemaPinError. */
export function trustedDiscoveryKey(discovery: unknown, revocation: RevocationDocument | null): LoadedPublicKey {
  const pem = isJsonObject(discovery) ? discovery.public_key_pem : undefined;
  if (typeof pem !== 'string') throw new SchemaPinError(ErrorCode.discoveryInvalid, 'Discovery document missing or invalid public_key_pem');
  // Parsed once per key text (keys.ts), which also refuses a text without the PEM header.
  const key = loadPublicKey(pem);
  checkRevocationCombined(simpleRevokedList(discovery as Record<string, never>), revocation, key.fingerprint);
  return key;
}

export function verifySchemaOffline(
  schema: unknown,
  signatureB64: unknown,
  domain: string,
  toolId: string,
  discovery: unknown,
  revocation: RevocationDocument | null,
  pinStore: PinLookup,
  options: VerifyOptions = {},
): VerificationResult {
  try {
    const unsupported = checkCanonicalization(options.canonicalization);
    if (unsupported !== null) throw unsupported;
    const key = trustedDiscoveryKey(discovery, revocation);
    const reference = options.pinning === 'reference';
    const pin = reference ? pinStore.checkAndPin(toolId, domain, key.fingerprint) : pinStore.check(toolId, domain, key.fingerprint);
    if (pin === 'changed') throw new SchemaPinError(ErrorCode.keyPinMismatch, 'Key fingerprint changed since last use');
    const hex = hashCanonicalHex(options.canonical ?? canonicalizeSchema(schema));
    const digest = Buffer.from(hex, 'hex');
    if (!verifySchemaHash(digest, signatureB64, key.key)) throw new SchemaPinError(ErrorCode.signatureInvalid, 'Signature verification failed');
    if (options.dnsTxt) verifyDnsMatch(discovery, options.dnsTxt);
    if (!reference && pin === 'first_use') pinStore.checkAndPin(toolId, domain, key.fingerprint);
    const disc = discovery as Record<string, unknown>;
    const result: VerificationResult = {
      valid: true,
      domain,
      developer_name: typeof disc.developer_name === 'string' && disc.developer_name !== '' ? disc.developer_name : null,
      key_pinning: { status: pin },
      warnings: [],
      key_fingerprint: key.fingerprint,
      schema_hash: `sha256:${hex}`,
    };
    const version = typeof disc.schema_version === 'string' ? disc.schema_version : '';
    if (version !== '' && version < '1.2') result.warnings!.push(`Discovery uses schema version ${version}, consider upgrading to 1.2`);
    return options.expiresAt === null || options.expiresAt === undefined ? result : applyExpirationCheck(result, options.expiresAt, (options.now ?? Date.now)());
  } catch (err) {
    if (err instanceof SchemaPinError) return failure(domain, err);
    throw err;
  }
}
