export { startLedgerReader, type LedgerReader, type LedgerReaderMetrics, type LedgerReaderOptions } from './reader.js';
export { AppliedEvents, type AppliedWait } from './applied-events.js';
export { LedgerReaderTimeoutError, LedgerReaderUsageError, ReaderHaltedError, type ReaderHaltCode } from './errors.js';
export { START_POSITION, type ReaderMode, type ReaderPosition } from './internal/chain.js';
export type { GapRange, GapSource } from './internal/core.js';
export { CONTROL_EVENT_TYPES, ledgerEventOfJson, type AuditQuery } from './internal/query-source.js';
export { ledgerQuery, startQueryReader, type QueryReader, type QueryReaderOptions } from './query-reader.js';
export { eventVerifier } from './internal/verify.js';
export { KEY_FACT_PRODUCER, LedgerKeys, type KeyFactApplied, type LedgerKeysState } from './keys/ledger-keys.js';
export { KeyBook, type ApplyOutcome, type Invite, type RevokedVersion, type RotationRequest } from './keys/key-book.js';
export { KEY_FACT_TYPES, ROTATION_REQUEST_REASONS, ROTATION_TRIGGERS, factDetails, isKeyFactType, parseFact, type KeyFact, type KeyFactType, type RotationRequestReason, type RotationTrigger } from './keys/facts.js';
export { KeyLifecycleError } from './keys/errors.js';
export { LEDGER_KEY_CHANGE_TYPE, LedgerKeySchedule, ledgerKeyChangeOf, scheduleOfChanges, type LedgerKeyChange, type LedgerKeyEvent, type LedgerKeyStep } from './keys/ledger-key-schedule.js';
export {
  KEY_STATES,
  MAX_DELETION_DAYS,
  MIN_DELETION_DAYS,
  REVOCATION_REASONS,
  activeVersion,
  cancelDeletion,
  canVerify,
  destroyVersion,
  disableVersion,
  enableVersion,
  generateKey,
  isFinallyRefused,
  raiseMinVerifyVersion,
  revokeVersion,
  rotateKey,
  rotateAfter,
  rotationDue,
  scheduleDeletion,
  versionOf,
  type KeyState,
  type KeyVersion,
  type PrincipalKey,
  type Revocation,
  type RevocationReason,
  type VersionKeys,
} from './keys/versions.js';
