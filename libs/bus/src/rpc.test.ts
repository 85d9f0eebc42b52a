import { afterEach, describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { Svcm } from '@nats-io/services';
import { initiateSession } from '@bulwark/envelope';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import { BusRequestError, BusTimeoutError, BusUnavailableError, BusUsageError } from './errors.js';
import { uniqueNamespace } from './namespace.js';
import { RejectionReporter, type RejectionEvent } from './rejections.js';
import { CommandClient } from './rpc-client.js';
import { kindHeaders, serveCommands, type CommandServer } from './rpc-server.js';
import type { HandshakeLimits } from './handshake-limiter.js';
import { Commands, directSubject, ServicePrincipals } from './subjects.js';
import { Headers } from './headers.js';
import { AdmissionKeys, encodeAdmissionTag } from './internal/handshake-admission.js';
import { cleanUp, eventually, testBus } from './bus.testing.js';

const provider = defaultCryptoProvider();

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const reporter = (events: RejectionEvent[] = []) => new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e) });
const POLICY = ServicePrincipals.policy;

describe('request/reply over Noise IK sessions', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  async function cluster(opts: { hang?: (instance: string) => boolean; instances?: number; handshakeLimits?: HandshakeLimits } = {}) {
    const ns = uniqueNamespace();
    const world = testWorld({ ids: [POLICY, 'agent.a1', 'agent.b1'] });
    const servers: CommandServer[] = [];
    const serverBuses: Bus[] = [];
    const serverRejections: RejectionEvent[] = [];
    const calls: string[] = [];
    for (let i = 1; i <= (opts.instances ?? 2); i++) {
      const bus = await testBus(`policy-${i}`, ns);
      serverBuses.push(bus);
      buses.push(bus);
      let self = '';
      const server = await serveCommands(bus, {
        service: 'policy',
        version: '0.1.0',
        sessions: { provider, self: world.identity(POLICY), directory: world.directory },
        rejections: reporter(serverRejections),
        ...(opts.handshakeLimits === undefined ? {} : { handshakeLimits: opts.handshakeLimits }),
        handlers: {
          [Commands.policy.evaluate]: async (req) => {
            calls.push(self);
            if (opts.hang?.(self) === true) await new Promise(() => undefined);
            return text(`${self}:${str(req.body)}:${req.peer}`);
          },
          [Commands.policy.adminList]: async () => {
            throw new Error('secret internals');
          },
        },
      });
      self = server.instanceId;
      servers.push(server);
    }
    const clientBus = await testBus('agent', ns);
    buses.push(clientBus);
    const client = new CommandClient(clientBus, {
      sessions: { provider, self: world.identity('agent.a1'), directory: world.directory },
      rejections: reporter(),
    });
    return { servers, serverBuses, client, clientBus, calls, world, serverRejections };
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
    // Not marked idempotent: it is retried because it was never delivered (no responders).
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

  it('is idle only once no request is being handled (what a switch of NATS user waits for)', async () => {
    let holding = false;
    const { client, servers } = await cluster({ instances: 1, hang: () => holding });
    await client.request(Commands.policy.evaluate, text('warm'));
    await servers[0]!.idle();
    // A handler that does not return: the server is busy until it does (here: never), so `idle` waits.
    holding = true;
    void client.request(Commands.policy.evaluate, text('slow'), { timeoutMs: 1000 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const idle = servers[0]!.idle().then(() => 'idle');
    const raced = await Promise.race([idle, new Promise((r) => setTimeout(() => r('busy'), 300))]);
    expect(raced).toBe('busy');
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
    const world = testWorld({ ids: [ServicePrincipals.keys, 'agent.a1'] });
    const client = new CommandClient(bus, { sessions: { provider, self: world.identity('agent.a1'), directory: world.directory }, rejections: reporter() });
    const err = await client.request(Commands.keys.get, text('x'), { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusUnavailableError);
    expect((err as BusUnavailableError).code).toBe('E_BUS_NO_RESPONDERS');
  });

  it('retries no responders with a growing pause: a service that comes up ~600 ms after the call is answered', async () => {
    const ns = uniqueNamespace();
    const world = testWorld({ ids: [POLICY, 'agent.a1'] });
    const clientBus = await testBus('agent-early', ns);
    buses.push(clientBus);
    const client = new CommandClient(clientBus, { sessions: { provider, self: world.identity('agent.a1'), directory: world.directory }, rejections: reporter() });
    const started = performance.now();
    const call = client.request(Commands.policy.evaluate, text('early'), { timeoutMs: 2000 }).then(str, (e: unknown) => e);
    await new Promise((r) => setTimeout(r, 600));
    const serverBus = await testBus('policy-late', ns);
    buses.push(serverBus);
    const server = await serveCommands(serverBus, {
      service: 'policy',
      version: '0.1.0',
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      rejections: reporter(),
      handlers: { [Commands.policy.evaluate]: async (req) => text(`late:${str(req.body)}`) },
    });
    expect(await call).toBe('late:early');
    expect(performance.now() - started).toBeGreaterThanOrEqual(600);
    expect(await client.instanceOf('policy')).toBe(server.instanceId);
  });

  it('fails with E_BUS_NO_RESPONDERS and the number of attempts once timeoutMs is spent when no instance comes up', async () => {
    const bus = await testBus('lonely-attempts');
    buses.push(bus);
    const world = testWorld({ ids: [POLICY, 'agent.a1'] });
    const client = new CommandClient(bus, { sessions: { provider, self: world.identity('agent.a1'), directory: world.directory }, rejections: reporter() });
    const started = performance.now();
    const err = await client.request(Commands.policy.evaluate, text('x'), { timeoutMs: 1000 }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(BusUnavailableError);
    expect((err as BusUnavailableError).code).toBe('E_BUS_NO_RESPONDERS');
    // 25 + 50 + 100 + 200 + 400 ms of pauses fit in 1000 ms (the next 400 does not): 6 attempts.
    expect((err as BusUnavailableError).context).toMatchObject({ attempts: 6, timeoutMs: 1000 });
    expect((err as Error).message).toMatch(/6 attempts within 1000 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(700);
    expect(elapsed).toBeLessThan(1500);
  });

  it('sends a timed-out call that is not idempotent once, even with time left and the service still there', async () => {
    let hangOn = '';
    const { client, calls } = await cluster({ hang: (self) => self === hangOn, instances: 1 });
    await client.request(Commands.policy.evaluate, text('warm'));
    hangOn = (await client.instanceOf('policy'))!;
    calls.length = 0;
    const err = await client.request(Commands.policy.evaluate, text('once'), { timeoutMs: 300 }).catch((e: unknown) => e);
    expect((err as BusTimeoutError).code).toBe('E_BUS_TIMEOUT');
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toHaveLength(1);
  });

  it('answers a handler error with a typed remote error that hides internals', async () => {
    const { client } = await cluster({ instances: 1 });
    const err = await client.request(Commands.policy.adminList, text('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusRequestError);
    expect((err as BusRequestError).code).toBe('E_INTERNAL');
    expect((err as Error).message).not.toContain('secret internals');
  });

  it('drops handshakes from unknown principals and garbage requests, reporting each', async () => {
    const { servers, clientBus, serverRejections, calls } = await cluster({ instances: 1 });
    const stranger = testWorld({ ids: [POLICY, 'agent.mallory'] });
    // mallory's directory has her own key for svc.policy: the real service cannot open it.
    const pending = initiateSession({ provider, self: stranger.identity('agent.mallory'), directory: stranger.directory, peerId: POLICY });
    const hs = await natsOf(clientBus).nc.request(clientBus.subject(Commands.policy.evaluate), pending.frame, { timeout: 300, headers: kindHeaders('handshake') }).catch((e: unknown) => e);
    expect(hs).toBeInstanceOf(Error);
    const direct = clientBus.subject(directSubject(servers[0]!.instanceId, Commands.policy.evaluate));
    const junk = await natsOf(clientBus).nc.request(direct, new Uint8Array(64), { timeout: 300, headers: kindHeaders('request') }).catch((e: unknown) => e);
    expect(junk).toBeInstanceOf(Error);
    await eventually(() => serverRejections.length === 2, 2000, 'both rejections reported');
    expect(serverRejections.map((e) => e.details.reason).sort()).toEqual(['E_UNKNOWN_SENDER', 'E_VERSION']);
    expect(serverRejections.find((e) => e.details.reason === 'E_UNKNOWN_SENDER')?.details.claimed_sender).toBe('agent.mallory');
    expect(calls).toEqual([]);
  });

  /** Handshake headers with the admission tag `id`'s CommandClient would send with `frame`. */
  function admittedHeaders(world: ReturnType<typeof testWorld>, id: string, frame: Uint8Array) {
    const keys = new AdmissionKeys({ provider, self: world.identity(id), directory: world.directory });
    const headers = kindHeaders('handshake');
    headers.set(Headers.admission, encodeAdmissionTag(keys.tag(world.directory.lookup(POLICY)!, frame)!));
    return headers;
  }

  function rawHandshake(clientBus: Bus, world: ReturnType<typeof testWorld>, id: string, headers: (frame: Uint8Array) => ReturnType<typeof kindHeaders>) {
    const pending = initiateSession({ provider, self: world.identity(id), directory: world.directory, peerId: POLICY });
    return natsOf(clientBus)
      .nc.request(clientBus.subject(Commands.policy.evaluate), pending.frame, { timeout: 500, headers: headers(pending.frame) })
      .then((reply) => pending.complete(reply.data).ok)
      .catch(() => 'dropped' as const);
  }

  it('drops authenticated handshakes past a principal\'s budget before any key work, and still serves other principals', async () => {
    const { clientBus, serverRejections, world } = await cluster({ instances: 1, handshakeLimits: { perSenderPerSecond: 0.01, perSenderBurst: 2 } });
    const answers = await Promise.all(Array.from({ length: 5 }, () => rawHandshake(clientBus, world, 'agent.a1', (f) => admittedHeaders(world, 'agent.a1', f))));
    expect(answers.filter((a) => a === true)).toHaveLength(2);
    expect(answers.filter((a) => a === 'dropped')).toHaveLength(3);
    await eventually(() => serverRejections.length >= 1, 2000, 'rate rejection reported');
    expect(serverRejections.every((e) => e.details.reason === 'E_BUS_HANDSHAKE_RATE' && e.details.claimed_sender === 'agent.a1')).toBe(true);
    const other = new CommandClient(clientBus, { sessions: { provider, self: world.identity('agent.b1'), directory: world.directory }, rejections: reporter() });
    expect(str(await other.request(Commands.policy.evaluate, text('hi')))).toMatch(/:hi:agent\.b1$/);
  });

  it('does not charge a principal for handshakes forged in its name (no tag, a wrong tag, or another principal\'s)', async () => {
    const { client, clientBus, serverRejections, world } = await cluster({ instances: 1, handshakeLimits: { perSenderPerSecond: 0.01, perSenderBurst: 2 } });
    const forged = await Promise.all([
      rawHandshake(clientBus, world, 'agent.a1', () => kindHeaders('handshake')),
      rawHandshake(clientBus, world, 'agent.a1', () => {
        const h = kindHeaders('handshake');
        h.set(Headers.admission, encodeAdmissionTag(new Uint8Array(16)));
        return h;
      }),
      // agent.b1 tagging an init in agent.a1's name: its key is not agent.a1's.
      ...Array.from({ length: 2 }, () => rawHandshake(clientBus, world, 'agent.a1', (f) => admittedHeaders(world, 'agent.b1', f))),
      // agent.a1's tag of another frame: the tag covers the whole init.
      ...Array.from({ length: 2 }, () => rawHandshake(clientBus, world, 'agent.a1', () => admittedHeaders(world, 'agent.a1', new Uint8Array(200)))),
    ]);
    expect(forged.every((a) => a === 'dropped')).toBe(true);
    await eventually(() => serverRejections.length >= 1, 2000, 'admission rejection reported');
    expect(new Set(serverRejections.map((e) => e.details.reason))).toEqual(new Set(['E_BUS_ADMISSION']));
    // agent.a1's own budget (burst 2) is untouched: both of its real handshakes go through.
    expect(str(await client.request(Commands.policy.evaluate, text('mine')))).toMatch(/:mine:agent\.a1$/);
    client.reset();
    expect(str(await client.request(Commands.policy.evaluate, text('again')))).toMatch(/:again:agent\.a1$/);
  });

  it('refuses a captured handshake init replayed with its tag', async () => {
    const { clientBus, serverRejections, world } = await cluster({ instances: 1 });
    const pending = initiateSession({ provider, self: world.identity('agent.a1'), directory: world.directory, peerId: POLICY });
    const headers = admittedHeaders(world, 'agent.a1', pending.frame);
    const nc = natsOf(clientBus).nc;
    const subject = clientBus.subject(Commands.policy.evaluate);
    const first = await nc.request(subject, pending.frame, { timeout: 500, headers });
    expect(pending.complete(first.data).ok).toBe(true);
    const again = await nc.request(subject, pending.frame, { timeout: 300, headers }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(Error);
    await eventually(() => serverRejections.some((e) => e.details.reason === 'E_REPLAY'), 2000, 'replay reported');
  });

  it('refuses a service version that is not semver before touching NATS', async () => {
    const bus = await testBus('policy-version');
    buses.push(bus);
    const world = testWorld({ ids: [POLICY] });
    const err = await serveCommands(bus, {
      service: 'policy',
      version: '1',
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      rejections: reporter(),
      handlers: {},
    }).catch((e: unknown) => e);
    expect((err as BusUsageError).code).toBe('E_BUS_VERSION');
  });

  it('refuses a handler for another service\'s command', async () => {
    const bus = await testBus('policy-foreign');
    buses.push(bus);
    const world = testWorld({ ids: [POLICY] });
    const err = await serveCommands(bus, {
      service: 'policy',
      version: '1.0.0',
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      rejections: reporter(),
      handlers: { [Commands.keys.get]: async () => new Uint8Array() },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusUsageError);
    expect((err as BusUsageError).code).toBe('E_BUS_HANDLER');
  });

  it('answers $SRV.PING, INFO and STATS, with readiness in the stats', async () => {
    const { servers, clientBus } = await cluster();
    const svcm = new Svcm(natsOf(clientBus).nc as unknown as ConstructorParameters<typeof Svcm>[0]);
    const ids: string[] = [];
    for await (const p of await svcm.client({ maxWait: 300 } as Parameters<Svcm['client']>[0]).ping('bulwark-policy')) ids.push(p.id);
    // $SRV subjects are not namespaced: a policy service of another test file running beside this one answers too.
    const ours = servers.map((s) => s.instanceId);
    expect(ids.filter((id) => ours.includes(id)).sort()).toEqual([...ours].sort());
    const infos = [];
    for await (const i of await svcm.client().info('bulwark-policy', servers[0]!.instanceId)) infos.push(i);
    expect(infos[0]?.endpoints.map((e) => e.subject)).toContain(clientBus.subject(Commands.policy.evaluate));
    const stats = [];
    for await (const s of await svcm.client().stats('bulwark-policy', servers[0]!.instanceId)) stats.push(s);
    // Streams were not set up in this namespace: connected, but not ready.
    expect(stats[0]?.endpoints?.[0]?.data).toMatchObject({ natsConnected: true, ready: false });
    expect(await servers[0]!.readiness()).toMatchObject({ ready: false, natsConnected: true });
  });
});
