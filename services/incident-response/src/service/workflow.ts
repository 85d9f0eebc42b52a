/**
 * The S7.3 workflow, per incident, once the state has caught up with the ledger:
 *
 * | severity | what happens |
 * |---|---|
 * | info, low | logged: `incident.opened` in the ledger, the finding on the SOC stream |
 * | medium | also alerted: `alert.raised` |
 * | high | also contained: the agent denied by policy, its sandboxes terminated, its keys revoked, the evidence preserved (an inclusion proof against a signed checkpoint) |
 * | critical | also notified: the signed webhook |
 *
 * Every outcome is a ledger event produced by svc.incident-response: `incident.mitigated`
 * (`outcome: done | failed`, `attempt`) and, after `maxAttempts` failures, `incident.escalated`.
 * A failed action is retried with backoff, never dropped and never reported as done.
 */
import { Events, type EventPublisher, type EventSubject } from '@bulwark/bus';
import { BulwarkError, isBulwarkError } from '@bulwark/errors';
import { encodeEvent, newEvent, type EventType, type JsonObject } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import type { SecurityEvent } from '../incidents/security-event.js';
import type { Severity } from '../rules/load.js';
import type { SocPublisher } from '../soc/publisher.js';
import { notifyWebhook, type WebhookOptions } from '../soc/webhook.js';
import { containAgent, preserveEvidence, revokeKeys, terminateSandboxes, type ActionPorts } from './actions.js';
import { INCIDENT_PRINCIPAL, type ActionKind, type Change, type IncidentRecord, type IncidentState } from './state.js';

/** The actions of each severity; they run side by side (each is its own service's call and its own ledger record). */
export const PLAN: Readonly<Record<Severity, readonly ActionKind[]>> = {
  info: [],
  low: [],
  medium: ['alert'],
  high: ['policy.contain', 'evidence.preserve', 'sandbox.terminate', 'keys.revoke'],
  critical: ['policy.contain', 'evidence.preserve', 'sandbox.terminate', 'keys.revoke', 'notify'],
};

const SUBJECT: Readonly<Partial<Record<EventType, EventSubject>>> = {
  'incident.opened': Events.incident.opened,
  'incident.mitigated': Events.incident.mitigated,
  'incident.escalated': Events.incident.escalated,
  'incident.acknowledged': Events.incident.acknowledged,
  'incident.resolved': Events.incident.resolved,
  'alert.raised': Events.alert.raised,
};

export interface WorkflowOptions {
  readonly state: IncidentState;
  readonly events: EventPublisher;
  readonly soc: SocPublisher;
  readonly ports: ActionPorts;
  readonly webhook?: WebhookOptions;
  readonly logger?: Logger;
  /** Failures of one action before it is escalated (default 5). */
  readonly maxAttempts?: number;
  /** First retry delay, doubled each time (default 1000 ms). */
  readonly retryBaseMs?: number;
  /** Told when an action is done (metrics, tests). */
  readonly onAction?: (incident: SecurityEvent, action: ActionKind, detail: string) => void;
}

const describe = (e: unknown) => (isBulwarkError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e));

export class Workflow {
  readonly #o: WorkflowOptions;
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #live = false;
  #stopped = false;

  constructor(options: WorkflowOptions) {
    this.#o = options;
  }

  /** Emits one event sealed to the ledger (at `timestamp`, default now); resolves once BULWARK_EVENTS stored it. */
  async emit(eventType: EventType, agentId: string, details: JsonObject, timestamp?: number): Promise<string> {
    const subject = SUBJECT[eventType];
    if (subject === undefined) throw new BulwarkError('E_INCIDENT_EVENT', `no subject for ${eventType}`, { eventType });
    const event = newEvent({ agentId, eventType, details, ...(timestamp === undefined ? {} : { timestamp }) });
    await this.#o.events.publish({ subject, eventId: event.eventId, payload: encodeEvent(event) });
    return event.eventId;
  }

