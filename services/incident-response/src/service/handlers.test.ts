import { Commands, type CommandSubject } from '@bulwark/bus';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../rules/load.js';
import type { SocPublisher } from '../soc/publisher.js';
import { incidentHandlers } from './handlers.js';
import { IncidentState } from './state.js';
import type { Workflow } from './workflow.js';

const rules = loadRules([{ file: 'r.yaml', text: '- rule: r\n  condition: evt.type = security.violation\n  output: "%evt.agent"\n  priority: HIGH\n' }]);

describe('the incident commands', () => {
  it('refuses a principal that is not an enrolled analyst, and records an ack by an analyst', async () => {
    const state = new IncidentState(rules);
    state.apply({ seq: 0, eventId: 'e', timestamp: 1, producer: 'svc.policy', agentId: 'agent.a', eventType: 'security.violation', details: {}, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) });
    const id = state.all()[0]!.incident.id;
    const emitted: unknown[] = [];
    const workflow = { emit: async (type: string, agent: string, details: unknown) => (emitted.push({ type, agent, details }), 'ev1') } as unknown as Workflow;
    const soc = { publish: async () => [] } as unknown as SocPublisher;
    const handlers = incidentHandlers({ state, workflow, soc, analysts: () => ['analyst.ann'] });
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
});
