/**
 * The incidents as the ledger has them. Every verified ledger event goes through the detectors
 * (deterministic: windows run on the events' own timestamps), and the service's own
 * `incident.*` events say what was already done: published, each action's outcome, acknowledged,
 * resolved. A restart replays the ledger and ends in the same state, so it neither loses an
 * action (one not recorded as done is still pending) nor repeats one (one recorded is not run).
 */
import type { JsonObject, JsonValue, LedgerEvent } from '@bulwark/events';
import { DetectionEngine } from '../detect/engine.js';
import { IncidentGrouper } from '../incidents/grouper.js';
import type { SecurityEvent } from '../incidents/security-event.js';
import type { Rule, Severity } from '../rules/load.js';

export const INCIDENT_PRINCIPAL = 'svc.incident-response';

export type ActionKind = 'alert' | 'policy.contain' | 'evidence.preserve' | 'sandbox.terminate' | 'keys.revoke' | 'notify';

export interface ActionRecord {
  readonly action: ActionKind;
  outcome: 'done' | 'failed' | 'escalated';
  attempts: number;
  detail: string;
}

/**
 * When things happened, in ms, each the timestamp of a ledger event (so a replay gives the same
 * figures): the detection's trigger (the event that opened the incident), the service's own
 * `incident.opened`, the first `incident.acknowledged` (or `incident.resolved`, which
 * acknowledges too), `policy.contain` done, `incident.resolved`.
 */
export interface IncidentTimes {
  readonly triggerAt: number;
  openedAt?: number;
  acknowledgedAt?: number;
  containedAt?: number;
  resolvedAt?: number;
}

/** The last recovery attempt that failed (`incident.mitigated {action: recovery, outcome: failed}`): the incident stays unresolved. */
export interface RecoveryFailure {
  readonly at: number;
  readonly by: string;
  readonly detail: string;
}

export interface IncidentRecord {
  readonly incident: SecurityEvent;
  /** incident.opened is in the ledger. */
  published: boolean;
  readonly actions: Map<ActionKind, ActionRecord>;
  readonly times: IncidentTimes;
  recoveryFailed?: RecoveryFailure;
}

/** What one applied event changed, for the workflow. */
export interface Change {
  readonly record: IncidentRecord;
  readonly opened: boolean;
}

export class IncidentState {
  readonly engine: DetectionEngine;
  readonly #grouper = new IncidentGrouper();
  readonly #records = new Map<string, IncidentRecord>();
  #applied = 0;
  #lastSeq = -1;

  constructor(rules: readonly Rule[]) {
    this.engine = new DetectionEngine(rules);
  }

  get applied(): number {
    return this.#applied;
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  get(id: string): IncidentRecord | undefined {
    return this.#records.get(id);
  }

  all(): IncidentRecord[] {
    return [...this.#records.values()];
  }

  /** Applies one verified event in ledger order. */
  apply(event: LedgerEvent): Change[] {
    this.#applied++;
    this.#lastSeq = event.seq;
    if (event.producer === INCIDENT_PRINCIPAL && event.eventType.startsWith('incident.')) {
      this.#own(event);
      return [];
    }
    // The service's own reports (alerts it raised) are not evidence of anything.
    if (event.producer === INCIDENT_PRINCIPAL) return [];
    // A verified ledger event has the fields a detector sees: it is passed as it is, not copied.
    const changes: Change[] = [];
    for (const d of this.engine.process(event)) {
      const r = this.#grouper.add(d);
      if (r === undefined) continue;
      let record = this.#records.get(r.incident.id);
      if (record === undefined) {
        record = { incident: r.incident, published: false, actions: new Map(), times: { triggerAt: event.timestamp } };
        this.#records.set(r.incident.id, record);
      }
      changes.push({ record, opened: r.opened });
    }
    return changes;
  }

  #own(event: LedgerEvent): void {
    const d = event.details as JsonObject;
    const id = typeof d['incidentId'] === 'string' ? d['incidentId'] : undefined;
    if (id === undefined) return;
    let record = this.#records.get(id);
    if (record === undefined) {
      // Opened under rules that no longer raise it: keep it from its own event.
      if (event.eventType !== 'incident.opened') return;
      record = { incident: incidentFromDetails(id, d, event.timestamp), published: true, actions: new Map(), times: { triggerAt: event.timestamp } };
      this.#records.set(id, record);
    }
    switch (event.eventType) {
      case 'incident.opened':
        record.published = true;
        record.times.openedAt ??= event.timestamp;
        return;
      case 'incident.mitigated':
      case 'incident.escalated': {
        if (d['action'] === 'recovery') {
          record.recoveryFailed = { at: event.timestamp, by: typeof d['by'] === 'string' ? d['by'] : '?', detail: typeof d['detail'] === 'string' ? d['detail'] : '' };
          return;
        }
        const action = d['action'] as ActionKind;
        const outcome = event.eventType === 'incident.escalated' ? 'escalated' : d['outcome'] === 'done' ? 'done' : 'failed';
        const attempts = typeof d['attempt'] === 'number' ? d['attempt'] : typeof d['attempts'] === 'number' ? d['attempts'] : 1;
        // Before the check below: the workflow marks its own action done before the record comes back.
        if (action === 'policy.contain' && outcome === 'done') record.times.containedAt ??= event.timestamp;
        const prev = record.actions.get(action);
        // Done and escalated are final; a late failure report does not reopen them.
        if (prev !== undefined && prev.outcome !== 'failed') return;
        record.actions.set(action, { action, outcome, attempts, detail: typeof d['detail'] === 'string' ? d['detail'] : '' });
        return;
      }
      case 'incident.acknowledged':
        if (record.incident.status === 'open') record.incident.status = 'acknowledged';
        record.times.acknowledgedAt ??= event.timestamp;
        return;
      case 'incident.resolved':
        record.incident.status = 'resolved';
        record.times.acknowledgedAt ??= event.timestamp;
        record.times.resolvedAt ??= event.timestamp;
        delete record.recoveryFailed;
        return;
      default:
        return;
    }
  }
}

function incidentFromDetails(id: string, d: JsonObject, at: number): SecurityEvent {
  const text = (k: string, dflt: string) => (typeof d[k] === 'string' ? (d[k] as string) : dflt);
  const num = (k: string) => (typeof d[k] === 'number' ? (d[k] as number) : 0);
  const agentId = typeof d['agentId'] === 'string' ? d['agentId'] : undefined;
  const seqs = Array.isArray(d['evidenceSeqs']) ? (d['evidenceSeqs'] as JsonValue[]).filter((x): x is number => typeof x === 'number') : [];
  return {
    id,
    timestamp: new Date(at).toISOString(),
    severity: text('severity', 'medium') as Severity,
    category: text('category', 'anomalous_behavior'),
    description: text('description', ''),
    affected_components: agentId === undefined ? [] : [agentId],
    recommended_actions: [],
    rule: text('rule', '?'),
    key: text('key', ''),
    agentId,
    status: 'open',
    evidence: { seqs, count: num('evidenceCount'), firstSeq: num('firstSeq'), lastSeq: num('lastSeq'), firstAt: at, lastAt: at },
  };
}
