export { JoinTokenError, KeyLifecycleError } from './errors.js';
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
} from './model/versions.js';
export { DEFAULT_TOKEN_TTL_MS, JOIN_TOKEN_PREFIX, MAX_TOKEN_TTL_MS, issueJoinToken, parseJoinToken, verifyJoinToken, type IssueTokenOptions, type JoinTokenClaims } from './enroll/join-token.js';
export { KEY_FACT_TYPES, ROTATION_TRIGGERS, factDetails, isKeyFactType, parseFact, type KeyFact, type KeyFactType, type RotationTrigger } from './state/facts.js';
export { KeyBook, type ApplyOutcome, type Invite, type RevokedVersion } from './state/key-book.js';
export { NatsRevoker, type NatsRevokerOptions } from './nats/revoker.js';
export { Certifier, type CertifierOptions } from './service/certifier.js';
export { FACT_SUBJECTS, viewOf, type KeyView } from './service/handlers.js';
export { KeyProjection } from './service/projection.js';
export { startKeyManager, type KeyManager, type KeyManagerOptions } from './service/service.js';
export { BACKUP_FORMAT, BackupError, backupHash, createBackup, restoreBackup, type BackupFile, type BackupManifest, type CreateBackupOptions, type RecoveryHolder, type RestoreBackupOptions } from './backup/backup.js';
export { openKeyManagerStore, type KeyManagerStore, type KeyManagerStoreConfig } from './store/open-store.js';
