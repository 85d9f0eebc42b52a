import { Commands, type CommandSubject } from '@bulwark/bus';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../rules/load.js';
import type { SocPublisher } from '../soc/publisher.js';
import { incidentHandlers } from './handlers.js';
import { IncidentState } from './state.js';
import type { Workflow } from './workflow.js';
import type { ActionPorts } from './actions.js';
import { BulwarkError } from '@bulwark/errors';

const rules = loadRules([{ file: 'r.yaml', text: '- rule: r\n  condition: evt.type = security.violation\n  output: "%evt.agent"\n  priority: HIGH\n' }]);

describe('the incident commands', () => {
  it('refuses a principal that is not an enrolled analyst, and records an ack by an analyst', async () => {
    const state = new IncidentState(rules);
    state.apply({ seq: 0, eventId: 'e', timestamp: 1, producer: 'svc.policy', agentId: 'agent.a', eventType: 'security.violation', details: {}, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) });
    const id = state.all()[0]!.incident.id;
    const emitted: unknown[] = [];
    const workflow = { emit: async (type: string, agent: string, details: unknown) => (emitted.push({ type, agent, details }), 'ev1') } as unknown as Workflow;
    const soc = { publish: async () => [] } as unknown as SocPublisher;
    const handlers = incidentHandlers({ state, workflow, soc, ports: {} as never, analysts: () => ['analyst.ann'] });
    const call = (subject: CommandSubject, peer: string, body: unknown) => handlers[subject]!({ subject, peer, sessionId: 's', body: new TextEncoder().encode(JSON.stringify(body)) });
    for (const subject of [Commands.incident.list, Commands.incident.ack, Commands.incident.resolve]) {
      await expect(call(subject, 'agent.a', { id })).rejects.toMatchObject({ code: 'E_INCIDENT_FORBIDDEN' });
      await expect(call(subject, 'analyst.eve', { id })).rejects.toMatchObject({ code: 'E_INCIDENT_FORBIDDEN' });
    }
    expect(emitted).toEqual([]);
    const list = JSON.parse(new TextDecoder().decode(await call(Commands.incident.list, 'analyst.ann', {}))) as { incidents: { id: string }[] };
    expect(list.incidents.map((i) => i.id)).toEqual([id]);
    await call(Commands.incident.ack, 'analyst.ann', { id, note: 'looking' });
    expect(emitted).toEqual([{ type: 'incident.acknowledged', agent: 'agent.a', details: { incidentId: id, by: 'analyst.ann', note: 'looking' } }]);
    expect(state.get(id)!.incident.status).toBe('acknowledged');
  });

  it('refuses a resolve of an unknown incident or with a bad plan, and changes nothing', async () => {
    const { state, id, emitted, call } = setup();
    await expect(call(Commands.incident.resolve, 'analyst.ann', { id: 'no-such-incident', plan: { policy: 'keep' } })).rejects.toMatchObject({ code: 'E_INCIDENT_UNKNOWN' });
    await expect(call(Commands.incident.resolve, 'analyst.ann', { id, plan: { policy: 'rollback', reenrol: true } })).rejects.toMatchObject({ code: 'E_INCIDENT_PLAN' });
    await expect(call(Commands.incident.resolve, 'analyst.eve', { id, plan: { policy: 'rollback' } })).rejects.toMatchObject({ code: 'E_INCIDENT_FORBIDDEN' });
    expect(emitted).toEqual([]);
    expect(state.get(id)!.incident.status).toBe('open');
  });

  it('records a failed recovery step without resolving; a later good plan resolves once', async () => {
    const { state, id, emitted, call, fail } = setup();
    fail.invite = true;
    const bad = JSON.parse(new TextDecoder().decode(await call(Commands.incident.resolve, 'analyst.ann', { id, plan: { reenroll: true, policy: 'rollback' } }))) as { status: string; recovery: { ok: boolean } };
    expect(bad).toMatchObject({ status: 'open', recovery: { ok: false } });
    expect(emitted).toEqual([{ type: 'incident.mitigated', agent: 'agent.a', details: expect.objectContaining({ action: 'recovery', outcome: 'failed', detail: 'reenroll: E_KEY_EXISTS: agent.a already has a key', by: 'analyst.ann' }) }]);
    expect(state.get(id)!.recoveryFailed?.detail).toContain('reenroll');
    fail.invite = false;
    const good = JSON.parse(new TextDecoder().decode(await call(Commands.incident.resolve, 'analyst.ann', { id, plan: { reenroll: true, policy: 'keep' } }))) as { status: string; recovery: { invitation: { join: string } } };
    expect(good.status).toBe('resolved');
    expect(good.recovery.invitation.join).toBe('bwjb1.secret');
    const resolved = emitted[1] as { type: string; details: Record<string, unknown> };
    expect(resolved.type).toBe('incident.resolved');
    expect(resolved.details).toMatchObject({ plan: { reenroll: true, policy: 'keep', health: 'not checked' }, invitation: { principal: 'agent.a', tid: 't1' }, steps: [{ step: 'reenroll', outcome: 'done' }, { step: 'policy.keep', outcome: 'done' }] });
    // The join bundle is a bearer secret: it never goes into the ledger.
    expect(JSON.stringify(resolved.details)).not.toContain('bwjb1');
    await expect(call(Commands.incident.resolve, 'analyst.ann', { id })).rejects.toMatchObject({ code: 'E_INCIDENT_RESOLVED' });
    expect(emitted).toHaveLength(2);
  });
});

function setup() {
  const state = new IncidentState(rules);
  state.apply({ seq: 0, eventId: 'e', timestamp: 1, producer: 'svc.policy', agentId: 'agent.a', eventType: 'security.violation', details: {}, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) });
  const id = state.all()[0]!.incident.id;
  const emitted: unknown[] = [];
  const fail = { invite: false };
  const workflow = { emit: async (type: string, agent: string, details: unknown) => (emitted.push({ type, agent, details }), `ev${emitted.length}`) } as unknown as Workflow;
  const soc = { publish: async () => [] } as unknown as SocPublisher;
  const ports = {
    client: {
      keys: {
        invite: async (principal: string) => {
          if (fail.invite) throw new BulwarkError('E_KEY_EXISTS', `${principal} already has a key`);
          return { principal, tid: 't1', expires: '2030-01-01T00:00:00.000Z', join: 'bwjb1.secret' };
        },
      },
    },
  } as unknown as ActionPorts;
  const handlers = incidentHandlers({ state, workflow, soc, ports, analysts: () => ['analyst.ann'] });
  const call = (subject: CommandSubject, peer: string, body: unknown) => handlers[subject]!({ subject, peer, sessionId: 's', body: new TextEncoder().encode(JSON.stringify(body)) });
  return { state, id, emitted, call, fail };
}
