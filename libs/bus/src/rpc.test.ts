import { afterEach, describe, expect, it } from 'vitest';
import { Svcm } from '@nats-io/services';
import type { Bus } from './connect.js';
import { BusRequestError, BusTimeoutError, BusUnavailableError } from './errors.js';
import { headersCarrier, Headers } from './headers.js';
import { OpaqueSessions } from './internal/opaque-codec.testing.js';
import { uniqueNamespace } from './namespace.js';
import { RejectionReporter, type RejectionEvent } from './rejections.js';
import { CommandClient } from './rpc-client.js';
import { kindHeaders, serveCommands, type CommandServer } from './rpc-server.js';
import { Commands, directSubject } from './subjects.js';
import { cleanUp, eventually, testBus } from './bus.testing.js';

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const reporter = (events: RejectionEvent[] = []) => new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e) });

describe('request/reply over sessions', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  async function cluster(opts: { hang?: (instance: string) => boolean } = {}) {
    const ns = uniqueNamespace();
    const sessions = new OpaqueSessions();
    const servers: CommandServer[] = [];
    const serverBuses: Bus[] = [];
    const calls: string[] = [];
    for (const i of [1, 2]) {
      const bus = await testBus(`policy-${i}`, ns);
      serverBuses.push(bus);
      buses.push(bus);
      let self = '';
      const server = await serveCommands(bus, {
        service: 'policy',
        version: '0.1.0',
        responder: sessions.responder('svc.policy'),
        rejections: reporter(),
        handlers: {
          [Commands.policy.evaluate]: async (req) => {
            calls.push(self);
            if (opts.hang?.(self) === true) await new Promise(() => undefined);
            return text(`${self}:${str(req.body)}:${req.peer}`);
          },
        },
      });
      self = server.instanceId;
      servers.push(server);
    }
    const clientBus = await testBus('agent', ns);
    buses.push(clientBus);
    const client = new CommandClient(clientBus, { initiatorFor: () => sessions.initiator('agent.a1'), rejections: reporter() });
    return { servers, serverBuses, client, clientBus, calls, sessions };
  }

  it('keeps a session on the instance that answered the handshake', async () => {
    const { client, servers } = await cluster();
    const first = str(await client.request(Commands.policy.evaluate, text('q1')));
    const instance = await client.instanceOf('policy');
    expect(servers.map((s) => s.instanceId)).toContain(instance);
    expect(first).toBe(`${instance}:q1:agent.a1`);
    for (let i = 0; i < 10; i++) {
      expect(str(await client.request(Commands.policy.evaluate, text(`q${i}`)))).toBe(`${instance}:q${i}:agent.a1`);
    }
  });

  it('moves to the other instance when its instance is closed mid-session', async () => {
    const { client, servers, serverBuses } = await cluster();
    await client.request(Commands.policy.evaluate, text('before'));
    const gone = await client.instanceOf('policy');
    const index = servers.findIndex((s) => s.instanceId === gone);
    await serverBuses[index]!.close();
    const survivor = servers[1 - index]!.instanceId;
    // Not idempotent: the retry happens because the request was never delivered.
    expect(str(await client.request(Commands.policy.evaluate, text('after')))).toBe(`${survivor}:after:agent.a1`);
    expect(await client.instanceOf('policy')).toBe(survivor);
    expect(str(await client.request(Commands.policy.evaluate, text('again')))).toBe(`${survivor}:again:agent.a1`);
  });

  it('turns a late answer into a timeout error and does not retry an unsafe request', async () => {
    let hangOn = '';
    const { client, calls } = await cluster({ hang: (self) => self === hangOn });
    await client.request(Commands.policy.evaluate, text('warm'));
    hangOn = (await client.instanceOf('policy'))!;
    calls.length = 0;
    const err = await client.request(Commands.policy.evaluate, text('x'), { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusTimeoutError);
    expect((err as BusTimeoutError).code).toBe('E_BUS_TIMEOUT');
    expect(calls).toEqual([hangOn]);
  });

  it('retries an idempotent request once on a fresh session after a timeout', async () => {
    let hangOn = '';
    const { client, servers, calls } = await cluster({ hang: (self) => self === hangOn });
    // The retry's handshake goes through the queue group, which picks an instance at
    // random: when it picks the silent one again the retry times out too. Both outcomes
    // are checked exactly; the loop runs until the other instance has been picked once.
    let retriedElsewhere = false;
    for (let attempt = 0; attempt < 12 && !retriedElsewhere; attempt++) {
      hangOn = '';
      client.reset();
      await client.request(Commands.policy.evaluate, text('warm'));
      hangOn = (await client.instanceOf('policy'))!;
      const other = servers.find((s) => s.instanceId !== hangOn)!.instanceId;
      calls.length = 0;
      const outcome = await client.request(Commands.policy.evaluate, text('y'), { timeoutMs: 250, idempotent: true }).then(str, (e: unknown) => e);
      if (typeof outcome === 'string') {
        expect(outcome).toBe(`${other}:y:agent.a1`);
        expect(calls).toEqual([hangOn, other]);
        retriedElsewhere = true;
      } else {
        expect(outcome).toBeInstanceOf(BusTimeoutError);
        expect(calls).toEqual([hangOn, hangOn]);
      }
    }
    expect(retriedElsewhere).toBe(true);
  });

  it('fails with BusUnavailableError when no instance is up', async () => {
    const bus = await testBus('lonely');
    buses.push(bus);
    const client = new CommandClient(bus, { initiatorFor: () => new OpaqueSessions().initiator('agent.a1'), rejections: reporter() });
    const err = await client.request(Commands.keys.get, text('x'), { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusUnavailableError);
  });

  it('drops a forged request before the handler and reports it', async () => {
    const ns = uniqueNamespace();
    const bus = await testBus('policy-forged', ns);
    buses.push(bus);
    const events: RejectionEvent[] = [];
    const rej = reporter(events);
    let runs = 0;
    const server = await serveCommands(bus, {
      service: 'policy',
      version: '0.1.0',
      responder: new OpaqueSessions().responder('svc.policy'),
      rejections: rej,
      handlers: { [Commands.policy.evaluate]: async () => text(String(++runs)) },
    });
    const attacker = new OpaqueSessions().codec.sealer('agent.mallory');
    const target = bus.subject(directSubject(server.instanceId, Commands.policy.evaluate));
    const err = await bus.nc.request(target, await attacker.seal(text('x')), { timeout: 300, headers: kindHeaders('request') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    await eventually(() => rej.metrics().reported === 1, 2000, 'rejection reported');
    await rej.flush();
    expect(runs).toBe(0);
    expect(events[0]?.details).toMatchObject({ reason: 'E_MAC', claimed_sender: 'agent.mallory', subject: directSubject(server.instanceId, Commands.policy.evaluate) });
  });

  it('answers a handler error with a typed remote error', async () => {
    const ns = uniqueNamespace();
    const sessions = new OpaqueSessions();
    const bus = await testBus('policy-err', ns);
    buses.push(bus);
    await serveCommands(bus, {
      service: 'policy',
      version: '0.1.0',
      responder: sessions.responder('svc.policy'),
      rejections: reporter(),
      handlers: {
        [Commands.policy.evaluate]: async () => {
          throw new Error('secret internals');
        },
      },
    });
    const client = new CommandClient(bus, { initiatorFor: () => sessions.initiator('agent.a1'), rejections: reporter() });
    const err = await client.request(Commands.policy.evaluate, text('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusRequestError);
    expect((err as BusRequestError).code).toBe('E_INTERNAL');
    expect((err as Error).message).not.toContain('secret internals');
  });

  it('answers $SRV.PING, INFO and STATS with readiness', async () => {
    const { servers, clientBus } = await cluster();
    const svcm = new Svcm(clientBus.nc as unknown as ConstructorParameters<typeof Svcm>[0]);
    const ids: string[] = [];
    for await (const p of await svcm.client().ping('bulwark-policy')) ids.push(p.id);
    expect(ids.sort()).toEqual(servers.map((s) => s.instanceId).sort());
    const infos = [];
    for await (const i of await svcm.client().info('bulwark-policy', servers[0]!.instanceId)) infos.push(i);
    expect(infos[0]?.endpoints.map((e) => e.subject)).toContain(clientBus.subject(Commands.policy.evaluate));
    const stats = [];
    for await (const s of await svcm.client().stats('bulwark-policy', servers[0]!.instanceId)) stats.push(s);
    expect(stats[0]?.endpoints?.[0]?.data).toMatchObject({ natsConnected: true, ready: false });
    const kind = headersCarrier(kindHeaders('handshake')).get(Headers.kind);
    expect(kind).toBe('handshake');
  });
});
