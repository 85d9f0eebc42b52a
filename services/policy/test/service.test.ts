// The policy service against the real NATS, with the ledger stand-in of world.ts (the
// ledger runtime's part of the contract: commit, chain, sign, re-publish on BULWARK_LEDGER).
import { afterEach, describe, expect, it } from 'vitest';
import { ensureStreams, removeNamespaceStreams } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { compilePolicySources } from '@bulwark/policy-language';
import { ADMIN, AGENT, harness, provider, silentReporter, type Harness } from './world.js';

const SEED = `policy secure_data_access {
    allow: read(sensitive_data) if (user.clearance >= "secret" && session.mfa_verified == true)
    deny: export(data) if data.contains_pii == true
}`;
const V2 = `policy secure_data_access {
    allow: read(sensitive_data) if user.clearance >= "top_secret"
}`;
const READ = { action: 'read', resource: 'sensitive_data', context: { user: { clearance: 'secret', ssn: '123-45-6789' }, session: { mfa_verified: true } } };

async function clientFor(h: Harness, id: string): Promise<BulwarkClient> {
  const bus = await h.connect(id);
  return createBulwarkClient({ bus, sessions: { provider, self: h.world.identity(id), directory: h.world.directory }, rejections: silentReporter(id), decisionTimeoutMs: 3000 });
}

