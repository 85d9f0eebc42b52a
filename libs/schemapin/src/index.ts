export { ErrorCode, SchemaPinError, SchemaPinInputError } from './errors.js';
export { DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_JSON_DEPTH, isJsonObject, parseJsonBytes, parseJsonText, type JsonLimits, type JsonObject, type JsonValue } from './json.js';
export { CANONICALIZATION_V1, canonicalizeAndHash, canonicalizeSchema, checkCanonicalization, hashCanonical } from './canonical.js';
export { generateKeyPair, isFingerprint, keyFingerprint, loadPrivateKey, loadPublicKey, publicPemOf, PUBLIC_KEY_PEM_HEADER, type LoadedPublicKey } from './keys.js';
export { signMessage, signSchemaHash, verifyMessage, verifySchemaHash } from './signature.js';
export {
  addRevokedKey,
  buildRevocationDocument,
  checkRevocationCombined,
  parseRevocationDocument,
  RevocationReason,
  simpleRevokedList,
  type RevocationDocument,
  type RevokedKey,
} from './revocation.js';
export { KeyPinStore, pinKey, type PinCheck, type PinEntry } from './pin-store.js';
export { PinLedger, type PinLedgerHooks, type ProviderKey } from './pin-ledger.js';
export { applyExpirationCheck, trustedDiscoveryKey, verifySchemaOffline, type PinningStatus, type VerificationResult, type VerifyOptions } from './verify.js';
export { fetchDnsTxt, parseTxtRecord, txtRecordName, verifyDnsMatch, type DnsOptions, type DnsTxtRecord } from './dns.js';
export { a2aAllows, MAX_DELEGATION_DEPTH, verifyForA2A, type A2AContext } from './a2a.js';
export {
  BUNDLE_AUTHORITY_PIN_DOMAIN,
  BUNDLE_VERSION_SIGNED,
  bundleSigningInput,
  createBundledDiscovery,
  createTrustBundle,
  findDiscovery,
  findRevocation,
  mergeTrustBundles,
  signTrustBundle,
  verifyTrustBundle,
  type BundleVerifyOptions,
  type TrustBundle,
} from './bundle.js';
export {
  canonicalizeSkill,
  detectTamperedFiles,
  loadSkillSignature,
  parseSkillName,
  signSkill,
  SIGNATURE_FILENAME,
  verifyChain,
  verifySkillOffline,
  type SignSkillOptions,
  type SkillCanonical,
  type VerifySkillOptions,
} from './skill.js';
export {
  createWellKnownResponse,
  DEFAULT_DISCOVERY_MAX_BYTES,
  DEFAULT_FETCH_TIMEOUT_MS,
  discoveryUrl,
  fetchDiscovery,
  fetchGuarded,
  isNonPublicAddress,
  parseDiscovery,
  type Discovered,
  type FetchOptions,
} from './discovery.js';
export { CONTENT_FIELDS, contentHash, toolContent } from './content.js';
export { CROSS_RULES, RULES, SEVERITY_WEIGHT, type Category, type ParamRule, type PatternRule, type Rule, type Severity } from './review/rules.js';
export { DEFAULT_REVIEW_THRESHOLD, nameSkeleton, reviewSchema, type Finding, type KnownTool, type Recommendation, type ReviewOptions, type ReviewResult } from './review/scan.js';
export { checkTool, ToolErrorCode, type PinMode, type SignedTool, type ToolCheck, type ToolCheckInput, type Verdict } from './pinning.js';
export { parseSignedTool, signSchema, type SignSchemaOptions } from './sign.js';
export { CachedVerifier, type CacheStats } from './cache.js';
export { canonicalParts, type CanonicalParts } from './canonical.js';
export { contentText } from './content.js';
