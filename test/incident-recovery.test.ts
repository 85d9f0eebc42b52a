// Scenario (issue 15, seed S7.4): an agent's burst of denials becomes a High incident and is
// contained; an analyst acknowledges it and resolves it with a recovery plan (the services'
// health, a re-enrolment, the containment policy rolled back). Every step is in the ledger,
// a failed step leaves the incident unresolved, MTTA/MTTC come from the ledger (the same after
// a restart), and the SOC export's lines validate as OCSF Detection Findings. Attacks: a
// principal that is not an enrolled analyst cannot resolve or export; an unknown incident or a
// bad plan is refused and changes nothing. Real ledger, policy and incident services in process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandClient, Commands, type CommandSubject } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import type { LocalIdentity } from '@bulwark/envelope';
import { timingsOf, type IncidentService } from '@bulwark/incident-response';
import { healthReport, probeServices } from '../libs/cli/src/run/probe.js';
import { SERVICES } from '../libs/cli/src/run/services.js';
import { eventually, provider, quiet, READ, startIncidentWorld, validateFinding as validate, WRITE, type IncidentWorld } from './incident-world.js';

let w: IncidentWorld;
let annId: LocalIdentity;
let eveId: LocalIdentity;
let incidentId: LocalIdentity;
let agentId: LocalIdentity;
let incidents: IncidentService;
let agent: BulwarkClient;
let t0: number;
const callers = new Map<string, CommandClient>();
const startIncidents = () => w.startIncidents({ maxAttempts: 2 });
/** One incident command as `who`, over its own encrypted session: the reply, or the refusal's remote code. */
const call = async (who: LocalIdentity, subject: CommandSubject, body: unknown): Promise<Record<string, unknown>> => {
  let c = callers.get(who.id);
  if (c === undefined) {
    c = new CommandClient(await w.connectTo(who.id), { sessions: { provider, self: who, directory: w.directory }, rejections: quiet(who.id) });
    callers.set(who.id, c);
  }
  const reply = await c.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 20_000, idempotent: false });
  return JSON.parse(new TextDecoder().decode(reply)) as Record<string, unknown>;
};
const eventsOf = (prefix: string) => w.eventsOf(prefix, { prefix: true });
const theIncident = () => incidents.state.all().find((r) => r.incident.agentId === agentId.id && r.incident.rule === 'policy_deny_burst');
const health = async () => healthReport(await probeServices(await w.connectTo('health'), undefined, SERVICES.filter((s) => ['audit-ledger', 'policy', 'incident-response'].includes(s.name))));

beforeAll(async () => {
  w = await startIncidentWorld({ name: 'recovery', agents: ['agent.recover1'] });
  ({ ann: annId, eve: eveId, incident: incidentId } = w.ids);
  agentId = w.agents[0]!;
  incidents = await startIncidents();
  agent = createBulwarkClient({ bus: await w.connectTo(agentId.id), sessions: { provider, self: agentId, directory: w.directory }, rejections: quiet(agentId.id), decisionTimeoutMs: 5000 });
  t0 = Date.now();
  for (let i = 0; i < 20; i++) expect((await agent.policy.evaluate(WRITE)).decision).toBe('Deny');
  await eventually(async () => (await agent.policy.evaluate(READ)).decision === 'Deny', 15_000, 'the agent contained');
  await eventually(() => theIncident()?.times.containedAt !== undefined, 10_000, 'containment recorded');
  // The rest of the plan (the sandbox and key steps fail here: no scheduler or key manager) settles
  // into escalations first, so that the tests below see only what they cause.
  await eventually(() => incidents.workflow.pendingWork() === 0, 30_000, 'workflow settled');
  let last = -1;
  await eventually(async () => {
    const n = (await eventsOf('incident.')).length;
    const stable = n === last;
    last = n;
    if (!stable) await new Promise((r) => setTimeout(r, 300));
    return stable;
  }, 10_000, 'the last records committed');
}, 90_000);

afterAll(async () => {
  await w?.stop();
}, 60_000);

