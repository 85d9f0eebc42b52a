// `npm run bench -- incidents [events]`: events/s through the shipped detectors (rule matching,
// correlation windows, grouping into incidents), in one process, one core, with two baselines
// from the same run over the same events:
// - raw:ledger-decode: the events as the incident service receives them, ledger batches of 100
//   (the protobuf the reader opens; signatures not verified here, which would cost far more),
//   decoded and each event's type read. `bulwark` is the same decode plus the detectors: the
//   ratio bulwark / raw:ledger-decode (target >= 0.5, issue 15) is the share of the service's
//   event path left once the detectors run.
// - raw:loop: a loop over the decoded events reading two fields; `bulwark:in-memory` is the
//   detectors over the same decoded events. Their ratio is printed too: no detector can come
//   near a loop that only reads a field, so it says how far from "free" the detectors are.
// Prints one JSON object per figure (test/bench/README.md).
import { readFileSync } from 'node:fs';
import { DEFAULT_RULES_FILE, DetectionEngine, IncidentGrouper, loadRules } from '@bulwark/incident-response';
import { decodeLedgerBatch, encodeEventBatch, newEvent, type EventType, type LedgerEvent } from '@bulwark/events';

const N = Number(process.argv[2] ?? 50_000);
const BATCH = 100;
const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
const TYPES: EventType[] = ['policy.decision', 'policy.decision', 'policy.decision', 'policy.violation', 'tools.invoked', 'message.sent', 'bus.rejected', 'sandbox.started'];
const hash = new Uint8Array(32).fill(1);
const signature = new Uint8Array(64).fill(2);
const source: LedgerEvent[] = Array.from({ length: N }, (_, i) => {
  const eventType = TYPES[i % TYPES.length]!;
  const deny = i % 7 === 0;
  const event = newEvent({
    timestamp: 1_700_000_000_000 + i * 2,
    agentId: `agent.a${i % 100}`,
    eventType,
    details: { decision: deny ? 'Deny' : 'Allow', policy: `p${i % 5}`, rule: 1, reason: 'r', claimed_sender: `agent.a${i % 100}` },
  });
  return { ...event, seq: i, producer: eventType.startsWith('policy.') ? 'svc.policy' : `agent.a${i % 100}`, previousHash: hash, eventHash: hash, signature };
});
const batches: Uint8Array[] = [];
for (let i = 0; i < N; i += BATCH) batches.push(encodeEventBatch(source.slice(i, i + BATCH)));
const events = batches.flatMap((b) => decodeLedgerBatch(b).events);

function loop(): number {
  let n = 0;
  for (const e of events) if (e.eventType.length > 0 && e.agentId !== '') n++;
  return n;
}
function decode(): number {
  let n = 0;
  for (const b of batches) for (const e of decodeLedgerBatch(b).events) if (e.eventType.length > 0) n++;
  return n;
}
function detectInMemory(): number {
  const engine = new DetectionEngine(rules);
  const grouper = new IncidentGrouper();
  let n = 0;
  for (const e of events) for (const d of engine.process(e)) if (grouper.add(d) !== undefined) n++;
  return n;
}
function decodeAndDetect(): number {
  const engine = new DetectionEngine(rules);
  const grouper = new IncidentGrouper();
  let n = 0;
  for (const b of batches) for (const e of decodeLedgerBatch(b).events) for (const d of engine.process(e)) if (grouper.add(d) !== undefined) n++;
  return n;
}

/** The best of 7 timed runs after a warm-up, in events/s: on a shared machine the best run is the one least slowed by others. */
const rate = (fn: () => number) => {
  fn();
  let best = 0;
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    fn();
    best = Math.max(best, N / ((performance.now() - t) / 1000));
  }
  return best;
};
// Interleaved, so a change of machine load hits both sides of each ratio alike.
const decodeRate = rate(decode);
const detectRate = rate(decodeAndDetect);
const loopRate = rate(loop);
const inMemoryRate = rate(detectInMemory);
const figure = (name: string, impl: string, value: number, extra: object = {}) =>
  console.log(JSON.stringify({ bench: 'incidents', figure: name, impl, value: Math.round(value), unit: 'events/s', events: N, ...extra }));
figure('detect.ledger', 'raw:ledger-decode', decodeRate, { batch: BATCH });
figure('detect.ledger', 'bulwark', detectRate, { batch: BATCH, rules: rules.length });
figure('detect.in-memory', 'raw:loop', loopRate);
figure('detect.in-memory', 'bulwark:in-memory', inMemoryRate, { rules: rules.length });
console.log(JSON.stringify({ bench: 'incidents', figure: 'ratio.ledger', value: Number((detectRate / decodeRate).toFixed(4)), unit: 'ratio', target: 0.5 }));
console.log(JSON.stringify({ bench: 'incidents', figure: 'ratio.in-memory', value: Number((inMemoryRate / loopRate).toFixed(4)), unit: 'ratio' }));
