/**
 * `bulwark.incident.{list,ack,resolve}` over encrypted sessions (DESIGN §2). Only enrolled
 * analysts may call them: the peer is the session's authenticated principal. Acknowledging and
 * resolving are ledger events (`incident.acknowledged`, `incident.resolved`, with `by` = the
 * analyst, a claim this service vouches for having authenticated). A resolve runs its recovery
 * plan first (recovery.ts); a failed step leaves the incident unresolved and is recorded
 * (`incident.mitigated {action: recovery, outcome: failed}`).
 */
import { Commands, type CommandHandler, type CommandSubject } from '@bulwark/bus';
import { BulwarkError, InputError } from '@bulwark/errors';
import type { JsonObject, JsonValue } from '@bulwark/events';
import type { SocPublisher } from '../soc/publisher.js';
import { SEVERITY_RANK } from '../incidents/security-event.js';
import type { ActionPorts } from './actions.js';
import { exportFindings, parseExportQuery } from './export.js';
import { parsePlan, planDetails, runRecovery } from './recovery.js';
import { INCIDENT_PRINCIPAL, type IncidentRecord, type IncidentState, type RecoveryFailure } from './state.js';
import { timeToAcknowledge, timeToContain, timingsOf, timingStats, type IncidentTimings } from './timing.js';
import type { Workflow } from './workflow.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class IncidentForbiddenError extends BulwarkError {}

export interface IncidentView {
  readonly id: string;
  readonly timestamp: string;
  readonly severity: string;
  readonly category: string;
  readonly status: string;
  readonly rule: string;
  /** The rule's correlation key (the agent for most rules) and the agent it names, if any. */
  readonly key: string;
  readonly agentId?: string;
  readonly description: string;
  readonly affected_components: readonly string[];
  readonly recommended_actions: readonly string[];
  readonly evidence: { readonly count: number; readonly firstSeq: number; readonly lastSeq: number; readonly seqs?: readonly number[] };
  readonly actions: readonly { action: string; outcome: string; attempts: number; detail: string }[];
  /** The ledger times and the time to acknowledge / contain (timing.ts). */
  readonly times: IncidentTimings;
  readonly recoveryFailed?: RecoveryFailure;
}

export function viewOfRecord(r: IncidentRecord, withSeqs: boolean): IncidentView {
  const i = r.incident;
  return {
    id: i.id,
    timestamp: i.timestamp,
    severity: i.severity,
    category: i.category,
    status: i.status,
    rule: i.rule,
    key: i.key,
    ...(i.agentId === undefined ? {} : { agentId: i.agentId }),
    description: i.description,
    affected_components: i.affected_components,
    recommended_actions: i.recommended_actions,
    evidence: { count: i.evidence.count, firstSeq: i.evidence.firstSeq, lastSeq: i.evidence.lastSeq, ...(withSeqs ? { seqs: i.evidence.seqs } : {}) },
    actions: [...r.actions.values()].map((a) => ({ ...a })),
    times: timingsOf(r),
    ...(r.recoveryFailed === undefined ? {} : { recoveryFailed: r.recoveryFailed }),
  };
}

function bodyOf(subject: CommandSubject, bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new InputError('E_INCIDENT_REQUEST', `${subject}: the body is not JSON`, { subject });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InputError('E_INCIDENT_REQUEST', `${subject}: the body must be an object`, { subject });
  return v as Record<string, unknown>;
}

const json = (v: unknown) => encoder.encode(JSON.stringify(v));
const figures = (r: IncidentRecord, ttaMs: number | undefined): JsonObject => {
  const ttc = timeToContain(r);
  return { ...(ttaMs === undefined ? {} : { ttaMs }), ...(ttc === undefined ? {} : { ttcMs: ttc }) };
};

