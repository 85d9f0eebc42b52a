// Strict mode (`policy_enforcement_mode = "strict"`, the default): a decision is denied while
// the ledger has not committed this service's earlier decisions for longer than
// `max_ledger_lag_ms`, not only when JetStream refuses them. The ledger stand-in of world.ts
// plays the ledger; stopping it stops the commits (its durable's ack floor stays put).
import { afterEach, describe, expect, it } from 'vitest';
import { Events } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { ledgerAckFloor } from '../src/index.js';
import { AGENT, harness, provider, serviceStats, silentReporter, type Harness } from './world.js';

const SEED = `policy reads {
    allow: read(reports)
}`;
const READ = { action: 'read', resource: 'reports' };
const LAG_MS = 1000;

async function clientFor(h: Harness, id: string): Promise<BulwarkClient> {
  const bus = await h.connect(id);
  return createBulwarkClient({ bus, sessions: { provider, self: h.world.identity(id), directory: h.world.directory }, rejections: silentReporter(id), decisionTimeoutMs: 3000 });
}

describe('policy service, strict mode: the ledger must keep up', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('denies with the lag as the reason once the ledger has not committed decisions for max_ledger_lag_ms, and allows again once it has', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'reads', version: 1, text: SEED, file: 'seed.policy' });
    const seen: string[] = [];
    const service = await h.start({ audit: { mode: 'strict', maxLedgerLagMs: LAG_MS, lingerMs: 5 }, onDecision: (d) => void seen.push(d.decision) });
    const alerts = await h.watchEvents(Events.alert.raised);
    const agent = await clientFor(h, AGENT);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    // That decision is published and committed: nothing is outstanding before the ledger stops.
    const settled = () => {
      const a = service.metrics().audit;
      return a.recorded >= 1 && a.queued === 0 && a.uncommittedBatches === 0;
    };
    await expect.poll(settled, { timeout: 5000 }).toBe(true);

    await h.ledger.stop();
    const stoppedAt = Date.now();
    // Decided and published to BULWARK_EVENTS (JetStream accepts it), but nobody commits it.
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    await expect.poll(async () => (await agent.policy.evaluate(READ)).decision, { timeout: 5000, interval: 100 }).toBe('Deny');
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(LAG_MS);
    const denied = await agent.policy.evaluate(READ);
    expect(denied).toMatchObject({ decision: 'Deny', reason: expect.stringMatching(/audit ledger lag: the ledger has not committed this service's decisions for \d+ ms \(policy.max_ledger_lag_ms = 1000\); denied in strict mode/) });
    expect(service.metrics().audit).toMatchObject({ condition: 'ledger_lag', failing: false });
    expect(service.notReady()).toMatch(/audit ledger lag/);
    await expect.poll(async () => (await serviceStats(service.instanceId)).ready, { timeout: 5000, interval: 200 }).toBe(false);
    expect((await serviceStats(service.instanceId)).reason).toMatch(/audit ledger lag/);
    await expect.poll(() => service.metrics().audit.alerts.recorded, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    await expect.poll(() => alerts.length, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    expect(alerts[0]).toMatchObject({ eventType: 'alert.raised', agentId: 'svc.policy', details: { kind: 'policy.ledger_lag', maxLedgerLagMs: LAG_MS, mode: 'strict' } });

    // Metrics see the lag denies like any decision.
    expect(seen).toContain('Deny');
    expect(seen.length).toBe(service.metrics().decisions);
    await h.ledger.start();
    await expect.poll(async () => (await agent.policy.evaluate(READ)).decision, { timeout: 10_000, interval: 100 }).toBe('Allow');
    await expect.poll(() => service.notReady(), { timeout: 5000 }).toBeUndefined();
  }, 40_000);

  it('in permissive mode reports the lag (readiness, alert) but keeps deciding', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'reads', version: 1, text: SEED, file: 'seed.policy' });
    const service = await h.start({ audit: { mode: 'permissive', maxLedgerLagMs: LAG_MS, lingerMs: 5 } });
    const agent = await clientFor(h, AGENT);
    await h.ledger.stop();
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    await expect.poll(() => service.notReady(), { timeout: 5000 }).toMatch(/audit ledger lag: .*reported only \(permissive mode\)/);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    await expect.poll(() => service.metrics().audit.alerts.raised, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('counts decisions as uncommitted when it cannot tell what the ledger committed (no ledger durable)', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'reads', version: 1, text: SEED, file: 'seed.policy' });
    // The default signal: the durable of the real ledger, which this namespace does not have.
    const own = await h.connect('policy-default-signal');
    const service = await h.start({ audit: { maxLedgerLagMs: LAG_MS, lingerMs: 5, commitSignal: ledgerAckFloor(own) } });
    const agent = await clientFor(h, AGENT);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    await expect
      .poll(
        async () => {
          const d = await agent.policy.evaluate(READ);
          return d.decision === 'Deny' ? d.reason : d.decision;
        },
        { timeout: 5000, interval: 100 },
      )
      .toMatch(/audit ledger lag/);
    expect(service.metrics().audit.uncommittedBatches).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
