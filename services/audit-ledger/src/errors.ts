import { BulwarkError, InputError } from '@bulwark/errors';

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
export type LedgerErrorCode =
  | 'E_PROOF'
  | 'E_NOTE'
  | 'E_NOTE_SIGNATURE'
  | 'E_CHECKPOINT'
  | 'E_KEY'
  | 'E_WITNESS'
  | 'E_LEDGER'
  | 'E_SIGNER'
  /** A re-published batch cannot be sealed to its reader now (not in the directory, no key for the channel's epoch): left to the readers' gap fill from the ledger's query. */
  | 'E_LEDGER_WITHHELD';

export class LedgerError extends BulwarkError {
  declare readonly code: LedgerErrorCode;

  constructor(code: LedgerErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, context, options);
  }
}

export function isLedgerError(value: unknown, code?: LedgerErrorCode): value is LedgerError {
  return value instanceof LedgerError && (code === undefined || value.code === code);
}

/**
 * An event its producer may not produce (DESIGN §3a, `checkProducer` of @bulwark/events):
 * bad input, never appended. The context names what was claimed, so the service can record
 * the refusal as a `security.violation` naming the real producer.
 */
// A type, not an interface: an error's context must be assignable to a string-keyed record.
export type ForbiddenProducerContext = {
  readonly producer: string;
  readonly eventType: string;
  readonly agentId: string;
  readonly eventId: string;
  readonly reason: string;
  /** Events in the refused bus message (all of them are refused with it), when known. */
  readonly messageEvents?: number;
};

export class ForbiddenProducerError extends InputError {
  declare readonly code: 'E_EVENT_PRODUCER';
  declare readonly context: ForbiddenProducerContext;

  constructor(context: ForbiddenProducerContext) {
    super('E_EVENT_PRODUCER', `event ${context.eventId}: refused: ${context.reason}`, { ...context });
  }
}

export function isForbiddenProducerError(value: unknown): value is ForbiddenProducerError {
  return value instanceof ForbiddenProducerError;
}