describe('policy service', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('rebuilds its policies on boot by replaying committed events from the ledger stream', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
    await h.ledger.commitNew('policy.updated', { name: 'secure_data_access', version: 2, text: V2, file: 'seed.policy' });
    const last = await h.ledger.commitNew('policy.rolledback', { name: 'secure_data_access', version: 1, fromVersion: 2, text: SEED, file: 'seed.policy' });
    // Decisions share the stream (one filter on NATS 2.9): passed over by subject, not counted as skipped.
    await h.ledger.commitNew('policy.decision', { decision: 'Allow', policy: 'secure_data_access', version: 1 });
    // Not the next version: committed, but the projection must skip it.
    await h.ledger.commitNew('policy.updated', { name: 'secure_data_access', version: 7, text: V2, file: 'seed.policy' });
    const service = await h.start();
    expect(service.current().version).toBe(`ledger-${last.seq}`);
    expect(service.current().policies).toEqual([expect.objectContaining({ name: 'secure_data_access', version: 1 })]);
    expect(service.metrics().skippedEvents).toBe(1);
    const agent = await clientFor(h, AGENT);
    const decision = await agent.policy.evaluate(READ);
    expect(decision).toMatchObject({ decision: 'Allow', policy: 'secure_data_access', version: 1, setVersion: `ledger-${last.seq}` });
  });

  it('stops applying and denies everything when a ledger-stream event\'s signature does not verify', async () => {
    h = await harness();
    const forged = await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
    // The same bytes, but checked against another ledger key: every event fails the signature check.
    const service = await h.start({ ledgerPublicKey: provider.ed25519.generateKeyPair().publicKey });
    expect(forged.seq).toBe(0);
    expect(service.current().version).toBe('halted-ledger-0');
    expect(service.current().policies.map((p) => p.name)).toEqual(['ledger_reader_halted']);
    const agent = await clientFor(h, AGENT);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Deny', policy: 'ledger_reader_halted', setVersion: 'halted-ledger-0' });
    // Nothing is applied after the halt, not even a correctly signed change.
    await h.ledger.commitNew('policy.updated', { name: 'secure_data_access', version: 2, text: V2, file: 'seed.policy' });
    await new Promise((r) => setTimeout(r, 300));
    expect(service.current().version).toBe('halted-ledger-0');
  });

  it('registers, updates, lists and rolls back through the ledger, swapping the set each time', async () => {
    h = await harness();
    const service = await h.start();
    const admin = await clientFor(h, ADMIN);
    const agent = await clientFor(h, AGENT);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Deny', policy: null });

    const registered = await admin.policyAdmin.register(SEED, 'seed.policy');
    expect(registered).toMatchObject({ name: 'secure_data_access', version: 1, applied: true });
    expect(h.ledger.committed.map((e) => e.eventType)).toEqual(['policy.registered']);
    expect(h.ledger.committed[0]!.details).toMatchObject({ name: 'secure_data_access', version: 1, text: SEED, by: ADMIN });
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow', version: 1, setVersion: registered.setVersion });

    const updated = await admin.policyAdmin.update(V2, 'seed.policy');
    expect(updated).toMatchObject({ version: 2, applied: true });
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Deny', setVersion: updated.setVersion });

    expect(await admin.policyAdmin.list()).toEqual({
      setVersion: updated.setVersion,
      policies: [{ name: 'secure_data_access', activeVersion: 2, versions: [1, 2], file: 'seed.policy', rules: 1 }],
    });
    const rolled = await admin.policyAdmin.rollback('secure_data_access', 1);
    expect(rolled).toMatchObject({ version: 1, applied: true });
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow', version: 1, setVersion: rolled.setVersion });
    expect(service.metrics().swaps).toBe(3);

    // A second instance booting now rebuilds the same state from the ledger alone.
    const second = await h.start();
    expect(second.current().digest).toBe(service.current().digest);
    expect(second.current().version).toBe(service.current().version);
  });

  it('refuses admin commands from a principal that is not an administrator, and bad policy text', async () => {
    h = await harness();
    await h.start();
    const agent = await clientFor(h, AGENT);
    await expect(agent.policyAdmin.register(SEED)).rejects.toMatchObject({ code: 'E_POLICY_FORBIDDEN' });
    const admin = await clientFor(h, ADMIN);
    await expect(admin.policyAdmin.register('policy broken { allow: }')).rejects.toMatchObject({ code: 'E_POLICY_TEXT' });
    await expect(admin.policyAdmin.update(SEED)).rejects.toMatchObject({ code: 'E_POLICY_UNKNOWN' });
    await admin.policyAdmin.register(SEED);
    await expect(admin.policyAdmin.register(SEED)).rejects.toMatchObject({ code: 'E_POLICY_EXISTS' });
    await expect(admin.policyAdmin.rollback('secure_data_access', 4)).rejects.toMatchObject({ code: 'E_POLICY_VERSION' });
    expect(h.ledger.committed).toHaveLength(1);
  });

  it('records every decision as a policy.decision event in batches, with configured fields masked', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
    const service = await h.start({ audit: { maskedFields: ['context.user.ssn'], lingerMs: 5 } });
    const agent = await clientFor(h, AGENT);
    const decisions = await agent.policy.evaluateBatch(Array.from({ length: 20 }, () => READ));
    expect(decisions.every((d) => d.decision === 'Allow')).toBe(true);
    await agent.policy.evaluate({ ...READ, action: 'export', resource: 'data', context: { data: { contains_pii: true } } });
    // 21 decisions, and a policy.violation for the one denied by a deny rule.
    await expect.poll(() => h!.ledger.decisions.length, { timeout: 5000 }).toBe(22);
    const first = h.ledger.decisions[0]!;
    expect(first).toMatchObject({ agentId: AGENT, eventType: 'policy.decision' });
    expect(first.details).toMatchObject({ decision: 'Allow', policy: 'secure_data_access', version: 1, rule: 1, setVersion: service.current().version, peer: AGENT });
    expect((first.details['request'] as { context: { user: { ssn: string; clearance: string } } }).context.user).toEqual({ ssn: '***', clearance: 'secret' });
    expect(h.ledger.decisions[20]!.details).toMatchObject({ decision: 'Deny', rule: 2, reason: expect.any(String) });
    expect(h.ledger.decisions[21]).toMatchObject({ eventType: 'policy.violation', details: { decisionEventId: h.ledger.decisions[20]!.eventId, rule: 2 } });
    expect(service.metrics().audit.batches).toBeLessThan(21);
  });

  it('denies new requests while decisions cannot be recorded, and allows again once they can (audit_enabled)', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
    const service = await h.start({ audit: { maxQueue: 5, lingerMs: 1000 } });
    const agent = await clientFor(h, AGENT);
    // The linger holds the first five in the queue; the sixth finds it full.
    const decisions = await Promise.all(Array.from({ length: 6 }, () => agent.policy.evaluate(READ)));
    expect(decisions.filter((d) => d.decision === 'Allow')).toHaveLength(5);
    expect(decisions.find((d) => d.decision === 'Deny')).toMatchObject({ reason: expect.stringMatching(/audit log unavailable/) });
    await expect.poll(() => service.metrics().audit.queued, { timeout: 5000 }).toBe(0);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    expect(service.metrics().audit.refused).toBe(1);
  });

  it('denies while the events stream is unreachable, and decides again once it is back', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
    const service = await h.start({ audit: { lingerMs: 1 } });
    const agent = await clientFor(h, AGENT);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    // The stream the decision events go to disappears: publishes are no longer acknowledged.
    await removeNamespaceStreams(h.bus);
    await agent.policy.evaluate(READ);
    await expect.poll(() => service.metrics().audit.failing, { timeout: 10_000 }).toBe(true);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Deny', reason: expect.stringMatching(/audit log unavailable/) });
    await ensureStreams(h.bus);
    await expect.poll(() => service.metrics().audit.failing, { timeout: 15_000 }).toBe(false);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    expect(service.metrics().audit.refused).toBeGreaterThanOrEqual(1);
  }, 40_000);

  it('decides against a set compiled from the same text exactly as the language does', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
    await h.start({ audit: { enabled: false } });
    const agent = await clientFor(h, AGENT);
    const reference = compilePolicySources([{ text: SEED, file: 'seed.policy' }]);
    const requests = [READ, { ...READ, context: { user: { clearance: 'public' } } }, { action: 'export', resource: 'data', context: { data: { contains_pii: true } } }, { action: 7 }];
    for (const request of requests) {
      const got = await agent.policy.evaluate(request as never);
      const want = reference.evaluate(request);
      expect({ decision: got.decision, rule: got.rule }).toEqual({ decision: want.decision, rule: want.rule });
    }
  });
});
