import type { JsonValue } from './ast.js';
import type { PolicyEvalError } from './errors.js';

/** Names one rule: the policy, its version, the rule's 1-based number in the policy and its head. */
export interface RuleRef {
  readonly policy: string;
  readonly version: number;
  readonly rule: number;
  /** The rule without its condition: `deny export(data)`. */
  readonly ruleText: string;
}

/** An obligation the enforcement point must meet: `audit_trail = "detailed"`, `differential_privacy`. */
export interface Condition {
  readonly name: string;
  readonly value: JsonValue;
  /** The `require:` rule the obligation comes from. */
  readonly policy: string;
  readonly version: number;
  readonly rule: number;
}

interface DecisionCommon {
  /** The version of the policy set that decided. */
  readonly setVersion: string;
  /** The `audit:` rules that matched: the decision is to be recorded in detail. */
  readonly audit: readonly RuleRef[];
  /** Rules that could not be evaluated, and why (README "Errors"). */
  readonly diagnostics: readonly PolicyEvalError[];
}

/** Allowed by `policy` rule `rule` (the first allow that counted), with no obligation. */
export interface AllowDecision extends DecisionCommon, RuleRef {
  readonly decision: 'Allow';
}

/** Allowed, provided the enforcement point meets every condition. */
export interface AllowWithConditionsDecision extends DecisionCommon, RuleRef {
  readonly decision: 'AllowWithConditions';
  readonly conditions: readonly Condition[];
}

/** Allowed once `approver` approves (and every one of `approvers`); names the approval rule. */
export interface RequireApprovalDecision extends DecisionCommon, RuleRef {
  readonly decision: 'RequireApproval';
  readonly approver: string;
  readonly approvers: readonly string[];
  /** Obligations that still hold once approved. */
  readonly conditions: readonly Condition[];
}

/** Denied; `policy`/`rule` name the deny rule or the unmet requirement, null for the default deny. */
export interface DenyDecision extends DecisionCommon {
  readonly decision: 'Deny';
  readonly reason: string;
  readonly policy: string | null;
  readonly version: number | null;
  readonly rule: number | null;
  readonly ruleText: string | null;
}

export type Decision = AllowDecision | AllowWithConditionsDecision | RequireApprovalDecision | DenyDecision;
export type DecisionKind = Decision['decision'];

/** Allow and AllowWithConditions let the action proceed; Deny and RequireApproval (not yet approved) do not. */
export function permits(decision: Decision): boolean {
  switch (decision.decision) {
    case 'Allow':
    case 'AllowWithConditions':
      return true;
    case 'Deny':
    case 'RequireApproval':
      return false;
    default: {
      const never: never = decision;
      return never;
    }
  }
}

/**
 * The decision as one JSON object, as `bulwark policy eval` prints it and the service will
 * send it: `{"decision", "reason"?, "conditions"?, "approver"?, "approvers"?, "policy",
 * "version", "rule", "ruleText", "setVersion", "audit"?, "diagnostics"?}`.
 */
export function decisionToJson(decision: Decision): Record<string, unknown> {
  const json: Record<string, unknown> = { decision: decision.decision };
  switch (decision.decision) {
    case 'Deny':
      json.reason = decision.reason;
      break;
    case 'AllowWithConditions':
      json.conditions = decision.conditions;
      break;
    case 'RequireApproval':
      json.approver = decision.approver;
      json.approvers = decision.approvers;
      if (decision.conditions.length > 0) json.conditions = decision.conditions;
      break;
    case 'Allow':
      break;
    default: {
      const never: never = decision;
      return never;
    }
  }
  json.policy = decision.policy;
  json.version = decision.version;
  json.rule = decision.rule;
  json.ruleText = decision.ruleText;
  json.setVersion = decision.setVersion;
  if (decision.audit.length > 0) json.audit = decision.audit;
  if (decision.diagnostics.length > 0) json.diagnostics = decision.diagnostics.map((d) => d.toJSON());
  return json;
}
