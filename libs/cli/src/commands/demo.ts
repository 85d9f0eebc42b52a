import { randomUUID } from 'node:crypto';
import { Commands, connectBus, type Bus } from '@bulwark/bus';
import type { EventJson, QueryReply } from '@bulwark/audit-ledger';
import { createBulwarkClient, type BulwarkClient, type PolicyDecision, type PolicyRequest } from '@bulwark/client';
import { ADMIN_PRINCIPAL } from '../home/admin.js';
import { enrolAgentThroughKeyManager } from '../home/enrol-agent.js';
import { runningHome } from '../home/running.js';
import { proveInLedger } from '../home/ledger-keys.js';
import { callJson, openSession, type Session } from '../home/session.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { loadCliConfig, resolveLedgerKey, type LedgerKey } from './audit-source.js';
import { keysStep } from './demo-steps/keys.js';
import { toolsStep } from './demo-steps/tools.js';
import { sandboxStep } from './demo-steps/sandbox.js';
import { incidentStep } from './demo-steps/incident.js';

interface DemoOptions {
  readonly dir?: string;
}

/** What the steps share: the administrator's session, the scripted agent's client, names unique to this run. */
export interface DemoContext {
  readonly admin: Session;
  readonly adminClient: BulwarkClient;
  readonly agentId: string;
  readonly agent: BulwarkClient;
  readonly tag: string;
  readonly ledgerKey: LedgerKey;
  /** The decisions' ledger events are looked up by these. */
  denied?: PolicyDecision;
}

/** One step: what it shows, and the check that it gave what it should (a thrown error fails it). */
export interface DemoStep {
  readonly title: string;
  run(ctx: DemoContext): Promise<string>;
}

class StepFailed extends Error {}

function expect(condition: boolean, what: string): void {
  if (!condition) throw new StepFailed(what);
}

const policyV1 = (t: string) => `// bulwark demo, run ${t}: the scripted agent's tools.
policy demo_${t} {
    allow: invoke(search_${t}) if agent.trust >= 0.5
    allow: read(records_${t}) if agent.trust >= 0.5
    deny: invoke(shell_${t}) if agent.sandboxed == false
    require: audit_trail for read(records_${t})
}
`;

const policyV2 = (t: string) => policyV1(t).replace('    deny:', `    allow: invoke(deploy_${t}) if agent.trust >= 0.8\n    deny:`);

const agentContext = { agent: { trust: 0.9, sandboxed: false } };

function describe(d: PolicyDecision): string {
  const by = d.policy === null ? 'default deny' : `${d.policy} v${d.version} rule ${d.rule}`;
  switch (d.decision) {
    case 'Allow':
      return `Allow (${by})`;
    case 'AllowWithConditions':
      return `AllowWithConditions [${d.conditions.map((c) => c.name).join(', ')}] (${by})`;
    case 'RequireApproval':
      return `RequireApproval by ${d.approver} (${by})`;
    case 'Deny':
      return `Deny (${by}): ${d.reason}`;
  }
}

/** Evaluates as the agent; a first handshake may wait for the service to see the new directory entry. */
async function decide(ctx: DemoContext, request: PolicyRequest): Promise<PolicyDecision> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const d = await ctx.agent.policy.evaluate(request, { timeoutMs: 2000 });
    if (!(d.decision === 'Deny' && d.failure !== undefined) || Date.now() > deadline) return d;
    ctx.agent.reset();
    await new Promise((r) => setTimeout(r, 300));
  }
}

const invoke = (tool: string): PolicyRequest => ({ action: 'invoke', resource: tool, classes: ['tool_invocation'], context: agentContext });

/** The steps, in order; each later service adds its own. */
const STEPS: readonly DemoStep[] = [
  {
    title: 'the administrator registers a policy for the agent',
    async run(ctx) {
      const reply = await ctx.adminClient.policyAdmin.register(policyV1(ctx.tag), `demo-${ctx.tag}.policy`);
      expect(reply.applied, `policy demo_${ctx.tag} was published (event ${reply.eventId}) but not applied by the service`);
      return `registered ${reply.name} version ${reply.version}, in force as set ${reply.setVersion} (ledger event ${reply.eventId})`;
    },
  },
  {
    title: 'an allowed request',
    async run(ctx) {
      const d = await decide(ctx, invoke(`search_${ctx.tag}`));
      expect(d.decision === 'Allow' && d.rule === 1, `invoke(search_${ctx.tag}) should be Allow by rule 1, got ${describe(d)}`);
      return `invoke(search_${ctx.tag}): ${describe(d)}`;
    },
  },
  {
    title: 'a denied request, with the rule that denied it',
    async run(ctx) {
      const d = await decide(ctx, invoke(`shell_${ctx.tag}`));
      expect(d.decision === 'Deny' && d.policy === `demo_${ctx.tag}` && d.rule === 3, `invoke(shell_${ctx.tag}) should be denied by demo_${ctx.tag} rule 3, got ${describe(d)}`);
      ctx.denied = d;
      return `invoke(shell_${ctx.tag}): ${describe(d)}; rule text: ${d.ruleText ?? ''}`;
    },
  },
  {
    title: 'an AllowWithConditions',
    async run(ctx) {
      const d = await decide(ctx, { action: 'read', resource: `records_${ctx.tag}`, classes: ['resource_access'], context: agentContext });
      expect(d.decision === 'AllowWithConditions' && d.conditions.some((c) => c.name === 'audit_trail'), `read(records_${ctx.tag}) should carry audit_trail, got ${describe(d)}`);
      return `read(records_${ctx.tag}): ${describe(d)}`;
    },
  },
  {
    title: 'the administrator pushes a new version, and it takes effect',
    async run(ctx) {
      const before = await decide(ctx, invoke(`deploy_${ctx.tag}`));
      expect(before.decision === 'Deny' && before.failure === undefined, `invoke(deploy_${ctx.tag}) should be denied before the update, got ${describe(before)}`);
      const reply = await ctx.adminClient.policyAdmin.update(policyV2(ctx.tag), `demo-${ctx.tag}.policy`);
      expect(reply.applied && reply.version === 2, `the update should be applied as version 2, got version ${reply.version}, applied ${reply.applied}`);
      const after = await decide(ctx, invoke(`deploy_${ctx.tag}`));
      expect(after.decision === 'Allow' && after.version === 2 && after.setVersion === reply.setVersion, `invoke(deploy_${ctx.tag}) should be allowed by version 2 (set ${reply.setVersion}), got ${describe(after)}`);
      return `before: ${describe(before)}; pushed version 2 (set ${reply.setVersion}); after: ${describe(after)}`;
    },
  },
  {
    title: "the denial's ledger event, its inclusion proof verified against a signed checkpoint",
    async run(ctx) {
      const event = await findDecisionEvent(ctx);
      // Trust only the ledger's first key from the home and the key changes it vouches for: the checkpoint's signature, the event's signature, the proof.
      const treeSize = await proveInLedger(ctx.admin, ctx.ledgerKey, event);
      return `seq ${event.seq} (${event.eventType}, event_hash ${event.eventHash.slice(0, 16)}…) is in the tree of size ${treeSize} under a checkpoint signed by ${ctx.ledgerKey.logKey.name}`;
    },
  },
  keysStep,
  toolsStep,
  sandboxStep,
  incidentStep,
];

