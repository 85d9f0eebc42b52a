import type { LedgerEvent } from '@bulwark/events';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../rules/load.js';
import { IncidentState } from './state.js';
import { aggregate, timingStats, timingsOf } from './timing.js';

const rules = loadRules([{ file: 'r.yaml', text: '- rule: r\n  condition: evt.type = security.violation\n  output: "%evt.agent"\n  priority: HIGH\n' }]);
const ev = (seq: number, timestamp: number, producer: string, eventType: string, details: Record<string, unknown>, agentId = 'agent.a'): LedgerEvent =>
  ({ seq, eventId: `e${seq}`, timestamp, producer, agentId, eventType, details, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) }) as LedgerEvent;

/** A ledger: the trigger at 1000, opened 1050, contained 1400, acknowledged 61 050, resolved 90 000. */
function ledger(id: string): LedgerEvent[] {
  const own = 'svc.incident-response';
  return [
    ev(1, 1050, own, 'incident.opened', { incidentId: id }),
    ev(2, 1400, own, 'incident.mitigated', { incidentId: id, action: 'policy.contain', outcome: 'done', attempt: 1 }),
    ev(3, 61_050, own, 'incident.acknowledged', { incidentId: id, by: 'analyst.ann' }),
    ev(4, 90_000, own, 'incident.resolved', { incidentId: id, by: 'analyst.ann' }),
  ];
}

describe('MTTA and MTTC', () => {
  it('come from the ledger timestamps, so a replay gives the same figures', () => {
    const runOnce = () => {
      const state = new IncidentState(rules);
      state.apply(ev(0, 1000, 'svc.policy', 'security.violation', {}));
      const id = state.all()[0]!.incident.id;
      for (const e of ledger(id)) state.apply(e);
      return state;
    };
    const a = runOnce().all()[0]!;
    expect(timingsOf(a)).toEqual({
      triggerAt: new Date(1000).toISOString(),
      openedAt: new Date(1050).toISOString(),
      acknowledgedAt: new Date(61_050).toISOString(),
      containedAt: new Date(1400).toISOString(),
      resolvedAt: new Date(90_000).toISOString(),
      ttaMs: 60_000,
      ttcMs: 400,
    });
    expect(timingsOf(runOnce().all()[0]!)).toEqual(timingsOf(a));
  });

  it('counts a failed containment as not contained, and a resolve without ack as the acknowledgement', () => {
    const state = new IncidentState(rules);
    state.apply(ev(0, 1000, 'svc.policy', 'security.violation', {}));
    const id = state.all()[0]!.incident.id;
    state.apply(ev(1, 1100, 'svc.incident-response', 'incident.opened', { incidentId: id }));
    state.apply(ev(2, 1200, 'svc.incident-response', 'incident.mitigated', { incidentId: id, action: 'policy.contain', outcome: 'failed', attempt: 1 }));
    state.apply(ev(3, 5100, 'svc.incident-response', 'incident.resolved', { incidentId: id }));
    const t = timingsOf(state.all()[0]!);
    expect(t.ttaMs).toBe(4000);
    expect(t.ttcMs).toBeUndefined();
    expect(timingStats(state.all())).toEqual({ incidents: 1, mtta: { count: 1, meanMs: 4000, p50Ms: 4000 }, mttc: { count: 0, meanMs: null, p50Ms: null } });
  });

  it('aggregates the mean and the median over incidents', () => {
    expect(aggregate([400, 100, 1000, 300])).toEqual({ count: 4, meanMs: 450, p50Ms: 300 });
    expect(aggregate([])).toEqual({ count: 0, meanMs: null, p50Ms: null });
  });
});
