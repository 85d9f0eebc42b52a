/**
 * The demo's last step (issue 15): the scripted agent sends a burst of requests the policy
 * denies; incident response turns the burst into one High incident and contains the agent (its
 * next allowed request is denied, by the service's own policy change); the incident is on the
 * SOC channel, opened with the epoch keys wrapped to the administrator and confirmed by the
 * incident service, as `bulwark soc tail --severity high+` shows it; its
 * evidence (the last denial) is proven in the ledger against a signed checkpoint.
 */
import { Commands, SOC_CHANNEL } from '@bulwark/bus';
import type { QueryReply } from '@bulwark/audit-ledger';
import { proveInLedger } from '../../home/ledger-keys.js';
import { callJson } from '../../home/session.js';
import type { DemoContext, DemoStep } from '../demo.js';
import { readSocStream, x25519Versions } from '../soc-channel.js';

const BURST = 20; // the shipped rule policy_deny_burst: 20 denials by one agent within 10 s

interface IncidentView {
  readonly id: string;
  readonly severity: string;
  readonly status: string;
  readonly rule: string;
  readonly agentId?: string;
  readonly evidence: { readonly count: number; readonly lastSeq: number };
  readonly actions: readonly { readonly action: string; readonly outcome: string; readonly detail: string }[];
}

const fail = (what: string): never => {
  throw new Error(what);
};

async function poll<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) return fail(`${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The finding of `incidentId` as `bulwark soc tail --severity high+` reads it as the administrator: on the SOC channel, confirmed by the incident service. */
async function socFinding(ctx: DemoContext, incidentId: string): Promise<{ subject: string; title: string }> {
  const { admin } = ctx;
  let found: { subject: string; title: string } | undefined;
  const refused: string[] = [];
  const reader = await readSocStream({
    bus: admin.bus,
    provider: admin.provider,
    identity: { id: admin.identity.id, x25519: admin.identity.x25519 },
    x25519SecretKey: await x25519Versions(admin.store, admin.identity.id),
    directory: admin.directory,
    call: (subject, body) => callJson(admin, subject, body, 10_000),
    floor: 'high',
    onFinding: ({ subject, finding, incident }) => {
      if (incident.id === incidentId) found = { subject, title: (finding['finding_info'] as { title?: string }).title ?? '' };
    },
    onRefused: (why) => refused.push(why),
    syncIntervalMs: 500,
  });
  try {
    return await poll(`the finding of incident ${incidentId} on the SOC channel ${SOC_CHANNEL} (is ${admin.identity.id} a subscriber? \`bulwark keys channel get ${SOC_CHANNEL}\`${refused.length === 0 ? '' : `; refused: ${refused.slice(0, 3).join('; ')}`})`, 15_000, async () => found);
  } finally {
    await reader.stop();
  }
}

export const incidentStep: DemoStep = {
  title: 'a burst of violations becomes one High incident: the agent contained, the incident on the SOC stream, its evidence proven in the ledger',
  async run(ctx) {
    const shell = { action: 'invoke', resource: `shell_${ctx.tag}`, classes: ['tool_invocation'], context: { agent: { trust: 0.9, sandboxed: false } } };
    const search = { ...shell, resource: `search_${ctx.tag}` };
    const before = await ctx.agent.policy.evaluate(search, { timeoutMs: 2000 });
    if (before.decision !== 'Allow') fail(`invoke(search_${ctx.tag}) should still be allowed before the burst, got ${before.decision}`);
    for (let i = 0; i < BURST; i++) {
      const d = await ctx.agent.policy.evaluate(shell, { timeoutMs: 2000 });
      if (d.decision !== 'Deny') fail(`request ${i + 1} of the burst should be denied, got ${d.decision}`);
    }
    const t0 = Date.now();
    const contained = await poll(`${ctx.agentId} contained (its allowed request denied)`, 15_000, async () => {
      const d = await ctx.agent.policy.evaluate(search, { timeoutMs: 2000 });
      // Contained either way: the service's policy denies it, or its revoked credentials no longer reach the bus.
      return d.decision === 'Deny' ? d : undefined;
    });
    const containedMs = Date.now() - t0;
    // The incident's actions run side by side and are recorded as each ends: the agent can be
    // contained (its credentials revoked) before the deny policy's outcome is in; a failed attempt
    // is retried, so only a settled outcome (done, or escalated after every attempt) is judged.
    const settled = (i: IncidentView, action: string) => i.actions.some((a) => a.action === action && (a.outcome === 'done' || a.outcome === 'escalated'));
    let seen: IncidentView[] = [];
    const mine = await poll('the incident with its containment and evidence recorded', 30_000, async () => {
      const reply = await callJson<{ incidents: IncidentView[] }>(ctx.admin, Commands.incident.list, {}, 10_000);
      seen = reply.incidents.filter((i) => i.agentId === ctx.agentId);
      return seen.some((i) => settled(i, 'evidence.preserve') && settled(i, 'policy.contain')) ? seen : undefined;
    }).catch((e: unknown) => {
      const actions = seen.flatMap((i) => i.actions.map((a) => `${i.severity} ${a.action} ${a.outcome}${a.detail === '' ? '' : ` (${a.detail})`}`));
      throw new Error(`${(e as Error).message}; recorded so far: ${actions.length === 0 ? 'no action' : actions.join('; ')}`);
    });
    // The earlier steps' rule denials are Low `policy_violation_observed` incidents of the same agent; the burst is the High one.
    const high = mine.filter((i) => i.severity === 'high');
    if (high.length !== 1) fail(`the burst should be one High incident, got ${high.length}: ${mine.map((i) => `${i.severity} ${i.rule}`).join(', ')}`);
    const incident = high[0]!;
    if (incident.rule !== 'policy_deny_burst') fail(`expected the high incident of policy_deny_burst, got ${incident.rule}`);
    const containment = incident.actions.find((a) => a.action === 'policy.contain');
    if (containment?.outcome !== 'done') fail(`the incident's policy containment is ${containment?.outcome ?? 'missing'}, not done${containment === undefined ? '' : `: ${containment.detail}`}`);
    if (incident.evidence.count < BURST) fail(`the incident holds ${incident.evidence.count} evidence events, not the ${BURST} denials`);
    const soc = await socFinding(ctx, incident.id);
    const reply = await callJson<QueryReply>(ctx.admin, Commands.audit.query, { fromSeq: incident.evidence.lastSeq, limit: 1 });
    const last = reply.events.find((e) => e.seq === incident.evidence.lastSeq) ?? fail(`evidence seq ${incident.evidence.lastSeq} is not in the ledger`);
    if (last.agentId !== ctx.agentId || last.eventType !== 'policy.decision') fail(`evidence seq ${last.seq} is ${last.eventType} about ${last.agentId}, not a decision about ${ctx.agentId}`);
    const treeSize = await proveInLedger(ctx.admin, ctx.ledgerKey, last);
    const actions = incident.actions.map((a) => `${a.action} ${a.outcome}`).join(', ');
    return `${BURST} denials → incident ${incident.id} (high, ${incident.evidence.count} evidence events); contained in ${containedMs} ms (${contained.failure === undefined ? `${contained.policy ?? 'policy'}: ${contained.reason}` : `its next call: ${contained.failure}`}); actions: ${actions}; on ${soc.subject} ("${soc.title}"); evidence seq ${last.seq} proven in the tree of size ${treeSize}`;
  },
};