  /** After the replay: runs whatever the ledger says is still to do, then every new change. */
  goLive(): void {
    this.#live = true;
    for (const record of this.#o.state.all()) if (this.#pending(record)) this.#schedule(record);
  }

  onChanges(changes: readonly Change[]): void {
    if (!this.#live) return;
    for (const c of changes) if (c.opened || this.#pending(c.record)) this.#schedule(c.record);
  }

  /** Steps running and retries waiting: 0 once every incident's plan is done or escalated. */
  pendingWork(): number {
    return this.#running.size + this.#timers.size;
  }

  /** Waits for the work in progress (tests). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#running.values()]);
  }

  #pending(record: IncidentRecord): boolean {
    if (record.incident.status === 'resolved') return false;
    if (!record.published) return true;
    return PLAN[record.incident.severity].some((a) => record.actions.get(a)?.outcome !== 'done' && record.actions.get(a)?.outcome !== 'escalated');
  }

  #schedule(record: IncidentRecord): void {
    if (this.#stopped) return;
    const id = record.incident.id;
    if (this.#running.has(id)) {
      this.#again.add(id);
      return;
    }
    const run = this.#run(record)
      .catch((e: unknown) => {
        // The ledger did not take the record of a step (its stream is down or full): try again later.
        this.#o.logger?.error({ incident: id, err: describe(e) }, 'incident workflow step failed; retried');
        this.#retryLater(record, 2);
      })
      .finally(() => {
        this.#running.delete(id);
        if (this.#again.delete(id) && this.#pending(record)) this.#schedule(record);
      });
    this.#running.set(id, run);
  }

  #retryLater(record: IncidentRecord, attempts: number): void {
    if (this.#stopped) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#schedule(record);
    }, (this.#o.retryBaseMs ?? 1000) * 2 ** Math.min(attempts - 1, 6));
    t.unref();
    this.#timers.add(t);
  }

  async #run(record: IncidentRecord): Promise<void> {
    const plan = PLAN[record.incident.severity].filter((a) => {
      const r = record.actions.get(a);
      return r === undefined || r.outcome === 'failed';
    });
    // The opening and the actions side by side: they touch different services, so containment takes
    // the slowest action's time, not the sum, and none waits for the SOC stream (a SOC stream that is
    // down delays the finding, never the containment). The sandbox sweep is done once the deny policy
    // had its attempt (it sweeps again then), so the agent cannot keep a sandbox scheduled meanwhile.
    const contain = plan.includes('policy.contain') ? this.#act(record, 'policy.contain') : undefined;
    const denyInForce = Promise.resolve(contain).catch(() => undefined);
    const results = await Promise.allSettled([
      record.published ? undefined : this.#open(record),
      contain,
      ...plan.filter((a) => a !== 'policy.contain').map((a) => this.#act(record, a, denyInForce)),
    ]);
    // Every step ended before the run does (a second run never overlaps a step still going); a record the ledger did not take fails the run.
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** The finding on the SOC stream, then `incident.opened` in the ledger; retried later if either fails. */
  async #open(record: IncidentRecord): Promise<void> {
    const incident = record.incident;
    try {
      await this.#o.soc.publish(incident, 'create', 0);
      await this.emit('incident.opened', incident.agentId ?? INCIDENT_PRINCIPAL, openedDetails(incident));
    } catch (e) {
      this.#o.logger?.error({ incident: incident.id, err: describe(e) }, 'incident not opened yet (SOC stream or ledger unavailable): retried');
      this.#retryLater(record, 1);
      return;
    }
    record.published = true;
    this.#o.logger?.info({ incident: incident.id, severity: incident.severity, category: incident.category, rule: incident.rule, agent: incident.agentId }, incident.description);
  }

  /** `denyInForce`: settles once the containment policy had its attempt (this run's, or done before). */
  async #act(record: IncidentRecord, action: ActionKind, denyInForce: Promise<unknown> = Promise.resolve()): Promise<void> {
    const incident = record.incident;
    const agentId = incident.agentId;
    const subjectOf = agentId ?? INCIDENT_PRINCIPAL;
    const attempt = (record.actions.get(action)?.attempts ?? 0) + 1;
    const startedAt = Date.now();
    let detail: string;
    const extra: JsonObject = {};
    try {
      switch (action) {
        case 'alert':
          await this.emit('alert.raised', subjectOf, { kind: 'incident', incidentId: incident.id, severity: incident.severity, category: incident.category, description: incident.description });
          detail = 'alert raised';
          break;
        case 'policy.contain':
          if (agentId === undefined || !agentId.startsWith('agent.')) throw new BulwarkError('E_INCIDENT_CONTAIN', `incident key ${incident.key} is not an agent: nothing to contain by policy`, {});
          detail = await containAgent(this.#o.ports, agentId);
          Object.assign(extra, { triggerSeq: incident.evidence.lastSeq, detectedAfterMs: startedAt - incident.evidence.lastAt, containedAt: Date.now() });
          break;
        case 'evidence.preserve': {
          const p = await preserveEvidence(this.#o.ports, incident);
          detail = p.detail;
          Object.assign(extra, { evidenceSeqs: incident.evidence.seqs.slice(0, 2000), evidenceCount: incident.evidence.count, inclusion: p.proof });
          break;
        }
        case 'sandbox.terminate':
          if (agentId === undefined) throw new BulwarkError('E_INCIDENT_CONTAIN', 'no agent to terminate', {});
          detail = await terminateSandboxes(this.#o.ports, agentId, denyInForce);
          break;
        case 'keys.revoke':
          if (agentId === undefined) throw new BulwarkError('E_INCIDENT_CONTAIN', 'no agent whose keys to revoke', {});
          detail = await revokeKeys(this.#o.ports, agentId);
          break;
        case 'notify':
          if (this.#o.webhook === undefined) throw new BulwarkError('E_INCIDENT_WEBHOOK', 'no webhook configured (BULWARK_INCIDENT_WEBHOOK_URL): Critical incidents cannot notify', {});
          detail = await notifyWebhook(this.#o.webhook, { incident: openedDetails(incident) });
          break;
        default: {
          const never: never = action;
          throw new Error(`unknown action ${String(never)}`);
        }
      }
    } catch (e) {
      const why = describe(e);
      const max = this.#o.maxAttempts ?? 5;
      if (attempt >= max) {
        await this.emit('incident.escalated', subjectOf, { incidentId: incident.id, action, attempts: attempt, detail: why });
        record.actions.set(action, { action, outcome: 'escalated', attempts: attempt, detail: why });
        this.#o.logger?.error({ incident: incident.id, action, attempts: attempt, err: why }, 'incident action escalated: it failed every attempt');
      } else {
        await this.emit('incident.mitigated', subjectOf, { incidentId: incident.id, action, outcome: 'failed', attempt, detail: why });
        record.actions.set(action, { action, outcome: 'failed', attempts: attempt, detail: why });
        this.#o.logger?.warn({ incident: incident.id, action, attempt, err: why }, 'incident action failed; retried');
        this.#retryLater(record, attempt);
      }
      return;
    }
    await this.emit('incident.mitigated', subjectOf, { incidentId: incident.id, action, outcome: 'done', attempt, detail, ...extra });
    record.actions.set(action, { action, outcome: 'done', attempts: attempt, detail });
    this.#o.onAction?.(incident, action, detail);
  }
}

export function openedDetails(incident: SecurityEvent): JsonObject {
  return {
    incidentId: incident.id,
    rule: incident.rule,
    severity: incident.severity,
    category: incident.category,
    key: incident.key,
    ...(incident.agentId === undefined ? {} : { agentId: incident.agentId }),
    description: incident.description,
    evidenceCount: incident.evidence.count,
    firstSeq: incident.evidence.firstSeq,
    lastSeq: incident.evidence.lastSeq,
    evidenceSeqs: incident.evidence.seqs.slice(0, 2000),
  };
}
