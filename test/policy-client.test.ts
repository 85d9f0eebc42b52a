// @bulwark/client's enforcement points against the real NATS: the five request shapes
// reach the policy service and come back as typed decisions, and every way of not getting
// a valid decision (service gone, late, malformed or failed reply) is a Deny with a reason.
// Under the configuration `bulwark init` writes (DESIGN §3a): one private nats-server for the
// file, each test's harness on it with its streams reset; every connection is its principal's
// own NATS user (the misbehaving fakes are the policy service's), identities from init's key store.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Commands, serveCommands, type CommandServer } from '@bulwark/bus';
import { createBulwarkClient, permits, type BulwarkClient, type PolicyDecision } from '@bulwark/client';
import { harness as policyHarness, POLICY, provider, silentReporter, type Harness } from '../services/policy/test/world.js';
import { startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const POLICIES = `policy enforcement_points {
    allow: create(research_agent) if agent_creation_quota > 0
    allow: read(customer_db) if resource_access
    allow: route(task_request) if message.to == "agent.b"
    require: gvisor_sandbox for tool_invocation
    allow: invoke(web_search)
    deny: data_operation if data.contains_pii == true
    allow: export(report)
}`;

describe('@bulwark/client enforcement points', () => {
  let b: PrivateBulwark;
  let agent: string;
  let h: Harness | undefined;
  const fakes: CommandServer[] = [];
  beforeAll(async () => {
    b = await startPrivateBulwark();
    agent = await b.addAgent();
  }, 60_000);
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((f) => f.stop()));
    await h?.close();
    h = undefined;
  });
  afterAll(async () => b?.stop());
  const harness = () => policyHarness({ deployment: { of: b, agent } });

  async function agentClient(timeoutMs = 500): Promise<BulwarkClient> {
    const bus = await h!.connect(agent);
    return createBulwarkClient({ bus, sessions: { provider, self: h!.world.identity(agent), directory: h!.world.directory }, rejections: silentReporter(agent), decisionTimeoutMs: timeoutMs });
  }

  /** A policy "service" on the real bus whose evaluate handler misbehaves as told (as the policy service's user: only it may serve the command). */
  async function fakeService(handler: () => Promise<Uint8Array>): Promise<void> {
    const bus = await h!.connect(POLICY, 'fake-policy');
    fakes.push(
      await serveCommands(bus, {
        service: 'policy',
        version: '0.0.1',
        rejections: silentReporter(POLICY),
        sessions: { provider, self: h!.world.identity(POLICY), directory: h!.world.directory },
        handlers: { [Commands.policy.evaluate]: handler },
      }),
    );
  }

  const expectFailureDeny = (d: PolicyDecision, failure: string) => {
    expect(d).toMatchObject({ decision: 'Deny', failure, policy: null, setVersion: null, reason: expect.any(String) });
    expect(permits(d)).toBe(false);
  };

  it('asks the service at each of the five enforcement points and returns typed decisions', async () => {
    h = await harness();
    await h.ledger.commitNew('policy.registered', { name: 'enforcement_points', version: 1, text: POLICIES, file: 'ep.policy' });
    await h.start();
    const client = await agentClient(3000);
    const created = await client.authorize.agentCreation({ agentType: 'research_agent', context: { agent_creation_quota: 2 } });
    expect(created).toMatchObject({ decision: 'Allow', rule: 1 });
    expect(await client.authorize.agentCreation({ agentType: 'research_agent', context: { agent_creation_quota: 0 } })).toMatchObject({ decision: 'Deny' });
    // `resource_access` is the class the enforcement point adds; the condition reads it as a name, so it must be absent from the context.
    expect((await client.authorize.resourceAccess({ action: 'read', resource: 'customer_db', context: { resource_access: true } })).decision).toBe('Allow');
    expect(await client.authorize.messageRouting({ from: agent, to: 'agent.b', messageType: 'task_request' })).toMatchObject({ decision: 'Allow', rule: 3 });
    expect((await client.authorize.messageRouting({ from: agent, to: 'agent.c', messageType: 'task_request' })).decision).toBe('Deny');
    const tool = await client.authorize.toolInvocation({ tool: 'web_search' });
    expect(tool).toMatchObject({ decision: 'AllowWithConditions', conditions: [expect.objectContaining({ name: 'gvisor_sandbox' })] });
    expect(permits(tool)).toBe(true);
    expect(await client.authorize.dataOperation({ operation: 'export', data: 'report', context: { data: { contains_pii: true } } })).toMatchObject({ decision: 'Deny', rule: 6 });
    expect((await client.authorize.dataOperation({ operation: 'export', data: 'report', context: { data: { contains_pii: false } } })).decision).toBe('Allow');
  });

  it('denies with E_BUS_NO_RESPONDERS once the service is stopped', async () => {
    h = await harness();
    const service = await h.start();
    const client = await agentClient();
    expect((await client.authorize.toolInvocation({ tool: 'web_search' })).decision).toBe('Deny');
    await service.stop();
    expectFailureDeny(await client.authorize.toolInvocation({ tool: 'web_search' }), 'E_BUS_NO_RESPONDERS');
    expect(await client.policy.evaluateBatch([{ action: 'a', resource: 'b' }, { action: 'c', resource: 'd' }])).toEqual([
      expect.objectContaining({ decision: 'Deny', failure: 'E_BUS_NO_RESPONDERS' }),
      expect.objectContaining({ decision: 'Deny', failure: 'E_BUS_NO_RESPONDERS' }),
    ]);
  });

  it('denies with E_BUS_TIMEOUT when the answer is late, without waiting much longer than the timeout', async () => {
    h = await harness();
    await fakeService(() => new Promise((resolve) => setTimeout(() => resolve(new TextEncoder().encode('{"decision":"Allow"}')), 5000)));
    const client = await agentClient(300);
    const started = Date.now();
    expectFailureDeny(await client.authorize.resourceAccess({ action: 'read', resource: 'x' }), 'E_BUS_TIMEOUT');
    // One retry on a fresh session (evaluations are idempotent): at most two timeouts and a handshake.
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('denies a malformed reply, an Allow without its rule, and a failed handler', async () => {
    h = await harness();
    const replies = ['not json', '{"decision":"Allow","setVersion":"v"}', '{"decision":"Maybe","setVersion":"v"}', '[]'];
    let i = 0;
    await fakeService(async () => {
      const reply = replies[i++];
      if (reply === undefined) throw new Error('handler crashed');
      return new TextEncoder().encode(reply);
    });
    const client = await agentClient(2000);
    for (let k = 0; k < replies.length; k++) expectFailureDeny(await client.authorize.dataOperation({ operation: 'read', data: 'x' }), 'E_POLICY_REPLY');
    expectFailureDeny(await client.authorize.dataOperation({ operation: 'read', data: 'x' }), 'E_INTERNAL');
  });
});
