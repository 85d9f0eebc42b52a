import { describe, expect, it } from 'vitest';
import { IncidentGrouper } from '../incidents/grouper.js';
import type { EventView } from '../rules/condition.js';
import { loadRules } from '../rules/load.js';
import { DetectionEngine } from './engine.js';

const rules = loadRules([
  {
    file: 'r.yaml',
    text: `
- rule: burst
  condition: evt.type = policy.decision and evt.details.decision = Deny
  correlate: { by: [evt.agent], window: 10s, count: 20 }
  output: "%count denials for %evt.agent"
  priority: HIGH
  category: policy_violation
- rule: spread
  condition: evt.type = policy.violation
  correlate: { window: 60s, distinct: evt.details.policy, count: 3 }
  output: o
  priority: MEDIUM
- rule: volume
  condition: evt.type = data.exported
  correlate: { window: 60s, sum: evt.details.bytes, count: 1000 }
  output: o
  priority: MEDIUM
- rule: seq
  condition: evt.type in (tools.rejected, tools.invoked)
  sequence: { window: 5m, steps: ["evt.type = tools.rejected", "evt.type = tools.invoked"] }
  output: o
  priority: HIGH
`,
  },
]);
let seq = 0;
const ev = (eventType: string, details: EventView['details'], at: number, agentId = 'agent.a1'): EventView => ({ seq: seq++, eventId: `e${seq}`, timestamp: at, producer: 'svc.policy', agentId, eventType, details });
const fired = (engine: DetectionEngine, e: EventView) => engine.process(e).filter((d) => d.fired).map((d) => d.rule.name);

describe('stateful detection', () => {
  it('fires a count correlation at the threshold inside the window, per key', () => {
    const engine = new DetectionEngine(rules);
    for (let i = 0; i < 19; i++) expect(fired(engine, ev('policy.decision', { decision: 'Deny' }, 1000 + i * 100))).toEqual([]);
    expect(fired(engine, ev('policy.decision', { decision: 'Deny' }, 1000, 'agent.other'))).toEqual([]);
    const d = engine.process(ev('policy.decision', { decision: 'Deny' }, 3000));
    expect(d[0]).toMatchObject({ fired: true, key: 'agent.a1' });
    expect(d[0]!.evidence).toHaveLength(20);
  });

  it('forgets matches older than the window', () => {
    const engine = new DetectionEngine(rules);
    for (let i = 0; i < 19; i++) engine.process(ev('policy.decision', { decision: 'Deny' }, i * 1000));
    // 19 denials a second apart, then one 11 s after the first: only 10 are in the window
    expect(fired(engine, ev('policy.decision', { decision: 'Deny' }, 19_500))).toEqual([]);
  });

  it('counts distinct values and sums', () => {
    const engine = new DetectionEngine(rules);
    expect(fired(engine, ev('policy.violation', { policy: 'p1' }, 0))).toEqual([]);
    expect(fired(engine, ev('policy.violation', { policy: 'p1' }, 1))).toEqual([]);
    expect(fired(engine, ev('policy.violation', { policy: 'p2' }, 2))).toEqual([]);
    expect(fired(engine, ev('policy.violation', { policy: 'p3' }, 3))).toEqual(['spread']);
    expect(fired(engine, ev('data.exported', { bytes: 600 }, 0))).toEqual([]);
    expect(fired(engine, ev('data.exported', { bytes: 'x' }, 1))).toEqual([]);
    expect(fired(engine, ev('data.exported', { bytes: 400 }, 2))).toEqual(['volume']);
  });

  it('fires a sequence only in order and within its window', () => {
    const engine = new DetectionEngine(rules);
    expect(fired(engine, ev('tools.invoked', {}, 0))).toEqual([]);
    expect(fired(engine, ev('tools.rejected', {}, 1))).toEqual([]);
    expect(fired(engine, ev('tools.invoked', {}, 2))).toEqual(['seq']);
    expect(fired(engine, ev('tools.rejected', {}, 10))).toEqual([]);
    expect(fired(engine, ev('tools.invoked', {}, 10 + 5 * 60_000 + 1))).toEqual([]);
  });
});

