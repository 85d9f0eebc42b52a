import type { DenyDecision, PolicyDecision } from './policy-wire.js';

/** Allow and AllowWithConditions let the action proceed; Deny and RequireApproval (not yet approved) do not. */
export function permits(decision: PolicyDecision): boolean {
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

/** The deny an enforcement point returns when it got no usable decision (fail secure). */
export function failureDeny(failure: string, reason: string): DenyDecision {
  return { decision: 'Deny', reason, failure, policy: null, version: null, rule: null, ruleText: null, setVersion: null };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isRuleRef = (v: Record<string, unknown>) =>
  typeof v['policy'] === 'string' && Number.isSafeInteger(v['version']) && Number.isSafeInteger(v['rule']) && typeof v['ruleText'] === 'string';
const isConditions = (v: unknown) => Array.isArray(v) && v.every((c) => isObject(c) && typeof c['name'] === 'string');

/**
 * A decision from the service's reply, or the reason it is not one. Checked strictly: the
 * caller turns anything unexpected into a deny, so a reply never allows by accident.
 */
export function readDecision(value: unknown): PolicyDecision | string {
  if (!isObject(value)) return 'the reply is not a JSON object';
  if (typeof value['setVersion'] !== 'string') return 'the reply has no setVersion';
  switch (value['decision']) {
    case 'Allow':
      return isRuleRef(value) ? (value as unknown as PolicyDecision) : 'an Allow without its rule';
    case 'AllowWithConditions':
      return isRuleRef(value) && isConditions(value['conditions']) ? (value as unknown as PolicyDecision) : 'an AllowWithConditions without its rule or conditions';
    case 'RequireApproval':
      return isRuleRef(value) && typeof value['approver'] === 'string' && Array.isArray(value['approvers'])
        ? (value as unknown as PolicyDecision)
        : 'a RequireApproval without its rule or approver';
    case 'Deny':
      return typeof value['reason'] === 'string' ? (value as unknown as PolicyDecision) : 'a Deny without a reason';
    default:
      return `unknown decision ${JSON.stringify(String(value['decision'])).slice(0, 40)}`;
  }
}
