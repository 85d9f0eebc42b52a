import { describe, expect, it } from 'vitest';
import { readToolVerdict, runIfPermitted, toolUseDecision } from './tool-use.js';
import type { PolicyDecision } from './policy-wire.js';

const allow = { decision: 'Allow', policy: 'p', version: 1, rule: 1, ruleText: 'allow: invoke(x)', setVersion: 'ledger-1' } as unknown as PolicyDecision;
const input = { toolId: 'search', domain: 'tools.example.com', signed: { schema: {}, signature: 'x' } };

describe('tool use', () => {
  it('an Allow from policy does not let an unverified tool through', () => {
    for (const verdict of ['SignatureInvalid', 'ToolChanged', 'UnknownProvider', 'KeyRevoked', 'PendingApproval'] as const) {
      const d = toolUseDecision(input, { verdict, valid: false, error_code: 'x' }, allow);
      expect(d).toMatchObject({ decision: 'Deny', failure: `E_TOOL_${verdict.toUpperCase()}` });
    }
  });
  it('a Trusted tool gets the policy decision, whatever it is', () => {
    expect(toolUseDecision(input, { verdict: 'Trusted', valid: true, error_code: null }, allow)).toBe(allow);
    const deny = { decision: 'Deny', reason: 'no' } as unknown as PolicyDecision;
    expect(toolUseDecision(input, { verdict: 'Trusted', valid: true, error_code: null }, deny)).toBe(deny);
  });
  it('a malformed or contradictory reply is not Trusted', () => {
    expect(readToolVerdict(null).valid).toBe(false);
    expect(readToolVerdict({ valid: true }).verdict).toBe('Unavailable');
    expect(readToolVerdict({ verdict: 'ToolChanged', valid: true }).verdict).toBe('Unavailable');
    expect(readToolVerdict({ verdict: 'Trusted', valid: true, error_code: null }).valid).toBe(true);
  });
  it('runs the tool only when the check permits, and never when it denies', async () => {
    let runs = 0;
    const run = async () => ++runs;
    const denied = await runIfPermitted(async () => toolUseDecision(input, { verdict: 'ToolChanged', valid: false, error_code: 'tool_changed' }, allow), run);
    expect(denied).toMatchObject({ ran: false, decision: { decision: 'Deny', failure: 'E_TOOL_TOOLCHANGED' } });
    const approval = { decision: 'RequireApproval', approver: 'x', approvers: ['x'] } as unknown as PolicyDecision;
    expect((await runIfPermitted(async () => approval, run)).ran).toBe(false);
    expect(runs).toBe(0);
    expect(await runIfPermitted(async () => toolUseDecision(input, { verdict: 'Trusted', valid: true, error_code: null }, allow), run)).toMatchObject({ ran: true, result: 1 });
  });
});
