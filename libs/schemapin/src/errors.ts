import { BulwarkError, InputError } from '@bulwark/errors';

/**
 * The SDK's error codes (JS SDK 1.4.0-alpha.4 `ErrorCode`, protocol note §7), lowercase
 * strings as they appear in a result's `error_code`.
 */
export const ErrorCode = {
  signatureInvalid: 'signature_invalid',
  keyNotFound: 'key_not_found',
  keyRevoked: 'key_revoked',
  keyPinMismatch: 'key_pin_mismatch',
  discoveryFetchFailed: 'discovery_fetch_failed',
  discoveryInvalid: 'discovery_invalid',
  domainMismatch: 'domain_mismatch',
  schemaCanonicalizationFailed: 'schema_canonicalization_failed',
  canonicalizationUnsupported: 'canonicalization_unsupported',
  a2aScopeViolation: 'a2a_scope_violation',
  bundleUnsigned: 'bundle_unsigned',
  bundleExpired: 'bundle_expired',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * A SchemaPin failure: `code` is `E_SCHEMAPIN_<SDK code>`, `errorCode` the SDK's own
 * string, so a caller can build the SDK's result from it.
 */
export class SchemaPinError extends BulwarkError {
  readonly errorCode: ErrorCode;
  constructor(errorCode: ErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(`E_SCHEMAPIN_${errorCode.toUpperCase()}`, message, { errorCode, ...context }, options);
    this.errorCode = errorCode;
  }
}

/** Bad JSON input (too big, too deep, duplicate keys, invalid UTF-8): the CLI exits 2. */
export class SchemaPinInputError extends InputError {}
