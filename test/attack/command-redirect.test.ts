// Attack: a request frame taken off the bus and republished to another command of the same
// session's instance. Session requests go to `bulwark.direct.<instance>.<command>`, and the
// session's keys open a frame whatever subject it came on, so unless the frame binds its
// command (DESIGN §3a "Requests bind their command"), an `evaluate` frame moved to
// `admin.list` runs there, with its sender's authority.
//
// The attacker takes the frame by joining the instance's queue group on its direct subject (on
// a bus without per-principal permissions anyone can), so the instance never sees the original
// and the frame's counter is fresh when the attacker republishes it.
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { createCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { CommandClient, Commands, connectBus, directSubject, RejectionReporter, removeNamespaceStreams, serveCommands, ServicePrincipals, uniqueNamespace, type Bus, type CommandSubject } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { ADMIN, harness, provider as policyProvider, silentReporter, type Harness } from '../../services/policy/test/world.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const provider = createCryptoProvider();
const POLICY = ServicePrincipals.policy;
const text = (s: string) => new TextEncoder().encode(s);

/**
 * Joins the queue group of `instance`'s direct subjects and keeps the first request frame sent
 * on `command` that it wins; `send` makes one honest request each time it is called.
 */
async function steal(attacker: NatsConnection, bus: Bus, instance: string, command: CommandSubject, send: () => Promise<unknown>): Promise<Msg> {
  let stolen: Msg | undefined;
  const sub = attacker.subscribe(bus.subject(directSubject(instance, command)), { queue: instance, callback: (_e, m) => void (stolen ??= m) });
  await attacker.flush();
  try {
    for (let i = 0; i < 40 && stolen === undefined; i++) await send().catch(() => undefined);
  } finally {
    sub.unsubscribe();
    await attacker.flush();
  }
  if (stolen === undefined) throw new Error('the attacker never won a request frame');
  return stolen;
}

describe('a request frame moved to another command', () => {
  const buses: Bus[] = [];
  let attacker: NatsConnection | undefined;
  let h: Harness | undefined;
  afterEach(async () => {
    await attacker?.close();
    attacker = undefined;
    await h?.close();
    h = undefined;
    for (const b of buses.splice(0)) {
      await removeNamespaceStreams(b).catch(() => undefined);
      await b.close();
    }
  });

  it('is refused on any other command subject of the instance, and reported as E_BUS_COMMAND_MISMATCH', async () => {
    const ns = uniqueNamespace('redirect');
    const world = testWorld({ provider, ids: [POLICY, 'agent.a1'] });
    const serverBus = await connectBus({ url: NATS_URL, name: 'policy', namespace: ns });
    const clientBus = await connectBus({ url: NATS_URL, name: 'agent', namespace: ns });
    buses.push(serverBus, clientBus);
    const ran: string[] = [];
    const rejections = new RejectionReporter({ reporter: POLICY, publish: async () => undefined });
    const handler = (name: string) => async () => {
      ran.push(name);
      return text(name);
    };
    const server = await serveCommands(serverBus, {
      service: 'policy',
      version: '1.0.0',
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      rejections,
      handlers: {
        [Commands.policy.evaluate]: handler('evaluate'),
        [Commands.policy.evaluateBatch]: handler('evaluate.batch'),
        [Commands.policy.adminList]: handler('admin.list'),
      },
    });
    const client = new CommandClient(clientBus, { sessions: { provider, self: world.identity('agent.a1'), directory: world.directory }, rejections: silentReporter('agent.a1') });
    expect(new TextDecoder().decode(await client.request(Commands.policy.evaluate, text('{}')))).toBe('evaluate');
    attacker = await connect({ servers: NATS_URL, name: 'attacker' });
    const stolen = await steal(attacker, serverBus, server.instanceId, Commands.policy.evaluate, () => client.request(Commands.policy.evaluate, text('{}'), { timeoutMs: 300 }));
    ran.length = 0;

    for (const target of [Commands.policy.adminList, Commands.policy.evaluateBatch]) {
      const answer = await attacker.request(serverBus.subject(directSubject(server.instanceId, target)), stolen.data, { timeout: 800 }).catch((e: unknown) => e);
      expect(answer, `a frame sealed for evaluate answered on ${target}`).toBeInstanceOf(Error);
    }
    expect(ran).toEqual([]);
    expect(rejections.metrics().rejectedByReason['E_BUS_COMMAND_MISMATCH']).toBe(1);
    // The second move is a replay of a counter the instance has seen by then.
    expect(rejections.metrics().rejectedByReason['E_REPLAY']).toBe(1);
    await server.stop();
  });

  it('does not run the policy service\'s admin.list with an administrator\'s evaluate frame', async () => {
    h = await harness();
    const service = await h.start();
    const bus = await h.connect(ADMIN);
    const admin = createBulwarkClient({ bus, sessions: { provider: policyProvider, self: h.world.identity(ADMIN), directory: h.world.directory }, rejections: silentReporter(ADMIN), decisionTimeoutMs: 300 });
    await admin.policy.evaluate({ action: 'read', resource: 'x', context: {} });
    attacker = await connect({ servers: NATS_URL, name: 'attacker' });
    const stolen = await steal(attacker, bus, service.instanceId, Commands.policy.evaluate, () => admin.policy.evaluate({ action: 'read', resource: 'x', context: {} }));
    const moved = await attacker.request(bus.subject(directSubject(service.instanceId, Commands.policy.adminList)), stolen.data, { timeout: 800 }).catch((e: unknown) => e);
    expect(moved, 'the admin.list handler answered a frame sealed for evaluate').toBeInstanceOf(Error);
  });
});
