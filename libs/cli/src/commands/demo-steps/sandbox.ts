import { Commands } from '@bulwark/bus';
import type { EventJson, QueryReply } from '@bulwark/audit-ledger';
import type { SandboxAssessment, SandboxScheduleReply } from '@bulwark/client';
import { BulwarkError, isBulwarkError } from '@bulwark/errors';
import { callJson } from '../../home/session.js';
import type { DemoContext, DemoStep } from '../demo.js';

/** Secret data, untrusted code, network wanted: the seed's formula gives 0.4 + 0.3 + 0.1 = 0.8, high. */
const HIGH_RISK: SandboxAssessment = { data_sensitivity: 1, code_trust_level: 0, network_access: true, filesystem_access: false, external_apis: false };

/** The drivers that give Tier 2 (gVisor); any other answer would be a downgrade. */
const TIER2_DRIVERS = new Set(['runsc', 'docker']);

/** A step's check: what it should have given, in one line (the demo prints it as the failure). */
function check(condition: boolean, what: string): void {
  if (!condition) throw new BulwarkError('E_DEMO_STEP', what, {});
}

/** Resource allocation is an enforcement point: this agent, and Tier 2 only. */
const sandboxPolicy = (tag: string, agentId: string) => `// bulwark demo, run ${tag}: the scripted agent may have Tier 2 sandboxes.
policy demo_sandbox_${tag} {
    allow: allocate(sandbox) if agent.id == "${agentId}" && sandbox.tier == 2
}
`;

/** The schedule as the agent; a missing driver or service is said plainly, never papered over. */
async function schedule(ctx: DemoContext, marker: string): Promise<SandboxScheduleReply> {
  try {
    return await ctx.agent.sandbox.schedule({ assessment: HIGH_RISK, args: ['/bin/sh', '-c', `echo ${marker}; uname -sr`] }, { timeoutMs: 60_000 });
  } catch (error) {
    const code = isBulwarkError(error) ? error.code : '';
    const message = error instanceof Error ? error.message : String(error);
    if (code === 'E_SANDBOX_NO_DRIVER') throw new BulwarkError('E_DEMO_STEP', `this host has no Tier 2 (gVisor) driver, so the high-risk workload was refused, not run in Tier 1 (install runsc; see bulwark sandbox drivers): ${message}`, {}, { cause: error });
    if (code === 'E_BUS_NO_RESPONDERS' || code === 'E_BUS_TIMEOUT') throw new BulwarkError('E_DEMO_STEP', `the sandbox scheduler did not answer (is it among the services of bulwark up, running as root?): ${message}`, {}, { cause: error });
    throw error;
  }
}

/** The run's `sandbox.exited` event, once the ledger has committed it. */
async function findExited(ctx: DemoContext, sandboxId: string): Promise<EventJson> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const reply = await callJson<QueryReply>(ctx.admin, Commands.audit.query, { agentId: ctx.agentId, eventType: 'sandbox.exited', limit: 100 });
    const found = reply.events.find((e) => (e.details as { sandboxId?: string }).sandboxId === sandboxId);
    if (found !== undefined) return found;
    check(Date.now() <= deadline, `no sandbox.exited event for ${sandboxId} in the ledger after 15 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const sandboxStep: DemoStep = {
  title: 'a high-risk workload is placed in Tier 2 (gVisor) and its output returned',
  async run(ctx) {
    const policy = await ctx.adminClient.policyAdmin.register(sandboxPolicy(ctx.tag, ctx.agentId), `demo-sandbox-${ctx.tag}.policy`);
    check(policy.applied, `policy demo_sandbox_${ctx.tag} was published (event ${policy.eventId}) but not applied by the service`);
    const { decision } = await ctx.agent.sandbox.assess(HIGH_RISK);
    check(decision.level === 'high' && decision.tier === 2, `the assessment should be high risk, Tier 2; got ${decision.level}, Tier ${decision.tier}`);
    const marker = `sandboxed-${ctx.tag}`;
    const { run } = await schedule(ctx, marker);
    check(run.tier === 2 && TIER2_DRIVERS.has(run.driver), `the workload ran in Tier ${run.tier} on ${run.driver}: not Tier 2`);
    const [said = '', kernel = ''] = run.stdout.split('\n');
    check(run.exitCode === 0 && said === marker, `the workload should print ${marker} and exit 0; it exited ${run.exitCode} with ${JSON.stringify(run.stdout.slice(0, 200))} ${JSON.stringify(run.stderr.slice(0, 200))}`);
    // The output again, through bulwark.sandbox.logs, as the agent (its own sandbox only).
    const logs = await ctx.agent.sandbox.logs(run.sandboxId);
    check(logs.stdout === run.stdout, `bulwark.sandbox.logs gave ${JSON.stringify(logs.stdout.slice(0, 200))}, not the run's output`);
    const exited = await findExited(ctx, run.sandboxId);
    return `risk ${decision.score.toFixed(1)} (high) -> Tier 2 on ${run.driver}, allowed by demo_sandbox_${ctx.tag}; output "${said}", kernel "${kernel}" (gVisor's, not the host's), exit 0 in ${run.durationMs} ms, the same output from bulwark.sandbox.logs; spec ${run.specHash.slice(0, 16)}…, recorded as sandbox.exited seq ${exited.seq}`;
  },
};
