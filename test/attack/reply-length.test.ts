// Attack: reading decisions off the wire by their length. Replies are encrypted, but unpadded
// their size tells an Allow (the shortest) from a Deny or a conditional allow. DESIGN §3a:
// replies are padded to size buckets, so the policy service's Allow, Deny,
// AllowWithConditions and RequireApproval replies must have the same length on the wire.
//
// A sniffer on the bus (anyone, without per-principal permissions) records the length of every
// reply frame while an agent asks the real policy service the 52 requests of the seed's policy
// table (libs/policy-language/examples), and compares them by decision kind.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createBulwarkClient } from '@bulwark/client';
import { AGENT, harness, provider, silentReporter, type Harness } from '../../services/policy/test/world.js';

const examples = new URL('../../libs/policy-language/examples/', import.meta.url);
const SEED = readFileSync(new URL('seed.policy', examples), 'utf8');
const CASES = (JSON.parse(readFileSync(new URL('seed.test.json', examples), 'utf8')) as { cases: { name: string; request: unknown; expect: { decision: string } }[] }).cases;
const KINDS = ['Allow', 'Deny', 'AllowWithConditions', 'RequireApproval'];

describe('reply lengths on the wire', () => {
  let h: Harness | undefined;
  let sniffer: NatsConnection | undefined;
  afterEach(async () => {
    await sniffer?.close();
    sniffer = undefined;
    await h?.close();
    h = undefined;
  });

  it('are the same for Allow, Deny, AllowWithConditions and RequireApproval decisions', async () => {
    h = await harness();
    // One text per policy, as the ledger carries them.
    for (const [text, name] of SEED.matchAll(/policy\s+(\w+)\s*\{[\s\S]*?\n\}/g)) {
      await h.ledger.commitNew('policy.registered', { name: name!, version: 1, text, file: 'seed.policy' });
    }
    const service = await h.start();
    expect(service.current().policies).toHaveLength(3);

    sniffer = await connect({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222', name: 'sniffer' });
    const replySubjects: string[] = [];
    const replyLengths = new Map<string, number>();
    sniffer.subscribe(h.bus.subject(`bulwark.direct.${service.instanceId}.>`), { callback: (_e, m) => void (m.reply !== undefined && replySubjects.push(m.reply)) });
    sniffer.subscribe('_INBOX.>', { callback: (_e, m) => void replyLengths.set(m.subject, m.data.length) });
    await sniffer.flush();

    const bus = await h.connect(AGENT);
    const agent = createBulwarkClient({ bus, sessions: { provider, self: h.world.identity(AGENT), directory: h.world.directory }, rejections: silentReporter(AGENT), decisionTimeoutMs: 3000 });
    const observed: { kind: string; bytes: number; body: number }[] = [];
    for (const c of CASES) {
      const decision = await agent.policy.evaluate(c.request as Parameters<typeof agent.policy.evaluate>[0]);
      expect(decision.decision, c.name).toBe(c.expect.decision);
      await sniffer.flush();
      const subject = replySubjects.at(-1)!;
      for (let i = 0; i < 50 && !replyLengths.has(subject); i++) await new Promise((r) => setTimeout(r, 10));
      observed.push({ kind: decision.decision, bytes: replyLengths.get(subject)!, body: JSON.stringify(decision).length });
    }
    expect(replySubjects).toHaveLength(CASES.length);

    const byKind = Object.fromEntries(KINDS.map((k) => [k, [...new Set(observed.filter((o) => o.kind === k).map((o) => o.bytes))].sort((a, b) => a - b)]));
    const bodies = Object.fromEntries(KINDS.map((k) => [k, observed.filter((o) => o.kind === k).map((o) => o.body)]));
    console.log(`reply frame bytes by decision: ${JSON.stringify(byKind)}; decision JSON lengths: ${JSON.stringify(Object.fromEntries(KINDS.map((k) => [k, [Math.min(...bodies[k]!), Math.max(...bodies[k]!)]])))}`);
    // The decisions differ in size (so the padding is what makes the frames equal)...
    expect(new Set(KINDS.map((k) => Math.min(...bodies[k]!))).size).toBe(4);
    // ...and every reply of every kind has one frame length, a Deny listing diagnostics included
    // (its reply carries their number instead of them: the ledger keeps them).
    expect(new Set(observed.map((o) => o.bytes)).size).toBe(1);
  });
});
