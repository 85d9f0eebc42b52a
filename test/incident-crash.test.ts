// A restart of the incident service during an incident neither loses nor repeats a containment
// action (issue 15). Every service runs in process (test/containment-world.ts) but svc.incident-response,
// which runs as a child process (test/attack-child.ts incident-response, from the packages' dist).
// For each step of the High plan, a fresh agent with a runc workload bursts 20 denials; the test
// watches the ledger for the step's event and SIGKILLs the child the moment it appears, then
// starts a new one (its state is the ledger replayed) and checks from the ledger that each action
// happened exactly once: one `incident.opened`, one `incident.mitigated done` per action and no
// failed or escalated attempt, one containment policy registered, one `keys.revoked`, one
// `sandbox.killed`; the workload is gone and the agent's keys are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServicePrincipals } from '@bulwark/bus';
import { containmentPolicyName } from '@bulwark/incident-response';
import { killChild, spawnChild, type RunningChild } from './attack-children.js';
import { ACTIONS, containmentSkip, startContainmentWorld, until, WRITE, type ContainmentWorld } from './containment-world.js';

let w: ContainmentWorld;
let child: RunningChild | undefined;

beforeAll(async () => {
  if (containmentSkip !== undefined) return;
  w = await startContainmentWorld('crash');
}, 120_000);

afterAll(async () => {
  await killChild(child);
  await w?.close();
}, 60_000);

/** The ledger's events of a type, whoever they are about. */
const allOf = async (eventType: string) => (await w.db.selectFrom('events').selectAll().where('event_type', '=', eventType).execute()).map((r) => ({ producer: r.producer, agentId: r.agent_id, details: JSON.parse(r.details) as Record<string, unknown> }));

/** Each step and the ledger event that says it just happened (the effect, where the action has one). */
const STEPS: readonly { readonly after: string; readonly happened: (agentId: string) => Promise<boolean> }[] = [
  { after: 'the incident opened', happened: async (a) => (await w.rows('incident.opened', a)).length > 0 },
  { after: 'the policy change', happened: async (a) => (await allOf('policy.registered')).some((e) => e.details['name'] === containmentPolicyName(a)) },
  { after: 'the revoke', happened: async (a) => (await w.rows('keys.revoked', a)).length > 0 },
  { after: 'the sandbox terminate', happened: async (a) => (await w.rows('sandbox.killed', a)).length > 0 },
  { after: 'the evidence', happened: async (a) => (await w.rows('incident.mitigated', a)).some((e) => e.details['action'] === 'evidence.preserve' && e.details['outcome'] === 'done') },
];

describe.skipIf(containmentSkip !== undefined)(`the incident service SIGKILLed during containment${containmentSkip === undefined ? '' : ` (skipped: ${containmentSkip})`}`, () => {
  for (const step of STEPS) {
    it(`SIGKILL right after ${step.after}: after the restart every action happened exactly once`, async () => {
      const agent = await w.enrollAgent();
      const workload = await w.startWorkload(agent.id);
      child = await spawnChild('incident-response', w.incidentChildConfig(), 60_000);
      for (let i = 0; i < 20; i++) expect((await agent.client.policy.evaluate(WRITE)).decision).toBe('Deny');
      await until(() => step.happened(agent.id), 20_000, `${step.after} in the ledger`);
      await killChild(child);
      const doneAtKill = (await w.rows('incident.mitigated', agent.id)).filter((e) => e.details['outcome'] === 'done').map((e) => e.details['action']);
      process.stdout.write(`${JSON.stringify({ killedAfter: step.after, doneWhenKilled: doneAtKill })}\n`);
      child = await spawnChild('incident-response', w.incidentChildConfig(), 60_000);
      const done = async () => (await w.rows('incident.mitigated', agent.id)).filter((e) => e.details['outcome'] === 'done');
      await until(async () => {
        const d = await done();
        return ACTIONS.every((a) => d.some((e) => e.details['action'] === a));
      }, 30_000, `every action done after the restart (done when killed: ${doneAtKill.join(', ') || 'none'})`);
      expect((await Promise.race([workload.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('workload not terminated')), 15_000))])).exitCode).toBe(137);
      // Anything the new instance would repeat has had time to reach the ledger.
      await new Promise((r) => setTimeout(r, 2000));

      const opened = (await w.rows('incident.opened', agent.id)).filter((e) => e.details['rule'] === 'policy_deny_burst');
      expect(opened).toHaveLength(1);
      const mine = (await w.rows('incident.mitigated', agent.id)).filter((e) => e.details['incidentId'] === opened[0]!.details['incidentId']);
      for (const a of ACTIONS) expect(mine.filter((e) => e.details['action'] === a).map((e) => e.details['outcome']), `${a} (done when killed: ${doneAtKill.join(', ') || 'none'})`).toEqual(['done']);
      expect(await w.rows('incident.escalated', agent.id)).toEqual([]);
      expect((await allOf('policy.registered')).filter((e) => e.details['name'] === containmentPolicyName(agent.id))).toHaveLength(1);
      const revoked = await w.rows('keys.revoked', agent.id);
      expect(revoked.map((e) => [e.producer, e.details['by']])).toEqual([[ServicePrincipals.keys, ServicePrincipals.incident]]);
      expect(await w.rows('sandbox.killed', agent.id)).toHaveLength(1);
      expect(w.directory.lookup(agent.id)).toBeUndefined();
      expect(w.scheduler.ps().filter((s) => s.agentId === agent.id)).toEqual([]);
      await killChild(child);
    }, 120_000);
  }
});
