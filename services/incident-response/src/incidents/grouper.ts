/**
 * Deduplicates and groups detections into incidents (S7.2): one open incident per rule and
 * key; every later match of that rule for that key is more evidence, not another incident,
 * until the incident is resolved or has been quiet for `quietMs`. A burst of 500 violations by
 * one agent is one incident with 500 evidence events.
 */
import type { Detection } from '../detect/engine.js';
import { renderOutput } from './output.js';
import { incidentIdOf, MAX_EVIDENCE_SEQS, type SecurityEvent } from './security-event.js';

export interface GroupResult {
  readonly incident: SecurityEvent;
  /** True when this detection opened it. */
  readonly opened: boolean;
}

export interface GrouperOptions {
  /** A quiet incident stops absorbing evidence after this long (event time); default 15 min. */
  readonly quietMs?: number;
}

export class IncidentGrouper {
  /** Rule name → key → its latest incident. */
  readonly #open = new Map<string, Map<string, SecurityEvent>>();
  readonly #byId = new Map<string, SecurityEvent>();
  readonly #quietMs: number;

  constructor(options: GrouperOptions = {}) {
    this.#quietMs = options.quietMs ?? 15 * 60_000;
  }

  /** The incident a detection belongs to, or undefined when a correlated rule has not fired and no incident is open. */
  add(d: Detection): GroupResult | undefined {
    let byKey = this.#open.get(d.rule.name);
    if (byKey === undefined) this.#open.set(d.rule.name, (byKey = new Map()));
    const open = byKey.get(d.key);
    if (open !== undefined && open.status !== 'resolved' && d.event.timestamp - open.evidence.lastAt <= this.#quietMs) {
      addEvidence(open, d.event.seq, d.event.timestamp);
      return { incident: open, opened: false };
    }
    if (!d.fired) return undefined;
    const first = d.evidence[0]!;
    const agentId = /^(agent|svc|analyst)\./.test(d.key) ? d.key : undefined;
    const incident: SecurityEvent = {
      id: incidentIdOf(d.rule.name, d.key, first.seq),
      timestamp: new Date(first.timestamp).toISOString(),
      severity: d.rule.severity,
      category: d.rule.category,
      description: renderOutput(d.rule.output, d.event, d.evidence.length),
      affected_components: agentId === undefined ? [] : [agentId],
      recommended_actions: [...d.rule.recommended],
      rule: d.rule.name,
      key: d.key,
      agentId,
      status: 'open',
      evidence: { seqs: [], count: 0, firstSeq: first.seq, lastSeq: first.seq, firstAt: first.timestamp, lastAt: first.timestamp },
    };
    for (const ref of d.evidence) addEvidence(incident, ref.seq, ref.timestamp);
    byKey.set(d.key, incident);
    this.#byId.set(incident.id, incident);
    return { incident, opened: true };
  }

  get(id: string): SecurityEvent | undefined {
    return this.#byId.get(id);
  }

  all(): SecurityEvent[] {
    return [...this.#byId.values()];
  }
}

function addEvidence(incident: SecurityEvent, seq: number, at: number): void {
  const e = incident.evidence;
  // Ledger order makes seqs ascending: only a replayed one needs the search.
  if (e.count > 0 && seq <= e.lastSeq && e.seqs.includes(seq)) return;
  e.count++;
  if (e.seqs.length < MAX_EVIDENCE_SEQS) e.seqs.push(seq);
  e.lastSeq = Math.max(e.lastSeq, seq);
  e.firstSeq = Math.min(e.firstSeq, seq);
  e.lastAt = Math.max(e.lastAt, at);
  e.firstAt = Math.min(e.firstAt, at);
}
