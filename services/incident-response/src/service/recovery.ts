/**
 * Recovery (seed S7.4): what `bulwark.incident.resolve` does before the incident is resolved.
 *
 * A plan `{ reenroll?, policy?: keep | rollback, health? }` is checked whole before anything runs
 * (a bad plan changes nothing). Its steps then run in this order, each stopping the next if it
 * fails, so a failure never releases an agent that was not re-enrolled:
 * 1. `health`: the readiness of the services (`$SRV`, as `bulwark status` reads it). `$SRV` is the
 *    operator's to ask (DESIGN §3a), so the CLI reads it and sends the report; it is recorded as the
 *    analyst's claim, and a report of a service not ready fails the step.
 * 2. `reenroll`: a fresh one-time join invitation for the agent (`bulwark.keys.invite`); its
 *    revoked keys stay revoked. The join bundle (a bearer secret) goes only into the reply; the
 *    ledger gets its token id and expiry.
 * 3. `policy`: `keep` leaves the containment policy in force; `rollback` releases it by a policy
 *    change made by this service (a ledger event, as containment was).
 */
import type { JsonObject } from '@bulwark/events';
import { BulwarkError, InputError, isBulwarkError } from '@bulwark/errors';
import { releaseAgent, type ActionPorts } from './actions.js';
import type { IncidentRecord } from './state.js';

export interface HealthReport {
  readonly ready: boolean;
  readonly services: readonly { readonly name: string; readonly ready: boolean; readonly reason: string }[];
}

export interface RecoveryPlan {
  readonly reenroll: boolean;
  readonly policy: 'keep' | 'rollback';
  readonly health?: HealthReport;
}

export type RecoveryStepName = 'health' | 'reenroll' | 'policy.keep' | 'policy.rollback';

export interface RecoveryStep {
  readonly step: RecoveryStepName;
  readonly outcome: 'done' | 'failed' | 'skipped';
  readonly detail: string;
}

export interface RecoveryResult {
  readonly ok: boolean;
  readonly steps: readonly RecoveryStep[];
  /** The invitation of `reenroll`: principal, token id, expiry, and the join bundle (reply only). */
  readonly invitation?: { readonly principal: string; readonly tid: string; readonly expires: string; readonly join: string };
}

const planError = (why: string, context: Record<string, unknown> = {}) => new InputError('E_INCIDENT_PLAN', `bulwark.incident.resolve: bad recovery plan: ${why}`, context);

function parseHealth(v: unknown): HealthReport {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw planError('health must be an object { ready, services }');
  const h = v as Record<string, unknown>;
  if (typeof h['ready'] !== 'boolean' || !Array.isArray(h['services']) || h['services'].length === 0 || h['services'].length > 32) throw planError('health needs ready (boolean) and 1-32 services');
  const services = h['services'].map((s, i) => {
    const o = (s ?? {}) as Record<string, unknown>;
    if (typeof o['name'] !== 'string' || typeof o['ready'] !== 'boolean' || typeof o['reason'] !== 'string') throw planError(`health.services[${i}] needs name, ready, reason`);
    return { name: o['name'].slice(0, 64), ready: o['ready'], reason: o['reason'].slice(0, 300) };
  });
  // The summary must agree with its rows: a report cannot say ready over a service that is not.
  if (h['ready'] !== services.every((s) => s.ready)) throw planError('health.ready disagrees with its services');
  return { ready: h['ready'], services };
}

/** The plan of a resolve request, checked against the incident; undefined plan = resolve only (keep the policy). */
export function parsePlan(v: unknown, record: IncidentRecord): RecoveryPlan {
  if (v === undefined) return { reenroll: false, policy: 'keep' };
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw planError('plan must be an object');
  const p = v as Record<string, unknown>;
  const unknown = Object.keys(p).filter((k) => k !== 'reenroll' && k !== 'policy' && k !== 'health');
  if (unknown.length > 0) throw planError(`unknown field(s) ${unknown.slice(0, 5).join(', ')} (reenroll, policy, health)`);
  if (p['reenroll'] !== undefined && typeof p['reenroll'] !== 'boolean') throw planError('reenroll must be a boolean');
  if (p['policy'] !== undefined && p['policy'] !== 'keep' && p['policy'] !== 'rollback') throw planError('policy must be keep or rollback');
  const plan: RecoveryPlan = { reenroll: p['reenroll'] === true, policy: p['policy'] === 'rollback' ? 'rollback' : 'keep', ...(p['health'] === undefined ? {} : { health: parseHealth(p['health']) }) };
  const agentId = record.incident.agentId;
  if ((plan.reenroll || plan.policy === 'rollback') && (agentId === undefined || !agentId.startsWith('agent.'))) {
    throw planError(`incident ${record.incident.id} names no agent (key ${record.incident.key}): nothing to re-enroll or release`, { id: record.incident.id });
  }
  return plan;
}

/** The plan as the ledger records it (the health report summarised: who was not ready). */
export function planDetails(plan: RecoveryPlan): JsonObject {
  return {
    reenroll: plan.reenroll,
    policy: plan.policy,
    health: plan.health === undefined ? 'not checked' : plan.health.ready ? 'ready' : `not ready: ${plan.health.services.filter((s) => !s.ready).map((s) => s.name).join(', ')}`,
  };
}

const describe = (e: unknown) => (isBulwarkError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e));

/** Runs the plan's steps in order; the first failure skips the rest. Never throws for a step: its failure is in the result. */
export async function runRecovery(ports: ActionPorts, record: IncidentRecord, plan: RecoveryPlan, by: string): Promise<RecoveryResult> {
  const agentId = record.incident.agentId;
  const todo: { step: RecoveryStepName; run: () => Promise<string> }[] = [];
  const health = plan.health;
  if (health !== undefined) {
    todo.push({
      step: 'health',
      run: async () => {
        const down = health.services.filter((s) => !s.ready);
        if (down.length > 0) throw new BulwarkError('E_INCIDENT_RECOVERY', `not ready (reported by ${by}): ${down.map((s) => `${s.name} (${s.reason})`).join('; ')}`, {});
        return `${health.services.length} services ready (reported by ${by})`;
      },
    });
  }
  let invitation: RecoveryResult['invitation'];
  if (plan.reenroll) {
    todo.push({
      step: 'reenroll',
      run: async () => {
        const inv = await ports.client.keys.invite(agentId!);
        invitation = { principal: inv.principal, tid: inv.tid, expires: inv.expires, join: inv.join };
        return `join invitation ${inv.tid} for ${inv.principal}, expires ${inv.expires}; its revoked keys stay revoked`;
      },
    });
  }
  todo.push(plan.policy === 'rollback' ? { step: 'policy.rollback', run: () => releaseAgent(ports, agentId!) } : { step: 'policy.keep', run: async () => 'containment policy kept' });
  const steps: RecoveryStep[] = [];
  let failed = false;
  for (const t of todo) {
    if (failed) {
      steps.push({ step: t.step, outcome: 'skipped', detail: 'an earlier step failed' });
      continue;
    }
    try {
      steps.push({ step: t.step, outcome: 'done', detail: await t.run() });
    } catch (e) {
      failed = true;
      steps.push({ step: t.step, outcome: 'failed', detail: describe(e) });
    }
  }
  return { ok: !failed, steps, ...(invitation === undefined ? {} : { invitation }) };
}
