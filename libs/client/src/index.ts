export { createBulwarkClient, type Authorize, type BulwarkClient, type BulwarkClientOptions, type CallOptions, type PolicyAdmin, type PolicyCalls, type ToolCalls, type ToolsAdmin } from './client.js';
export { readToolVerdict, runIfPermitted, toolUseDecision, type SignedToolInput, type ToolInvocation, type ToolUseInput, type ToolVerdict } from './tool-use.js';
export { failureDeny, permits, readDecision } from './decision.js';
export {
  EnforcementClasses,
  agentCreationRequest,
  dataOperationRequest,
  messageRoutingRequest,
  resourceAccessRequest,
  toolInvocationRequest,
  type AgentCreationInput,
  type DataOperationInput,
  type MessageRoutingInput,
  type ResourceAccessInput,
  type ToolInvocationInput,
} from './enforcement.js';
export {
  MAX_BATCH_REQUESTS,
  type AllowDecision,
  type AllowWithConditionsDecision,
  type DenyDecision,
  type PolicyChangeReply,
  type PolicyDecision,
  type PolicyListEntry,
  type PolicyListReply,
  type PolicyRequest,
  type PolicyRollbackRequest,
  type PolicyTextRequest,
  type RequireApprovalDecision,
  type WireCondition,
  type WireRuleRef,
} from './policy-wire.js';
export { createKeyCalls, enrollWithJoinBundle, type Certified, type ChannelAction, type CurrentNatsUser, type ChannelView, type EnrollOptions, type Invitation, type KeyCalls, type KeyVersionView, type KeyView, type NewKeys, type ProviderKeyView, type RevocationReason, type RotationRequested, type RotationRequestReason } from './keys.js';
export { adoptionMessage, checkKeyPossession, possessionMessage, proveKeyPossession } from './key-possession.js';
export { parseJoinBundle, type JoinBundle } from './join-bundle.js';
export {
  sandboxCalls,
  type SandboxAssessment,
  type SandboxCalls,
  type SandboxEgressRule,
  type SandboxEscapeSign,
  type SandboxRunReply,
  type SandboxScheduleReply,
  type SandboxScheduleRequest,
  type SandboxTierDecision,
} from './sandbox-wire.js';
export { startCredentialRenewal, type CredentialRenewal, type CredentialRenewalOptions } from './credential-renewal.js';
export { startKeyRotation, SWITCH_SETTLE_MS, type KeyRotation, type KeyRotationOptions, type RotatedKeys, type RotatingIdentity, type RotationTrigger } from './key-rotation.js';
export { MAX_ROTATION_CHECK_MS, rotationCheckMs, rotationTrigger } from './rotation-check.js';
export { settleRotation, type RotationStaging, type SettleOptions, type Settlement, type StagedRotation } from './rotation-settle.js';
