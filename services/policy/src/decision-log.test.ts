import { describe, expect, it } from 'vitest';
import { compilePolicySources } from '@bulwark/policy-language';
import type { AuditEvent } from '@bulwark/events';
import { DecisionLog } from './decision-log.js';

const set = compilePolicySources([{ text: 'policy p { allow: read(f) }' }]);
const request = '{"action":"read","resource":"f","context":{"k":"secret"}}';
const decision = set.evaluate(JSON.parse(request));

function log(publish: (id: string, events: readonly AuditEvent[]) => Promise<void>, extra = {}) {
  return new DecisionLog({ publish, mask: (r) => r, lingerMs: 1, retryMs: 10, ...extra });
}

describe('DecisionLog', () => {
  it('publishes queued decisions in batches as policy.decision events', async () => {
    const batches: AuditEvent[][] = [];
    const l = log(async (_id, events) => void batches.push([...events]), { maxBatch: 4 });
    for (let i = 0; i < 10; i++) expect(l.offer('agent.a1', request, decision)).toBe(true);
    await expect.poll(() => batches.flat().length).toBe(10);
    expect(batches.every((b) => b.length <= 4)).toBe(true);
    expect(batches[0]![0]).toMatchObject({ agentId: 'agent.a1', eventType: 'policy.decision', details: { decision: 'Allow', policy: 'p', rule: 1, request: { action: 'read' } } });
    await l.stop();
  });

  it('builds the details of a repeated decision once, and never shares them across peers, requests or decisions', async () => {
    const stored: AuditEvent[] = [];
    let masked = 0;
    const l = log(async (_id, events) => void stored.push(...events), { mask: (r: unknown) => (masked++, r) });
    const other = '{"action":"read","resource":"f","context":{"k":"other"}}';
    const denied = set.denyInvalid('test');
    l.offer('agent.a1', request, decision);
    l.offer('agent.a1', request, decision);
    l.offer('agent.a2', request, decision);
    l.offer('agent.a1', other, decision);
    l.offer('agent.a1', request, denied);
    await expect.poll(() => stored.length).toBe(5);
    const [first, again, peer, otherText, otherDecision] = stored as [AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent];
    expect(again.details).toBe(first.details);
    expect(again.eventId).not.toBe(first.eventId);
    expect(peer.details).toMatchObject({ peer: 'agent.a2' });
    expect(otherText.details).toMatchObject({ request: { context: { k: 'other' } } });
    expect(otherDecision.details).toMatchObject({ decision: 'Deny', reason: 'invalid request: test' });
    expect(masked).toBe(4);
    await l.stop();
  });

  it('builds a large batch in slices, in order, and stop() waits for a batch being built', async () => {
    const batches: AuditEvent[][] = [];
    const l = log(async (_id, events) => void batches.push([...events]), { lingerMs: 0 });
    const peers = Array.from({ length: 50 }, (_, i) => `agent.p${i}`);
    for (const peer of peers) expect(l.offer(peer, request, decision)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 0)); // the flush starts, and yields between slices
    expect(l.offer('agent.late', request, decision)).toBe(true);
    await l.stop();
    expect(batches.flat().map((e) => e.agentId)).toEqual([...peers, 'agent.late']);
    expect(l.metrics()).toMatchObject({ queued: 0, recorded: 51 });
  });

  it('refuses new decisions while the ledger fails, retries the same batch id, and accepts again after', async () => {
    let fail = true;
    const ids: string[] = [];
    const stored: AuditEvent[] = [];
    const l = log(async (id, events) => {
      ids.push(id);
      if (fail) throw new Error('ledger unreachable');
      stored.push(...events);
    });
    expect(l.offer('agent.a1', request, decision)).toBe(true);
    await expect.poll(() => l.metrics().failing).toBe(true);
    expect(l.offer('agent.a1', request, decision)).toBe(false);
    expect(l.metrics().refused).toBe(1);
    await expect.poll(() => ids.length).toBeGreaterThan(1);
    expect(new Set(ids).size).toBe(1);
    fail = false;
    await expect.poll(() => stored.length).toBe(1);
    expect(l.accepting).toBe(true);
    expect(l.offer('agent.a1', request, decision)).toBe(true);
    await l.stop();
    expect(stored).toHaveLength(2);
  });

  it('adds a policy.violation event for a Deny decided by a policy rule, not for the default deny', async () => {
    const stored: AuditEvent[] = [];
    const l = log(async (_id, events) => void stored.push(...events));
    const strict = compilePolicySources([{ text: 'policy p { deny: read(f) }' }]);
    l.offer('agent.a1', request, strict.evaluate(JSON.parse(request)));
    l.offer('agent.a1', '{"action":"write","resource":"g"}', strict.evaluate({ action: 'write', resource: 'g' }));
    await expect.poll(() => stored.length).toBe(3);
    expect(stored.map((e) => e.eventType)).toEqual(['policy.decision', 'policy.violation', 'policy.decision']);
    expect(stored[1]!.details).toMatchObject({ decisionEventId: stored[0]!.eventId, policy: 'p', rule: 1, peer: 'agent.a1' });
    await l.stop();
  });

  it('refuses when the queue is full', async () => {
    const l = log(() => new Promise(() => undefined), { maxQueue: 3, lingerMs: 10_000 });
    expect([1, 2, 3, 4].map(() => l.offer('agent.a1', request, decision))).toEqual([true, true, true, false]);
    await l.stop(10);
    expect(l.offer('agent.a1', request, decision)).toBe(false);
  });

  it('logs an unreadable or oversized request by size only, and a non-principal peer under the service id', async () => {
    const stored: AuditEvent[] = [];
    const l = log(async (_id, events) => void stored.push(...events));
    l.offer('agent.a1', 'not json', decision);
    l.offer('agent.a1', JSON.stringify({ big: 'x'.repeat(20_000) }), decision);
    l.offer('not a principal', request, decision);
    await expect.poll(() => stored.length).toBe(3);
    expect(stored[0]!.details['request']).toMatchObject({ omitted: 'request is not JSON' });
    expect(stored[1]!.details['request']).toMatchObject({ omitted: 'request too large' });
    expect(stored[2]).toMatchObject({ agentId: 'svc.policy', details: { peer: 'not a principal' } });
    await l.stop();
  });
});
