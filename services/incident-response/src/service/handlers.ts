/**
 * `bulwark.incident.{list,ack,resolve}` over encrypted sessions (DESIGN §2). Only enrolled
 * analysts may call them: the peer is the session's authenticated principal. Acknowledging and
 * resolving are ledger events (`incident.acknowledged`, `incident.resolved`, with `by` = the
 * analyst, a claim this service vouches for having authenticated).
 */
import { Commands, type CommandHandler, type CommandSubject } from '@bulwark/bus';
import { BulwarkError, InputError } from '@bulwark/errors';
import type { SocPublisher } from '../soc/publisher.js';
import { SEVERITY_RANK } from '../incidents/security-event.js';
import { INCIDENT_PRINCIPAL, type IncidentRecord, type IncidentState } from './state.js';
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

export function incidentHandlers(ctx: { state: IncidentState; workflow: Workflow; soc: SocPublisher; analysts: () => readonly string[] }): { [S in CommandSubject]?: CommandHandler } {
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
  const change = (subject: CommandSubject, type: 'incident.acknowledged' | 'incident.resolved', status: 'acknowledged' | 'resolved'): CommandHandler => async (req) => {
    allowed(req.peer, subject);
    const body = bodyOf(subject, req.body);
    const r = find(subject, body);
    const note = typeof body['note'] === 'string' ? body['note'].slice(0, 1000) : undefined;
    const eventId = await ctx.workflow.emit(type, r.incident.agentId ?? INCIDENT_PRINCIPAL, { incidentId: r.incident.id, by: req.peer, ...(note === undefined ? {} : { note }) });
    if (status === 'resolved' || r.incident.status === 'open') r.incident.status = status;
    await ctx.soc.publish(r.incident, status === 'resolved' ? 'close' : 'update', status === 'resolved' ? 2 : 1).catch(() => undefined);
    return encoder.encode(JSON.stringify({ id: r.incident.id, status: r.incident.status, eventId }));
  };
  return {
    [Commands.incident.list]: async (req) => {
      allowed(req.peer, Commands.incident.list);
      const body = bodyOf(Commands.incident.list, req.body);
      if (typeof body['id'] === 'string') return encoder.encode(JSON.stringify({ incidents: [viewOfRecord(find(Commands.incident.list, body), true)] }));
      const floor = typeof body['severity'] === 'string' && body['severity'] in SEVERITY_RANK ? SEVERITY_RANK[body['severity'] as keyof typeof SEVERITY_RANK] : 0;
      const status = typeof body['status'] === 'string' ? body['status'] : undefined;
      const incidents = ctx.state
        .all()
        .filter((r) => SEVERITY_RANK[r.incident.severity] >= floor && (status === undefined || r.incident.status === status))
        .slice(-500)
        .map((r) => viewOfRecord(r, false));
      return encoder.encode(JSON.stringify({ incidents }));
    },
    [Commands.incident.ack]: change(Commands.incident.ack, 'incident.acknowledged', 'acknowledged'),
    [Commands.incident.resolve]: change(Commands.incident.resolve, 'incident.resolved', 'resolved'),
  };
}