describe('the rule index and the windows', () => {
  it('tests a rule only against the event types its condition pins, and an unpinned rule against all', () => {
    const loaded = loadRules([
      {
        file: 'i.yaml',
        text: `
- macro: is_deny
  condition: evt.type = policy.decision and evt.details.decision = Deny
- rule: pinned
  condition: is_deny or evt.type in (policy.violation)
  output: o
  priority: LOW
- rule: negated
  condition: not evt.type = policy.decision
  output: o
  priority: LOW
`,
      },
    ]);
    expect([...loaded[0]!.eventTypes!].sort()).toEqual(['policy.decision', 'policy.violation']);
    expect(loaded[1]!.eventTypes).toBeUndefined();
    const engine = new DetectionEngine(loaded);
    expect(fired(engine, ev('policy.decision', { decision: 'Deny' }, 0))).toEqual(['pinned']);
    expect(fired(engine, ev('policy.violation', {}, 0))).toEqual(['pinned', 'negated']);
    expect(fired(engine, ev('tools.invoked', {}, 0))).toEqual(['negated']);
  });

  it('keeps distinct and sum right as events leave the window', () => {
    const engine = new DetectionEngine(rules);
    // p1 and p2 leave the window (60 s) before p3 and p4 come: two distinct, not four.
    engine.process(ev('policy.violation', { policy: 'p1' }, 0));
    engine.process(ev('policy.violation', { policy: 'p2' }, 1));
    expect(fired(engine, ev('policy.violation', { policy: 'p3' }, 70_000))).toEqual([]);
    expect(fired(engine, ev('policy.violation', { policy: 'p3' }, 70_001))).toEqual([]);
    expect(fired(engine, ev('policy.violation', { policy: 'p1' }, 70_002))).toEqual([]);
    expect(fired(engine, ev('policy.violation', { policy: 'p2' }, 70_003))).toEqual(['spread']);
    engine.process(ev('data.exported', { bytes: 900 }, 0));
    expect(fired(engine, ev('data.exported', { bytes: 200 }, 61_000))).toEqual([]);
    expect(fired(engine, ev('data.exported', { bytes: 800 }, 61_001))).toEqual(['volume']);
  });

  it('gives each detection the evidence of its own moment, through thousands of events and compactions', () => {
    const engine = new DetectionEngine(rules);
    const kept: { d: ReturnType<DetectionEngine['process']>[number]; seq: number }[] = [];
    for (let i = 0; i < 5000; i++) {
      const e = ev('policy.decision', { decision: 'Deny' }, i * 600); // 17 in any 10 s window, 20 needs < 500 ms spacing
      const d = engine.process(e)[0]!;
      if (i % 1000 === 999) kept.push({ d, seq: e.seq });
    }
    expect(kept.every(({ d }) => !d.fired)).toBe(true);
    const base = 10_000_000;
    const late: { d: ReturnType<DetectionEngine['process']>[number]; seq: number }[] = [];
    for (let i = 0; i < 6000; i++) {
      const e = ev('policy.decision', { decision: 'Deny' }, base + i * 5); // 2000 in the window: the queue evicts and compacts
      const d = engine.process(e)[0]!;
      if (i >= 19) late.push({ d, seq: e.seq });
    }
    // Read after all of them: each is the events of its own window up to its own, oldest first.
    for (const { d, seq } of [late[0]!, late[1000]!, late[3000]!, late[late.length - 1]!]) {
      expect(d.fired).toBe(true);
      expect(d.evidence.at(-1)!.seq).toBe(seq);
      expect(d.evidence.map((r) => r.seq)).toEqual(Array.from({ length: d.evidence.length }, (_, k) => seq - d.evidence.length + 1 + k));
    }
    expect(late[0]!.d.evidence).toHaveLength(20);
    expect(late.at(-1)!.d.evidence).toHaveLength(2000);
  });
});

describe('grouping into incidents', () => {
  it('makes a burst of 500 denials by one agent one incident with 500 evidence events', () => {
    const engine = new DetectionEngine(rules);
    const grouper = new IncidentGrouper();
    const opened: string[] = [];
    for (let i = 0; i < 500; i++) {
      for (const d of engine.process(ev('policy.decision', { decision: 'Deny' }, 10_000 + i * 10))) {
        const r = grouper.add(d);
        if (r?.opened === true) opened.push(r.incident.id);
      }
    }
    expect(opened).toHaveLength(1);
    const incident = grouper.get(opened[0]!)!;
    expect(incident).toMatchObject({ severity: 'high', category: 'policy_violation', rule: 'burst', agentId: 'agent.a1', affected_components: ['agent.a1'] });
    expect(incident.evidence.count).toBe(500);
    expect(incident.evidence.seqs).toHaveLength(500);
    expect(incident.description).toBe('20 denials for agent.a1');
  });

  it('opens a new incident after the old one was resolved or went quiet, with a deterministic id', () => {
    const grouper = new IncidentGrouper({ quietMs: 1000 });
    const engine = new DetectionEngine(rules);
    const ids = new Set<string>();
    for (const base of [0, 100_000]) {
      for (let i = 0; i < 20; i++) for (const d of engine.process(ev('policy.decision', { decision: 'Deny' }, base + i))) ids.add(grouper.add(d)?.incident.id ?? '');
    }
    ids.delete('');
    expect(ids.size).toBe(2);
  });
});
