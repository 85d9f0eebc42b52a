// A load of evaluations over the bus while policy updates land: every decision names the
// one set version that decided it and equals a fresh evaluation against that version.
// The ledger runtime is stood in for by services/policy/test/world.ts (see there). Under the
// configuration `bulwark init` writes (DESIGN §3a): a private nats-server, each connection its
// principal's own NATS user, identities from init's key store, the directory from KV.
import { afterAll, describe, expect, it } from 'vitest';
import { createBulwarkClient, type PolicyDecision } from '@bulwark/client';
import { compilePolicySources, type PolicySet } from '@bulwark/policy-language';
import { ADMIN, harness, provider, silentReporter, type Harness } from '../services/policy/test/world.js';
import { startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const EVALUATIONS = 5000;
const UPDATES = 20;
const IN_FLIGHT = 250;
const textOf = (v: number) => `policy gate {
    allow: read(doc) if ctx.n >= ${v}
    deny: read(doc) if ctx.n == ${v + 3}
}`;

describe('policy hot swap under load', () => {
  let b: PrivateBulwark | undefined;
  let h: Harness | undefined;
  afterAll(async () => {
    await h?.close();
    await b?.stop();
  });

  it(`decides ${EVALUATIONS} requests while ${UPDATES} updates land, each by exactly one version`, async () => {
    b = await startPrivateBulwark();
    h = await harness({ deployment: { of: b, agent: await b.addAgent() } });
    await h.start({ audit: { maxQueue: 20_000 } });
    const client = async (id: string) =>
      createBulwarkClient({ bus: await h!.connect(id), sessions: { provider, self: h!.world.identity(id), directory: h!.world.directory }, rejections: silentReporter(id), decisionTimeoutMs: 10_000 });
    const admin = await client(ADMIN);
    const agent = await client(h.agent);
    await admin.policyAdmin.register(textOf(1));

    const requests = Array.from({ length: EVALUATIONS }, (_, i) => ({ action: 'read', resource: 'doc', context: { ctx: { n: i % 30 } } }));
    const results: { request: (typeof requests)[number]; decision: PolicyDecision }[] = [];
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const request = requests[next++]!;
        results.push({ request, decision: await agent.policy.evaluate(request) });
      }
    };
    const updates = (async () => {
      for (let v = 2; v <= UPDATES + 1; v++) {
        const reply = await admin.policyAdmin.update(textOf(v));
        expect(reply).toMatchObject({ version: v, applied: true });
      }
    })();
    await Promise.all([...Array.from({ length: IN_FLIGHT }, worker), updates]);

    // Every set version the service could have used: `ledger-<seq>` of each committed change.
    const sets = new Map<string, PolicySet>();
    for (const event of h.ledger.committed) {
      const version = event.details['version'] as number;
      sets.set(`ledger-${event.seq}`, compilePolicySources([{ text: event.details['text'] as string, version }]));
    }
    expect(results).toHaveLength(EVALUATIONS);
    const seen = new Set<string>();
    for (const { request, decision } of results) {
      expect(decision).not.toHaveProperty('failure');
      const set = sets.get(decision.setVersion!);
      expect(set, `unknown set version ${decision.setVersion}`).toBeDefined();
      seen.add(decision.setVersion!);
      const fresh = set!.evaluate(request);
      expect({ decision: decision.decision, policy: decision.policy, version: decision.version, rule: decision.rule }).toEqual({
        decision: fresh.decision,
        policy: fresh.policy,
        version: fresh.version,
        rule: fresh.rule,
      });
    }
    // The load spanned several versions (otherwise this test would prove nothing about swaps).
    expect(seen.size).toBeGreaterThan(3);
  }, 120_000);
});
