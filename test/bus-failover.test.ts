// An agent keeps calling the policy service while the instance holding its session is
// shut down under it (gracefully, then by SIGKILL of its process): idempotent calls all
// succeed, moving to the surviving instance.
import { afterAll, describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { CommandClient, Commands, connectBus, RejectionReporter, serveCommands, ServicePrincipals, uniqueNamespace, type Bus, type CommandServer } from '@bulwark/bus';

import { killChild, provider as sharedProvider, sharedWorld, spawnChild, type RunningChild } from './attack-children.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const provider = createCryptoProvider('node');

describe('policy calls across an instance shutdown', () => {
  const buses: Bus[] = [];
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
  });

  it('keeps answering every idempotent call while the session instance goes away', async () => {
    const ns = uniqueNamespace('failover');
    const w = testWorld({ provider, ids: [ServicePrincipals.policy, 'agent.a1'] });
    const silent = () => new RejectionReporter({ reporter: 'test', publish: async () => undefined });
    const servers: CommandServer[] = [];
    for (const i of [1, 2]) {
      const bus = await connectBus({ url: NATS_URL, name: `policy-${i}`, namespace: ns });
      buses.push(bus);
      const server = await serveCommands(bus, {
        service: 'policy',
        version: '1.0.0',
        sessions: { provider, self: w.identity(ServicePrincipals.policy), directory: w.directory },
        rejections: silent(),
        handlers: { [Commands.policy.evaluate]: async (req) => new TextEncoder().encode(`${server.instanceId}:${new TextDecoder().decode(req.body)}`) },
      });
      servers.push(server);
    }
    const agentBus = await connectBus({ url: NATS_URL, name: 'agent', namespace: ns });
    buses.push(agentBus);
    const client = new CommandClient(agentBus, { sessions: { provider, self: w.identity('agent.a1'), directory: w.directory }, rejections: silent() });

    const answeredBy: string[] = [];
    let closing: Promise<void> | undefined;
    for (let i = 0; i < 120; i++) {
      if (i === 40) {
        const holder = await client.instanceOf('policy');
        closing = buses[servers.findIndex((s) => s.instanceId === holder)]!.close(); // not awaited: calls continue meanwhile
      }
      const reply = new TextDecoder().decode(await client.request(Commands.policy.evaluate, new TextEncoder().encode(String(i)), { idempotent: true, timeoutMs: 1000 }));
      const [instance, echoed] = reply.split(':');
      expect(echoed).toBe(String(i));
      answeredBy.push(instance!);
    }
    await closing;
    const first = answeredBy[0]!;
    const other = servers.map((s) => s.instanceId).find((id) => id !== first)!;
    expect(answeredBy.slice(0, 40).every((id) => id === first)).toBe(true);
    expect(answeredBy.slice(-40).every((id) => id === other)).toBe(true);
  });
});

describe('policy calls across an instance SIGKILLed mid-session', () => {
  let child: RunningChild | undefined;
  const buses: Bus[] = [];
  afterAll(async () => {
    await killChild(child);
    await Promise.all(buses.map((b) => b.close()));
  });

  it('keeps answering every idempotent call once the process holding the session is killed', { timeout: 60_000 }, async () => {
    const ns = uniqueNamespace('kill');
    const w = sharedWorld([ServicePrincipals.policy, 'agent.a1']);
    const silent = () => new RejectionReporter({ reporter: 'test', publish: async () => undefined });
    // The instance in the child process starts alone, so the session is established with it.
    child = await spawnChild('rpc-server', { natsUrl: NATS_URL, namespace: ns, ...w.childKeys(ServicePrincipals.policy) });
    const agentBus = await connectBus({ url: NATS_URL, name: 'agent', namespace: ns });
    buses.push(agentBus);
    const client = new CommandClient(agentBus, { sessions: { provider: sharedProvider, self: w.identity('agent.a1'), directory: w.directory }, rejections: silent() });
    const call = async (i: number) => {
      const reply = new TextDecoder().decode(await client.request(Commands.policy.evaluate, new TextEncoder().encode(String(i)), { idempotent: true, timeoutMs: 1000 }));
      const [instance, echoed] = reply.split(':');
      expect(echoed).toBe(String(i));
      return instance!;
    };
    expect(await call(0)).toBe(child.id);

    const survivorBus = await connectBus({ url: NATS_URL, name: 'policy-survivor', namespace: ns });
    buses.push(survivorBus);
    const survivor = await serveCommands(survivorBus, {
      service: 'policy',
      version: '1.0.0',
      sessions: { provider: sharedProvider, self: w.identity(ServicePrincipals.policy), directory: w.directory },
      rejections: silent(),
      handlers: { [Commands.policy.evaluate]: async (req) => new TextEncoder().encode(`${survivor.instanceId}:${new TextDecoder().decode(req.body)}`) },
    });

    const answeredBy: string[] = [];
    for (let i = 1; i <= 80; i++) {
      if (i === 30) {
        child.process.kill('SIGKILL'); // mid-session: no drain, no goodbye
        expect(await child.exited).toBe('SIGKILL');
      }
      answeredBy.push(await call(i));
    }
    expect(answeredBy.slice(0, 29).every((id) => id === child!.id)).toBe(true);
    expect(answeredBy.slice(29).every((id) => id === survivor.instanceId)).toBe(true);
    expect(await client.instanceOf('policy')).toBe(survivor.instanceId);
  });
});
