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
    await serveCommands(serverBus, {
      service: 'policy',
      version: '0.1.0',
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      rejections: reporter(),
      handlers: {
        [Commands.policy.evaluate]: async (req) => {
          if (str(req.body) === 'slow') await new Promise((r) => setTimeout(r, 300));
          return text(`ok:${str(req.body)}`);
        },
      },
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
});
