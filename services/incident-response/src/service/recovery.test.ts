import { describe, expect, it } from 'vitest';
import { containAgent, containmentPolicyName, type ActionPorts } from './actions.js';
import { parsePlan, runRecovery } from './recovery.js';
import type { IncidentRecord } from './state.js';

const record = (agentId: string | undefined): IncidentRecord =>
  ({ incident: { id: 'i1', key: agentId ?? 'host-1', ...(agentId === undefined ? {} : { agentId }) }, published: true, actions: new Map(), times: { triggerAt: 0 } }) as unknown as IncidentRecord;

const healthy = { ready: true, services: [{ name: 'policy', ready: true, reason: '' }] };

/** A policy service and key manager that record what they were asked. */
function ports(o: { inviteFails?: boolean; rules?: number } = {}) {
  const calls: string[] = [];
  const p = {
    client: {
      keys: {
        invite: async (principal: string) => {
          calls.push(`invite ${principal}`);
          if (o.inviteFails === true) throw Object.assign(new Error('agent.a already has a key'), { code: 'E_KEY_EXISTS' });
          return { principal, tid: 't1', expires: '2030-01-01T00:00:00.000Z', join: 'bwjb1.secret' };
        },
      },
      policyAdmin: {
        list: async () => ({ setVersion: 's', policies: [{ name: containmentPolicyName('agent.a'), activeVersion: 1, versions: [1], file: 'f', rules: o.rules ?? 1 }] }),
        update: async (text: string) => (calls.push(`update ${text.includes('{\n}') ? 'released' : text.includes('deny: any') ? 'contained' : 'other'}`), { name: 'n', version: 2, eventId: 'e', applied: true, setVersion: 's2' }),
      },
    },
  };
  return { ports: p as unknown as ActionPorts, calls };
}

describe('recovery plans', () => {
  it('refuses a bad plan before anything runs, with what is wrong', () => {
    const r = record('agent.a');
    for (const [plan, why] of [
      [[], 'plan must be an object'],
      [{ reenrol: true }, 'unknown field(s) reenrol'],
      [{ reenroll: 'yes' }, 'reenroll must be a boolean'],
      [{ policy: 'drop' }, 'policy must be keep or rollback'],
      [{ health: { ready: true, services: [{ name: 'policy', ready: false, reason: 'down' }] } }, 'health.ready disagrees'],
      [{ health: { ready: true, services: [] } }, '1-32 services'],
    ] as const) {
      expect(() => parsePlan(plan, r)).toThrow(expect.objectContaining({ code: 'E_INCIDENT_PLAN', message: expect.stringContaining(why) }));
    }
    expect(() => parsePlan({ reenroll: true }, record(undefined))).toThrow(/names no agent/);
    expect(parsePlan(undefined, r)).toEqual({ reenroll: false, policy: 'keep' });
  });

  it('runs health, reenroll, then the policy step; the invitation comes back whole', async () => {
    const { ports: p, calls } = ports();
    const result = await runRecovery(p, record('agent.a'), parsePlan({ reenroll: true, policy: 'rollback', health: healthy }, record('agent.a')), 'analyst.ann');
    expect(result.ok).toBe(true);
    expect(result.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['health:done', 'reenroll:done', 'policy.rollback:done']);
    expect(calls).toEqual(['invite agent.a', 'update released']);
    expect(result.invitation).toEqual({ principal: 'agent.a', tid: 't1', expires: '2030-01-01T00:00:00.000Z', join: 'bwjb1.secret' });
  });

  it('stops at the first failed step: a refused invitation leaves the agent contained', async () => {
    const { ports: p, calls } = ports({ inviteFails: true });
    const result = await runRecovery(p, record('agent.a'), parsePlan({ reenroll: true, policy: 'rollback' }, record('agent.a')), 'analyst.ann');
    expect(result.ok).toBe(false);
    expect(result.steps).toEqual([
      { step: 'reenroll', outcome: 'failed', detail: 'agent.a already has a key' },
      { step: 'policy.rollback', outcome: 'skipped', detail: 'an earlier step failed' },
    ]);
    expect(calls).toEqual(['invite agent.a']);
  });

  it('fails the health step on a service reported not ready, and runs nothing after it', async () => {
    const { ports: p, calls } = ports();
    const health = { ready: false, services: [{ name: 'policy', ready: true, reason: '' }, { name: 'key-manager', ready: false, reason: 'no instance answers' }] };
    const result = await runRecovery(p, record('agent.a'), parsePlan({ policy: 'rollback', health }, record('agent.a')), 'analyst.ann');
    expect(result.steps[0]).toMatchObject({ step: 'health', outcome: 'failed', detail: expect.stringContaining('key-manager (no instance answers)') });
    expect(result.steps[1]).toMatchObject({ step: 'policy.rollback', outcome: 'skipped' });
    expect(calls).toEqual([]);
  });

  it('rolls back nothing twice: a released policy is left as it is', async () => {
    const { ports: p, calls } = ports({ rules: 0 });
    const result = await runRecovery(p, record('agent.a'), { reenroll: false, policy: 'rollback' }, 'analyst.ann');
    expect(result.steps[0]).toMatchObject({ outcome: 'done', detail: expect.stringContaining('already released') });
    expect(calls).toEqual([]);
  });

  it('contains a released agent again: a later incident updates the released policy back to the deny', async () => {
    const { ports: p, calls } = ports({ rules: 0 });
    expect(await containAgent(p, 'agent.a')).toContain('in force');
    expect(calls).toEqual(['update contained']);
    const { ports: held, calls: none } = ports({ rules: 1 });
    expect(await containAgent(held, 'agent.a')).toContain('already in force');
    expect(none).toEqual([]);
  });
});
