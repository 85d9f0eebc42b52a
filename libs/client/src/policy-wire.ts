/**
 * The policy service's wire contract (DESIGN §2, §5): JSON bodies of the
 * `bulwark.policy.*` commands. Both `@bulwark/client` and the service use these shapes;
 * the service never imports the client's runtime code, only this contract.
 */

/** What a decision is about (policy-language README "Requests"). */
export interface PolicyRequest {
  readonly action: string;
  readonly resource: string;
  readonly classes?: readonly string[];
  readonly context?: { readonly [name: string]: unknown };
}

export interface WireRuleRef {
  readonly policy: string;
  readonly version: number;
  readonly rule: number;
  readonly ruleText: string;
}

export interface WireCondition {
  readonly name: string;
  readonly value: unknown;
  readonly policy: string;
  readonly version: number;
  readonly rule: number;
}

interface DecisionCommon {
  /** The policy set version that decided (`ledger-<seq>`), or null when no set decided (a client-side deny). */
  readonly setVersion: string | null;
}

export interface AllowDecision extends DecisionCommon, WireRuleRef {
  readonly decision: 'Allow';
}
export interface AllowWithConditionsDecision extends DecisionCommon, WireRuleRef {
  readonly decision: 'AllowWithConditions';
  readonly conditions: readonly WireCondition[];
}
export interface RequireApprovalDecision extends DecisionCommon, WireRuleRef {
  readonly decision: 'RequireApproval';
  readonly approver: string;
  readonly approvers: readonly string[];
  readonly conditions?: readonly WireCondition[];
}
export interface DenyDecision extends DecisionCommon {
  readonly decision: 'Deny';
  readonly reason: string;
  readonly policy: string | null;
  readonly version: number | null;
  readonly rule: number | null;
  readonly ruleText: string | null;
  /**
   * Set when the client denied without a decision from the service (fail secure): the
   * error code (`E_BUS_TIMEOUT`, `E_BUS_NO_RESPONDERS`, `E_POLICY_REPLY`, ...).
   */
  readonly failure?: string;
}

export type PolicyDecision = AllowDecision | AllowWithConditionsDecision | RequireApprovalDecision | DenyDecision;

/** `bulwark.policy.admin.register` and `.update`: one policy's text (its name is in the text). */
export interface PolicyTextRequest {
  readonly text: string;
  readonly file?: string;
}

/** `bulwark.policy.admin.rollback`: make an earlier version of `name` active again. */
export interface PolicyRollbackRequest {
  readonly name: string;
  readonly toVersion: number;
}

/** The answer to register, update and rollback. */
export interface PolicyChangeReply {
  readonly name: string;
  /** The version that is (or will be, once committed) active. */
  readonly version: number;
  /** The policy event's id in the ledger. */
  readonly eventId: string;
  /** True once the service has replayed the committed event and swapped its set. */
  readonly applied: boolean;
  /** The set version after the change was applied, else null. */
  readonly setVersion: string | null;
}

export interface PolicyListEntry {
  readonly name: string;
  readonly activeVersion: number;
  readonly versions: readonly number[];
  readonly file: string;
  readonly rules: number;
}

export interface PolicyListReply {
  readonly setVersion: string;
  readonly policies: readonly PolicyListEntry[];
}

/** At most this many requests in one `evaluate.batch`. */
export const MAX_BATCH_REQUESTS = 1000;
