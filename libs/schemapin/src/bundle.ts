/**
 * Trust bundles (protocol note §8): offline discovery + revocation documents for many
 * domains; v1.4 bundles are signed by a bundle authority. The signing input is the
 * schemapin-v1 canonical text of the whole bundle with `signature` set to "" and the
 * signature is plain ECDSA-SHA256 over those bytes (single hash, all four SDKs agree).
 * Verification, in the SDK's order: authority and signature present (else bundle_unsigned);
 * `expires_at` not past and parseable (else bundle_expired); the authority key pinned by
 * kid under the pseudo-domain `_bundle_authority` (a different key is key_pin_mismatch);
 * the signature (signature_invalid). Unlike schemas, the SDK pins the authority before the
 * signature check; with `pinning: 'after_verify'` (our default) the pin is written after.
 */
import { canonicalizeSchema } from './canonical.js';
import { ErrorCode, SchemaPinError } from './errors.js';
import { isJsonObject, type JsonObject } from './json.js';
import { loadPrivateKey, loadPublicKey, publicPemOf } from './keys.js';
import type { KeyPinStore } from './pin-store.js';
import { parseRevocationDocument, type RevocationDocument } from './revocation.js';
import { signMessage, verifyMessage } from './signature.js';

export const BUNDLE_VERSION_SIGNED = '1.4';
export const BUNDLE_AUTHORITY_PIN_DOMAIN = '_bundle_authority';

export interface TrustBundle {
  schemapin_bundle_version: string;
  created_at: string;
  documents: JsonObject[];
  revocations: JsonObject[];
  bundle_authority?: { kid: string; public_key_pem: string };
  signed_at?: string;
  expires_at?: string;
  signature?: string;
}

export function createTrustBundle(createdAt: string): TrustBundle {
  return { schemapin_bundle_version: '1.2', created_at: createdAt, documents: [], revocations: [] };
}

/** A discovery document flattened with its domain, as bundles carry it. */
export function createBundledDiscovery(domain: string, wellKnown: JsonObject): JsonObject {
  return { domain, ...wellKnown };
}

function documentsOf(bundle: unknown, field: 'documents' | 'revocations'): JsonObject[] {
  const list = isJsonObject(bundle) ? bundle[field] : undefined;
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new SchemaPinError(ErrorCode.discoveryInvalid, `trust bundle ${field} must be an array`);
  return list.filter(isJsonObject);
}

/** The discovery document for `domain` (without its `domain` member), or null. */
export function findDiscovery(bundle: unknown, domain: string): JsonObject | null {
  const doc = documentsOf(bundle, 'documents').find((d) => d.domain === domain);
  if (doc === undefined) return null;
  const { domain: _domain, ...rest } = doc;
  return rest;
}

export function findRevocation(bundle: unknown, domain: string): RevocationDocument | null {
  const doc = documentsOf(bundle, 'revocations').find((d) => d.domain === domain);
  return doc === undefined ? null : parseRevocationDocument(doc);
}

/** The exact text a bundle signature covers. */
export function bundleSigningInput(bundle: object): string {
  return canonicalizeSchema({ ...bundle, signature: '' });
}

/** Signs a bundle as the SDK's `signTrustBundle` (fields in its order; optional expires_at). */
export function signTrustBundle(bundle: TrustBundle, privateKeyPem: string, kid: string, signedAt: string, expiresAt: string | null = null): TrustBundle {
  const key = loadPrivateKey(privateKeyPem);
  const signed: TrustBundle = {
    schemapin_bundle_version: BUNDLE_VERSION_SIGNED,
    created_at: bundle.created_at,
    documents: [...bundle.documents],
    revocations: [...bundle.revocations],
    bundle_authority: { kid, public_key_pem: publicPemOf(key) },
    signed_at: signedAt,
  };
  if (expiresAt !== null) signed.expires_at = expiresAt;
  signed.signature = signMessage(Buffer.from(bundleSigningInput(signed), 'utf8'), key);
  return signed;
}