export function incidentHandlers(ctx: { state: IncidentState; workflow: Workflow; soc: SocPublisher; ports: ActionPorts; analysts: () => readonly string[] }): { [S in CommandSubject]?: CommandHandler } {
  const allowed = (peer: string, subject: CommandSubject) => {
    if (!ctx.analysts().includes(peer)) throw new IncidentForbiddenError('E_INCIDENT_FORBIDDEN', `${peer} is not an enrolled analyst: ${subject} refused`, { peer, subject });
  };
  const find = (subject: CommandSubject, body: Record<string, unknown>): IncidentRecord => {
    const id = body['id'];
    if (typeof id !== 'string') throw new InputError('E_INCIDENT_REQUEST', `${subject}: id (an incident id) is required`, { subject });
    const r = ctx.state.get(id);
    if (r === undefined) throw new InputError('E_INCIDENT_UNKNOWN', `${subject}: no incident ${id}`, { subject, id });
    return r;
  };
  const noteOf = (body: Record<string, unknown>): JsonObject => (typeof body['note'] === 'string' ? { note: body['note'].slice(0, 1000) } : {});
  // One resolve at a time per incident: a second one while the first runs its plan is refused.
  const resolving = new Set<string>();

  const ack: CommandHandler = async (req) => {
    allowed(req.peer, Commands.incident.ack);
    const body = bodyOf(Commands.incident.ack, req.body);
    const r = find(Commands.incident.ack, body);
    const at = Date.now();
    const tta = r.times.openedAt === undefined ? undefined : Math.max(0, at - r.times.openedAt);
    const first = r.times.acknowledgedAt === undefined;
    const eventId = await ctx.workflow.emit('incident.acknowledged', r.incident.agentId ?? INCIDENT_PRINCIPAL, { incidentId: r.incident.id, by: req.peer, ...noteOf(body), ...(first ? figures(r, tta) : {}) }, at);
    if (r.incident.status === 'open') r.incident.status = 'acknowledged';
    // The same value the replay of this event sets (its own timestamp).
    r.times.acknowledgedAt ??= at;
    await ctx.soc.publish(r.incident, 'update', 1).catch(() => undefined);
    return json({ id: r.incident.id, status: r.incident.status, eventId, times: timingsOf(r) });
  };

  const resolve: CommandHandler = async (req) => {
    const subject = Commands.incident.resolve;
    allowed(req.peer, subject);
    const body = bodyOf(subject, req.body);
    const r = find(subject, body);
    const id = r.incident.id;
    if (r.incident.status === 'resolved') throw new InputError('E_INCIDENT_RESOLVED', `${subject}: incident ${id} is already resolved`, { id });
    const plan = parsePlan(body['plan'], r);
    if (resolving.has(id)) throw new InputError('E_INCIDENT_BUSY', `${subject}: incident ${id} is being resolved by another request`, { id });
    resolving.add(id);
    try {
      const result = await runRecovery(ctx.ports, r, plan, req.peer);
      const subjectOf = r.incident.agentId ?? INCIDENT_PRINCIPAL;
      const steps = result.steps as unknown as JsonValue;
      const invitation: JsonObject = result.invitation === undefined ? {} : { invitation: { principal: result.invitation.principal, tid: result.invitation.tid, expires: result.invitation.expires } };
      const common: JsonObject = { incidentId: id, by: req.peer, ...noteOf(body), plan: planDetails(plan), steps, ...invitation };
      if (!result.ok) {
        const failed = result.steps.find((s) => s.outcome === 'failed')!;
        const detail = `${failed.step}: ${failed.detail}`;
        const eventId = await ctx.workflow.emit('incident.mitigated', subjectOf, { ...common, action: 'recovery', outcome: 'failed', detail });
        r.recoveryFailed = { at: Date.now(), by: req.peer, detail };
        return json({ id, status: r.incident.status, eventId, recovery: result });
      }
      const at = Date.now();
      const tta = r.times.acknowledgedAt === undefined ? (r.times.openedAt === undefined ? undefined : Math.max(0, at - r.times.openedAt)) : timeToAcknowledge(r);
      const eventId = await ctx.workflow.emit('incident.resolved', subjectOf, { ...common, ...figures(r, tta) }, at);
      r.incident.status = 'resolved';
      r.times.acknowledgedAt ??= at;
      r.times.resolvedAt ??= at;
      delete r.recoveryFailed;
      await ctx.soc.publish(r.incident, 'close', 2).catch(() => undefined);
      return json({ id, status: r.incident.status, eventId, recovery: result, times: timingsOf(r) });
    } finally {
      resolving.delete(id);
    }
  };

  return {
    [Commands.incident.list]: async (req) => {
      allowed(req.peer, Commands.incident.list);
      const body = bodyOf(Commands.incident.list, req.body);
      if (typeof body['id'] === 'string') return json({ incidents: [viewOfRecord(find(Commands.incident.list, body), true)] });
      if (body['export'] !== undefined) return json({ findings: exportFindings(ctx.state.all(), parseExportQuery(body['export'], Date.now())) });
      const floor = typeof body['severity'] === 'string' && body['severity'] in SEVERITY_RANK ? SEVERITY_RANK[body['severity'] as keyof typeof SEVERITY_RANK] : 0;
      const status = typeof body['status'] === 'string' ? body['status'] : undefined;
      const matching = ctx.state.all().filter((r) => SEVERITY_RANK[r.incident.severity] >= floor && (status === undefined || r.incident.status === status));
      return json({ incidents: matching.slice(-500).map((r) => viewOfRecord(r, false)), stats: timingStats(matching) });
    },
    [Commands.incident.ack]: ack,
    [Commands.incident.resolve]: resolve,
  };
}
