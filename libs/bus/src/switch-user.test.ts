// Bus.switchUser against the shared NATS (which accepts any credentials): a connection made a
// moment ago reconnects only after the client's reconnect wait (~1 s), which leaves room to see
// what happens to requests in flight and requests made meanwhile.
import { createUser } from '@nats-io/nkeys';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { connectBus, type Bus } from './connect.js';
import { uniqueNamespace } from './namespace.js';
import { RejectionReporter } from './rejections.js';
import { CommandClient } from './rpc-client.js';
import { serveCommands } from './rpc-server.js';
import { Commands, ServicePrincipals } from './subjects.js';
import { cleanUp, NATS_URL, testBus } from './bus.testing.js';

const provider = defaultCryptoProvider();
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const reporter = () => new RejectionReporter({ reporter: 'svc.test', publish: async () => undefined });
const POLICY = ServicePrincipals.policy;
const SCHEMAPIN = ServicePrincipals.tools;

/** The policy service's evaluate on `bus`, answering `ok:<body>` once `before` (if any) returned. */
function servePolicy(bus: Bus, world: ReturnType<typeof testWorld>, before: (body: string) => Promise<void> | void) {
  return serveCommands(bus, {
    service: 'policy',
    version: '0.1.0',
    sessions: { provider, self: world.identity(POLICY), directory: world.directory },
    rejections: reporter(),
    handlers: {
      [Commands.policy.evaluate]: async (req) => {
        await before(str(req.body));
        return text(`ok:${str(req.body)}`);
      },
    },
  });
}

describe('Bus.switchUser', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  it('lets a request in flight get its answer and holds a request made during the switch until it is back', async () => {
    const ns = uniqueNamespace();
    const world = testWorld({ ids: [POLICY, 'agent.a1'] });
    const serverBus = await testBus('policy-slow', ns);
    buses.push(serverBus);
    await servePolicy(serverBus, world, async (body) => {
      if (body === 'slow') await new Promise((r) => setTimeout(r, 300));
    });
    const user = createUser();
    const bus = await connectBus({ url: NATS_URL, name: 'agent-switching', namespace: ns, credentials: { jwt: 'e30.e30.sig', seed: user.getSeed() } });
    buses.push(bus);
    const client = new CommandClient(bus, { sessions: { provider, self: world.identity('agent.a1'), directory: world.directory }, rejections: reporter() });
    expect(str(await client.request(Commands.policy.evaluate, text('warm')))).toBe('ok:warm');

    const inFlight = client.request(Commands.policy.evaluate, text('slow'), { timeoutMs: 2000 }).then(str, (e: unknown) => e);
    await new Promise((r) => setTimeout(r, 20));
    const other = createUser();
    const switched = bus.switchUser({ jwt: 'e30.e30.sig', seed: other.getSeed() });
    await new Promise((r) => setTimeout(r, 20));
    const started = performance.now();
    // 800 ms: shorter than the reconnect (~1 s), so it can only succeed if it was held, not sent.
    const during = client.request(Commands.policy.evaluate, text('during'), { timeoutMs: 800 }).then(str, (e: unknown) => e);
    expect(await inFlight).toBe('ok:slow');
    expect(await during).toBe('ok:during');
    await switched;
    expect(bus.isConnected()).toBe(true);
    expect(performance.now() - started).toBeGreaterThan(500);
  });

  it('refuses a request that arrives while it switches, unrun, and the client sends it again once it is back (never run into the reconnect)', async () => {
    const ns = uniqueNamespace();
    const world = testWorld({ ids: [POLICY, SCHEMAPIN, 'agent.a1'] });
    // Another service the switching one calls: slow, so the switch waits (holding) for that call.
    const otherBus = await testBus('schemapin-slow', ns);
    buses.push(otherBus);
    await serveCommands(otherBus, {
      service: 'tools',
      version: '0.1.0',
      sessions: { provider, self: world.identity(SCHEMAPIN), directory: world.directory },
      rejections: reporter(),
      handlers: { [Commands.tools.verify]: async () => (await new Promise((r) => setTimeout(r, 600)), text('verified')) },
    });
    const serverBus = await connectBus({ url: NATS_URL, name: 'policy-switching', namespace: ns, credentials: { jwt: 'e30.e30.sig', seed: createUser().getSeed() } });
    buses.push(serverBus);
    let switched = false;
    const ran: { body: string; switched: boolean }[] = [];
    await servePolicy(serverBus, world, (body) => void ran.push({ body, switched }));
    const own = new CommandClient(serverBus, { sessions: { provider, self: world.identity(POLICY), directory: world.directory }, rejections: reporter() });
    expect(str(await own.request(Commands.tools.verify, text('warm'), { timeoutMs: 2000 }))).toBe('verified');
    const agentBus = await testBus('agent', ns);
    buses.push(agentBus);
    const agent = new CommandClient(agentBus, { sessions: { provider, self: world.identity('agent.a1'), directory: world.directory }, rejections: reporter() });
    expect(str(await agent.request(Commands.policy.evaluate, text('warm')))).toBe('ok:warm');

    const ownCall = own.request(Commands.tools.verify, text('slow'), { timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 20));
    const switching = serverBus.switchUser({ jwt: 'e30.e30.sig', seed: createUser().getSeed() }).then(() => void (switched = true));
    await new Promise((r) => setTimeout(r, 100));
    // Arrives while the switch waits for its own call: answered, but only once it is back as the new user.
    // A call whose timeout is shorter than the switch still gets its answer: the refusal gives it SWITCHING_GRACE_MS.
    const [during, short] = await Promise.all([
      agent.request(Commands.policy.evaluate, text('during'), { timeoutMs: 5000 }).then(str, (e: unknown) => e),
      agent.request(Commands.policy.evaluate, text('short'), { timeoutMs: 150 }).then(str, (e: unknown) => e),
    ]);
    expect(during).toBe('ok:during');
    expect(short).toBe('ok:short');
    expect(str(await ownCall)).toBe('verified');
    await switching;
    expect(ran.filter((r) => r.body === 'during' || r.body === 'short')).toEqual(expect.arrayContaining([{ body: 'during', switched: true }, { body: 'short', switched: true }]));
    expect(str(await agent.request(Commands.policy.evaluate, text('after')))).toBe('ok:after');
  });
});
