export { startPolicyService, type PolicyAuditOptions, type PolicyService, type PolicyServiceMetrics, type PolicyServiceOptions } from './service.js';
export type { AuditMetrics } from './audit.js';
export type { AuditCondition } from './audit-guard.js';
export { ledgerAckFloor, type CommitSignal } from './commit-watch.js';
export { DecisionLog, type DecisionLogMetrics, type DecisionLogOptions } from './decision-log.js';
export { createMasker, MASKED, type MaskOptions } from './mask.js';
export { PolicyProjection, parseOne, type ApplyOutcome } from './projection.js';
export { PolicyAdminInputError, PolicyServiceError } from './errors.js';