describe('incident recovery (S7.4) end to end', () => {
  it('refuses resolve and export to principals that are not enrolled analysts, and an unknown incident or a bad plan; nothing changes', async () => {
    const id = theIncident()!.incident.id;
    const before = [(await eventsOf('incident.')).length, (await eventsOf('policy.registered')).length + (await eventsOf('policy.updated')).length];
    const good = { id, plan: { policy: 'rollback' } };
    for (const who of [eveId, agentId]) {
      await expect(call(who, Commands.incident.resolve, good)).rejects.toMatchObject({ context: { remoteCode: 'E_INCIDENT_FORBIDDEN' } });
      await expect(call(who, Commands.incident.list, { export: { since: 0 } })).rejects.toMatchObject({ context: { remoteCode: 'E_INCIDENT_FORBIDDEN' } });
    }
    await expect(call(annId, Commands.incident.resolve, { id: `${id}x`, plan: { policy: 'rollback' } })).rejects.toMatchObject({ context: { remoteCode: 'E_INCIDENT_UNKNOWN' } });
    for (const plan of [{ policy: 'drop' }, { reenroll: 'yes' }, { policy: 'rollback', wipe: true }, { health: { ready: true, services: [{ name: 'policy', ready: false, reason: 'down' }] } }]) {
      await expect(call(annId, Commands.incident.resolve, { id, plan }), JSON.stringify(plan)).rejects.toMatchObject({ context: { remoteCode: 'E_INCIDENT_PLAN' } });
    }
    await new Promise((r) => setTimeout(r, 300)); // anything wrongly emitted would have reached the ledger
    expect([(await eventsOf('incident.')).length, (await eventsOf('policy.registered')).length + (await eventsOf('policy.updated')).length]).toEqual(before);
    expect(theIncident()!.incident.status).toBe('open');
    expect((await agent.policy.evaluate(READ)).decision).toBe('Deny');
  }, 60_000);

  it('acknowledges with the time to acknowledge, from the ledger', async () => {
    const id = theIncident()!.incident.id;
    const reply = (await call(annId, Commands.incident.ack, { id, note: 'on it' })) as { status: string; times: { ttaMs: number; ttcMs: number } };
    expect(reply.status).toBe('acknowledged');
    await eventually(async () => (await eventsOf('incident.acknowledged')).length === 1, 10_000, 'ack in the ledger');
    const [ack] = await eventsOf('incident.acknowledged');
    const [opened] = (await eventsOf('incident.opened')).filter((e) => e.details['incidentId'] === id);
    expect(ack!.details).toMatchObject({ incidentId: id, by: annId.id, ttaMs: Number(ack!.timestamp_ms) - Number(opened!.timestamp_ms), ttcMs: reply.times.ttcMs });
    expect(reply.times.ttaMs).toBe(ack!.details['ttaMs']);
  }, 30_000);

  it('reports a failed recovery step, leaves the incident unresolved and the agent contained', async () => {
    const id = theIncident()!.incident.id;
    // No key manager runs here: the invitation cannot be made, so the rollback after it must not run.
    const reply = (await call(annId, Commands.incident.resolve, { id, plan: { reenroll: true, policy: 'rollback', health: await health() } })) as { status: string; recovery: { ok: boolean; steps: { step: string; outcome: string; detail: string }[] } };
    expect(reply.status).toBe('acknowledged');
    expect(reply.recovery.ok).toBe(false);
    expect(reply.recovery.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['health:done', 'reenroll:failed', 'policy.rollback:skipped']);
    await eventually(async () => (await eventsOf('incident.mitigated')).some((e) => e.details['action'] === 'recovery'), 10_000, 'the failed recovery in the ledger');
    const failed = (await eventsOf('incident.mitigated')).find((e) => e.details['action'] === 'recovery')!;
    expect(failed.producer).toBe('svc.incident-response');
    expect(failed.details).toMatchObject({ incidentId: id, by: annId.id, outcome: 'failed', plan: { reenroll: true, policy: 'rollback', health: 'ready' }, detail: expect.stringMatching(/^reenroll: /) });
    expect(await eventsOf('incident.resolved')).toEqual([]);
    expect((await agent.policy.evaluate(READ)).decision).toBe('Deny');
  }, 60_000);

  it('resolves with a plan: health checked, the containment rolled back by a policy change, MTTA/MTTC recorded and the same after a restart', async () => {
    const id = theIncident()!.incident.id;
    const reply = (await call(annId, Commands.incident.resolve, { id, note: 'false positive', plan: { policy: 'rollback', health: await health() } })) as { status: string; recovery: { ok: boolean; steps: { step: string; outcome: string }[] } };
    expect(reply.status).toBe('resolved');
    expect(reply.recovery.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['health:done', 'policy.rollback:done']);
    // The release is a policy change by svc.incident-response, and the agent's requests are decided by the vault policy again.
    await eventually(async () => (await agent.policy.evaluate(READ)).decision === 'Allow', 10_000, 'the agent released');
    const release = (await eventsOf('policy.updated')).at(-1)!;
    expect(release.details).toMatchObject({ by: incidentId.id });
    await eventually(async () => (await eventsOf('incident.resolved')).length === 1, 10_000, 'resolve in the ledger');
    const [resolved] = await eventsOf('incident.resolved');
    const [ack] = await eventsOf('incident.acknowledged');
    const contained = (await eventsOf('incident.mitigated')).find((e) => e.details['incidentId'] === id && e.details['action'] === 'policy.contain' && e.details['outcome'] === 'done')!;
    expect(resolved!.producer).toBe('svc.incident-response');
    expect(resolved!.details).toMatchObject({ incidentId: id, by: annId.id, note: 'false positive', plan: { reenroll: false, policy: 'rollback', health: 'ready' }, ttaMs: ack!.details['ttaMs'], ttcMs: Number(contained.timestamp_ms) - theIncident()!.times.triggerAt });
    expect((resolved!.details['steps'] as { step: string }[]).map((s) => s.step)).toEqual(['health', 'policy.rollback']);
    const ttc = resolved!.details['ttcMs'] as number;
    expect(ttc).toBeGreaterThan(0);
    expect(ttc).toBeLessThan(Date.now() - t0);
    // Resolved once: a second resolve is refused.
    await expect(call(annId, Commands.incident.resolve, { id })).rejects.toMatchObject({ context: { remoteCode: 'E_INCIDENT_RESOLVED' } });

    const list = (await call(annId, Commands.incident.list, {})) as { incidents: { id: string; times: Record<string, unknown> }[]; stats: { mtta: { count: number; meanMs: number; p50Ms: number }; mttc: { count: number; p50Ms: number } } };
    const view = list.incidents.find((i) => i.id === id)!;
    expect(view.times).toMatchObject({ ttaMs: ack!.details['ttaMs'], ttcMs: ttc, resolvedAt: new Date(Number(resolved!.timestamp_ms)).toISOString() });
    expect(list.stats.mttc.count).toBeGreaterThanOrEqual(1);
    expect(list.stats.mtta.count).toBe(1);
    expect(list.stats.mtta.p50Ms).toBe(ack!.details['ttaMs']);
    console.log(`[incident recovery] ${id}: time to acknowledge ${String(ack!.details['ttaMs'])} ms, time to contain ${ttc} ms (trigger → policy.contain done, ledger timestamps)`);

    const before = timingsOf(theIncident()!);
    await incidents.stop();
    incidents = await startIncidents();
    expect(timingsOf(theIncident()!)).toEqual(before);
    expect(theIncident()!.incident.status).toBe('resolved');
  }, 90_000);

  it('exports the incidents as OCSF Detection Findings that validate against the 1.8.0 schema', async () => {
    const id = theIncident()!.incident.id;
    const reply = (await call(annId, Commands.incident.list, { export: { since: t0 - 60_000, until: Date.now() + 1000, severity: 'high' } })) as { findings: Record<string, unknown>[] };
    expect(reply.findings.length).toBeGreaterThanOrEqual(1);
    const lines = reply.findings.map((f) => JSON.stringify(f));
    for (const line of lines) expect(validate(JSON.parse(line)), JSON.stringify(validate.errors)).toBe(true);
    const mine = reply.findings.find((f) => (f['finding_info'] as { uid: string }).uid === id)!;
    expect(mine).toMatchObject({ class_uid: 2004, activity_name: 'Close', status: 'Resolved', severity: 'High', time: theIncident()!.times.resolvedAt });
    // A range before the incident has none of it; a reversed range is refused.
    const none = (await call(annId, Commands.incident.list, { export: { since: t0 - 120_000, until: t0 - 60_000 } })) as { findings: unknown[] };
    expect(none.findings).toEqual([]);
    await expect(call(annId, Commands.incident.list, { export: { since: t0, until: t0 - 1 } })).rejects.toMatchObject({ context: { remoteCode: 'E_INCIDENT_EXPORT' } });
  }, 30_000);
});
