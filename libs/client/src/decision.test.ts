import { describe, expect, it } from 'vitest';
import { failureDeny, permits, readDecision } from './decision.js';
import { messageRoutingRequest, toolInvocationRequest } from './enforcement.js';

const rule = { policy: 'p', version: 1, rule: 2, ruleText: 'allow read(x)', setVersion: 'ledger-4' };

describe('readDecision', () => {
  it('accepts the four well-formed decisions', () => {
    for (const d of [
      { decision: 'Allow', ...rule },
      { decision: 'AllowWithConditions', ...rule, conditions: [{ name: 'trail', value: 'd', policy: 'p', version: 1, rule: 3 }] },
      { decision: 'RequireApproval', ...rule, approver: 'ciso', approvers: ['ciso'] },
      { decision: 'Deny', reason: 'no', policy: null, version: null, rule: null, ruleText: null, setVersion: 'ledger-4' },
    ]) {
      expect(readDecision(d)).toBe(d);
    }
  });

  it('names what is wrong with anything else, so the caller denies', () => {
    for (const bad of [null, [], 'Allow', { decision: 'Allow' }, { decision: 'Allow', setVersion: 'v' }, { decision: 'Deny', setVersion: 'v' }, { decision: 'Allow ', ...rule }, { decision: 'AllowWithConditions', ...rule }, { decision: 'RequireApproval', ...rule, approvers: [] }]) {
      expect(typeof readDecision(bad)).toBe('string');
    }
  });

  it('permits only Allow and AllowWithConditions; a failure deny never permits', () => {
    expect(permits({ decision: 'Allow', ...rule })).toBe(true);
    expect(permits({ decision: 'RequireApproval', ...rule, approver: 'a', approvers: ['a'] })).toBe(false);
    expect(failureDeny('E_BUS_TIMEOUT', 'late')).toMatchObject({ decision: 'Deny', failure: 'E_BUS_TIMEOUT', setVersion: null });
  });
});

describe('enforcement requests', () => {
  it('puts the enforcement class first and the routing facts in the context', () => {
    expect(messageRoutingRequest({ from: 'agent.a', to: 'agent.b', messageType: 'task', classes: ['bulk', 'message_routing'], context: { x: 1 } })).toEqual({
      action: 'route',
      resource: 'task',
      classes: ['message_routing', 'bulk'],
      context: { x: 1, message: { from: 'agent.a', to: 'agent.b', type: 'task' } },
    });
    expect(toolInvocationRequest({ tool: 'web_search' })).toEqual({ action: 'invoke', resource: 'web_search', classes: ['tool_invocation'], context: {} });
  });
});
