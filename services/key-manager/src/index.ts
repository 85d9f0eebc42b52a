export { JoinTokenError } from './errors.js';
export { DEFAULT_TOKEN_TTL_MS, JOIN_TOKEN_PREFIX, MAX_TOKEN_TTL_MS, issueJoinToken, parseJoinToken, verifyJoinToken, type IssueTokenOptions, type JoinTokenClaims } from './enroll/join-token.js';
export { NatsRevoker, type NatsRevokerOptions } from './nats/revoker.js';
export { Certifier, type CertifierOptions } from './service/certifier.js';
export { FACT_SUBJECTS, viewOf, type KeyView } from './service/handlers.js';
export { KeyProjection } from './service/projection.js';
export { startKeyManager, type KeyManager, type KeyManagerOptions } from './service/service.js';
export { BACKUP_FORMAT, BackupError, backupHash, createBackup, restoreBackup, type BackupFile, type BackupManifest, type CreateBackupOptions, type RecoveryHolder, type RestoreBackupOptions } from './backup/backup.js';
export { openKeyManagerStore, type KeyManagerStore, type KeyManagerStoreConfig } from './store/open-store.js';