export interface BundleVerifyOptions {
  readonly pinning?: 'after_verify' | 'reference';
  readonly now?: () => number;
}

/** Verifies a signed bundle; returns true or throws SchemaPinError with the SDK's code. */
export function verifyTrustBundle(bundle: unknown, authorityPins: KeyPinStore, options: BundleVerifyOptions = {}): true {
  if (!isJsonObject(bundle)) throw new SchemaPinError(ErrorCode.discoveryInvalid, 'trust bundle must be a JSON object');
  const authority = bundle.bundle_authority;
  if (!isJsonObject(authority)) throw new SchemaPinError(ErrorCode.bundleUnsigned, 'trust bundle has no bundle_authority');
  const signature = bundle.signature;
  if (typeof signature !== 'string' || signature === '') throw new SchemaPinError(ErrorCode.bundleUnsigned, 'trust bundle has no signature');
  if (bundle.expires_at !== undefined && bundle.expires_at !== null) {
    const exp = new Date(String(bundle.expires_at)).getTime();
    if (Number.isNaN(exp)) throw new SchemaPinError(ErrorCode.bundleExpired, `unparseable expires_at '${String(bundle.expires_at)}'`);
    if ((options.now ?? Date.now)() > exp) throw new SchemaPinError(ErrorCode.bundleExpired, `trust bundle expired at ${String(bundle.expires_at)}`);
  }
  if (typeof authority.kid !== 'string' || typeof authority.public_key_pem !== 'string') {
    throw new SchemaPinError(ErrorCode.bundleUnsigned, 'trust bundle bundle_authority needs kid and public_key_pem');
  }
  const key = loadPublicKey(authority.public_key_pem);
  const reference = options.pinning === 'reference';
  const pin = reference ? authorityPins.checkAndPin(authority.kid, BUNDLE_AUTHORITY_PIN_DOMAIN, key.fingerprint) : authorityPins.check(authority.kid, BUNDLE_AUTHORITY_PIN_DOMAIN, key.fingerprint);
  if (pin === 'changed') throw new SchemaPinError(ErrorCode.keyPinMismatch, `bundle authority key for kid '${authority.kid}' changed since last use`);
  if (!verifyMessage(Buffer.from(bundleSigningInput(bundle), 'utf8'), signature, key.key)) {
    throw new SchemaPinError(ErrorCode.signatureInvalid, 'trust bundle signature does not verify');
  }
  if (!reference && pin === 'first_use') authorityPins.checkAndPin(authority.kid, BUNDLE_AUTHORITY_PIN_DOMAIN, key.fingerprint);
  return true;
}

/** Merges bundles: one entry per domain, the newer `signed_at`/`created_at` wins; the result is unsigned. */
export function mergeTrustBundles(bundles: readonly TrustBundle[]): TrustBundle {
  const docs = new Map<string, { ts: string; doc: JsonObject }>();
  const revs = new Map<string, { ts: string; doc: JsonObject }>();
  let newest = '';
  const take = (into: Map<string, { ts: string; doc: JsonObject }>, ts: string, doc: JsonObject): void => {
    const d = String(doc.domain);
    const existing = into.get(d);
    if (existing === undefined || existing.ts < ts) into.set(d, { ts, doc });
  };
  for (const b of bundles) {
    const ts = b.signed_at ?? b.created_at ?? '';
    if (ts > newest) newest = ts;
    for (const d of b.documents ?? []) take(docs, ts, d);
    for (const r of b.revocations ?? []) take(revs, ts, r);
  }
  const byDomain = (a: JsonObject, b: JsonObject): number => (String(a.domain) < String(b.domain) ? -1 : String(a.domain) > String(b.domain) ? 1 : 0);
  return {
    schemapin_bundle_version: BUNDLE_VERSION_SIGNED,
    created_at: newest,
    documents: [...docs.values()].map((e) => e.doc).sort(byDomain),
    revocations: [...revs.values()].map((e) => e.doc).sort(byDomain),
  };
}
