// `npm run bench -- incidents [events]`: events/s through the shipped detectors (rule matching,
// correlation windows, grouping into incidents) against a bare pass over the same events (the
// event turned into what a detector sees and its type read), in one process, one core. Prints one
// JSON object per figure; the ratio's target is >= 0.5 (issue 15).
import { readFileSync } from 'node:fs';
import { DEFAULT_RULES_FILE, DetectionEngine, IncidentGrouper, loadRules, type EventView } from '@bulwark/incident-response';

const N = Number(process.argv[2] ?? 200_000);
const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
const TYPES = ['policy.decision', 'policy.decision', 'policy.decision', 'policy.violation', 'tools.invoked', 'message.sent', 'bus.rejected', 'sandbox.started'];
const events: EventView[] = Array.from({ length: N }, (_, i) => {
  const eventType = TYPES[i % TYPES.length]!;
  const deny = i % 7 === 0;
  return {
    seq: i,
    eventId: `e${i}`,
    timestamp: 1_700_000_000_000 + i * 2,
    producer: eventType.startsWith('policy.') ? 'svc.policy' : 'agent.a' + (i % 100),
    agentId: `agent.a${i % 100}`,
    eventType,
    details: { decision: deny ? 'Deny' : 'Allow', policy: `p${i % 5}`, rule: 1, reason: 'r', claimed_sender: `agent.a${i % 100}` },
  };
});

function bare(): number {
  let n = 0;
  for (const e of events) if (e.eventType.length > 0 && e.agentId !== '') n++;
  return n;
}
function detect(): number {
  const engine = new DetectionEngine(rules);
  const grouper = new IncidentGrouper();
  let n = 0;
  for (const e of events) for (const d of engine.process(e)) if (grouper.add(d) !== undefined) n++;
  return n;
}
const rate = (fn: () => number) => {
  fn(); // warm up
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    fn();
    runs.push(N / ((performance.now() - t) / 1000));
  }
  return runs.sort((a, b) => a - b)[2]!;
};
const bareRate = rate(bare);
const detectRate = rate(detect);
console.log(JSON.stringify({ bench: 'incidents.bare', events: N, eventsPerSecond: Math.round(bareRate) }));
console.log(JSON.stringify({ bench: 'incidents.detectors', events: N, rules: rules.length, eventsPerSecond: Math.round(detectRate) }));
console.log(JSON.stringify({ bench: 'incidents.ratio', value: Number((detectRate / bareRate).toFixed(4)), target: 0.5 }));