/** The `policy.decision` event of the denial, once the ledger has committed it. */
async function findDecisionEvent(ctx: DemoContext): Promise<EventJson> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const reply = await callJson<QueryReply>(ctx.admin, Commands.audit.query, { agentId: ctx.agentId, eventType: 'policy.decision', limit: 100 });
    const found = reply.events.find((e) => {
      const details = e.details as { decision?: string; policy?: string; rule?: number };
      return details.decision === 'Deny' && details.policy === `demo_${ctx.tag}` && details.rule === 3;
    });
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new StepFailed(`no policy.decision event for ${ctx.agentId} in the ledger after 15 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function demo(io: CommandIO, options: DemoOptions): Promise<number> {
  const { state, env } = runningHome(io, options.dir);
  const homeIO = { ...io, env };
  const ledgerKey = resolveLedgerKey(homeIO, {}, () => loadCliConfig(homeIO));
  const admin = await openSession({ env, cwd: io.cwd, principal: state.admin ?? ADMIN_PRINCIPAL, name: 'bulwark-demo', natsUrl: state.nats.url });
  let agentBus: Bus | undefined;
  try {
    const agentId = `agent.${randomUUID()}`;
    // Enrolled by the key manager: its keys are made here, the root never leaves the key manager.
    const enrolled = await enrolAgentThroughKeyManager(admin, state.nats.url, agentId);
    io.stdout(`agent ${agentId} enrolled through the key manager: version ${enrolled.identity.version}, keys generated here, directory entry and NATS user certified by svc.key-manager\n`);
    // The agent talks on its own NATS user, which may call only what agents may call.
    agentBus = await connectBus({
      url: state.nats.url,
      name: agentId,
      maxReconnectAttempts: 0,
      connectTimeoutMs: 3000,
      credentials: { jwt: enrolled.credentials.jwt, seed: enrolled.credentials.seed },
      inboxPrefix: enrolled.credentials.inboxPrefix,
    });
    const sessions = (self: { id: string; x25519: typeof enrolled.identity.x25519 }) => ({ provider: admin.provider, self, directory: admin.directory });
    const ctx: DemoContext = {
      admin,
      adminClient: createBulwarkClient({ bus: admin.bus, sessions: sessions({ id: admin.identity.id, x25519: admin.identity.x25519 }) }),
      agentId,
      agent: createBulwarkClient({ bus: agentBus, sessions: sessions({ id: agentId, x25519: enrolled.identity.x25519 }), decisionTimeoutMs: 2000 }),
      tag: randomUUID().slice(0, 8),
      ledgerKey,
    };
    let failed = 0;
    for (const [i, step] of STEPS.entries()) {
      try {
        const said = await step.run(ctx);
        io.stdout(`${i + 1}. ok: ${step.title}\n   ${said}\n`);
      } catch (error) {
        failed++;
        io.stdout(`${i + 1}. FAILED: ${step.title}\n   ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
      }
    }
    io.stdout(failed === 0 ? `demo: all ${STEPS.length} steps gave what they should\n` : `demo: ${failed} of ${STEPS.length} steps failed\n`);
    if (failed > 0) io.stderr(`bulwark: demo: ${failed} of ${STEPS.length} steps failed\n`);
    return failed === 0 ? ExitCode.ok : ExitCode.negative;
  } finally {
    await agentBus?.close();
    await admin.close();
  }
}

/** `bulwark demo [--dir D]`. */
export const registerDemoCommand: RegisterCommand = (program, io, setExitCode) => {
  program
    .command('demo')
    .description('against the running system: a scripted agent (enrolled on the fly) is allowed, denied, allowed with conditions; the administrator pushes a policy that takes effect; the decision is proved in the ledger; exit 0 only if every step gave what it should')
    .option('--dir <home>', 'the home of the running system (default: $SYMBIONT_HOME, else ./.bulwark)')
    .action(async (options: DemoOptions) => setExitCode(await demo(io, options)));
};
