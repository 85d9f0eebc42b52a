import { BulwarkError } from '@bulwark/errors';

/**
 * Stable codes of ledger failures; callers branch on these, never on messages.
 * - E_PROOF: an inclusion or consistency proof does not verify, or cannot be made for these sizes.
 * - E_NOTE: a signed note is malformed (RFC-like grammar of c2sp.org/signed-note).
 * - E_NOTE_SIGNATURE: a signature from a known key fails, or no known key signed.
 * - E_CHECKPOINT: a checkpoint body is malformed or its origin is not the expected one.
 * - E_KEY: a verifier or signer key string is malformed or its key ID does not match.
 * - E_WITNESS: a witness refuses to cosign (rollback, inconsistency, bad signature).
 * - E_LEDGER: the stored ledger is not in the state an operation needs (e.g. missing nodes).
 * - E_SIGNER: event hashes could not be signed (the signing worker failed, stopped or timed out); nothing was stored.
 */
export type LedgerErrorCode = 'E_PROOF' | 'E_NOTE' | 'E_NOTE_SIGNATURE' | 'E_CHECKPOINT' | 'E_KEY' | 'E_WITNESS' | 'E_LEDGER' | 'E_SIGNER';

export class LedgerError extends BulwarkError {
  declare readonly code: LedgerErrorCode;

  constructor(code: LedgerErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, context, options);
  }
}

export function isLedgerError(value: unknown, code?: LedgerErrorCode): value is LedgerError {
  return value instanceof LedgerError && (code === undefined || value.code === code);
}
