export { ForbiddenProducerError, LedgerError, isForbiddenProducerError, isLedgerError, type LedgerErrorCode } from './errors.js';
export { AuditLedger, migrateLedger, prepareEvent, type PreparedEvent, type ProducedEvent, type StoredEvent, type AppendResult, type InclusionProof, type LedgerDb, type LedgerHead, type LedgerOptions, type StoredCheckpoint } from './ledger.js';
export { verifyLedger, type VerifyOptions, type VerifyProblem, type VerifyReport } from './verify.js';
export { EXPORT_FORMAT, exportLedger, verifyExport, type ExportOptions, type ExportProblem, type ExportReport, type VerifyExportOptions } from './export.js';
export { LEDGER_MIGRATIONS, type LedgerDatabase } from './store/schema.js';
export { MERKLE_HASH_LENGTH, emptyRoot, leafHash, nodeHash, type Hasher } from './merkle/hash.js';
export { CompactRange, type NodeId, type TreeNode } from './merkle/compact-range.js';
export { MemoryMerkleTree } from './merkle/memory-tree.js';
export { consistencyPlan, inclusionPlan, verifyConsistency, verifyInclusion } from './merkle/proofs.js';
export {
  COSIGNATURE_V1_TYPE,
  ED25519_SIGNATURE_TYPE,
  computeKeyId,
  formatSignerKey,
  formatVerifierKey,
  keyIdHex,
  parseSignerKey,
  parseVerifierKey,
  publicPart,
  signerKey,
  verifierKey,
  type NoteKeyType,
  type SignerKey,
  type VerifierKey,
} from './note/keys.js';
export { MAX_NOTE_SIGNATURES, addSignatures, formatNote, openNote, parseNote, signNote, signText, type Note, type NoteSignature, type OpenedNote } from './note/signed-note.js';
export { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint, type Checkpoint, type OpenCheckpointOptions, type OpenedCheckpoint } from './note/checkpoint.js';
export { Witness, cosignCheckpoint, type Cosigned, type WitnessConfig } from './witness.js';
export { firstStoredSeq, openArchiveAnchor, type ArchiveAnchor, type AnchorResult } from './archive-anchor.js';
export { LedgerReader, type LedgerReaderOptions, type VerifiedConsistencyProof, type VerifiedInclusionProof } from './archive-reader.js';
export { ArchiveError, DAY_MS, archiveBefore, assertOutsideRetention, retentionCutoff, type ArchiveOptions, type ArchiveResult } from './archive.js';
export {
  BUILTIN_FRAMEWORKS,
  FrameworkError,
  effectiveRetentionDays,
  isBuiltinFramework,
  loadFramework,
  parseFramework,
  type AccessControlRequirement,
  type BuiltinFramework,
  type ComplianceFramework,
  type EventRequirement,
} from './compliance/framework.js';
export { MAX_FINDING_SEQS, validateCompliance, type ComplianceFinding, type CompliancePeriod, type ComplianceReport, type ComplianceSource } from './compliance/validate.js';
export { complianceMarkdown, generateComplianceReport, renderComplianceReport, type ReportFormat } from './compliance/report.js';
export { LEDGER_DURABLE, LedgerService, SERVICE_VERSION, type LedgerReadiness, type LedgerServiceMetrics, type LedgerServiceOptions } from './service/service.js';
export { DEFAULT_SETTINGS, SETTINGS_ENV, loadLedgerSettings, type LedgerSettings } from './service/settings.js';
export { decodePayload, payloadKind, type PayloadKind } from './service/decode.js';
export { DEFAULT_VIOLATION_BUDGET, type ViolationBudget } from './service/violations.js';
export { ledgerBatchOfRows } from './service/batch-wire.js';
export { LedgerRecoveryError, type RepublishReply } from './service/recovery.js';
export type {
  CheckpointReply,
  ConsistencyReply,
  ConsistencyRequest,
  EventJson,
  InclusionReply,
  InclusionRequest,
  QueryReply,
  QueryRequest,
  VerifyReply,
  VerifyRequest,
} from './service/protocol.js';
