// `npm run bench -- policy-bus [--n N] [--rounds R] [--warmup W]`: policy decisions over the bus (DESIGN §11).
// One JSON line per figure on stdout; notes go to stderr.
//
// What is measured, in one process against the local NATS (NATS_URL), sequential calls:
// - `bus.decision.{p50,p99}` impl `bulwark`: client.policy.evaluate() through an established
//   Noise session to the policy service (audit on: each decision is queued for the ledger),
//   the reply parsed and checked by @bulwark/client;
// - impl `bulwark:audit-off`: the same with `audit_enabled = false` (no decision events);
// - impl `bulwark:rpc-echo`: the same bus RPC (session seal/open both ways, request id, headers,
//   trace context) to a handler that returns a fixed reply of the decision's size: the bus alone;
// - impl `raw:nats`: nc.request() of the same request bytes to a subscriber that answers with
//   the same reply bytes: the floor.
// The service publishes its decision events to BULWARK_EVENTS as in production (batched,
// off the request path but on the same event loop); nothing consumes them during the run.
// Rounds interleave the three (n calls each per round) so machine load hits them alike; the
// figures are percentiles over all calls of all rounds. The load average is printed to stderr.
import { loadavg } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { Commands, serveCommands } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { ADMIN, AGENT, harness, POLICY, provider, silentReporter } from '../../services/policy/test/world.js';
import { emit, N, percentile, REQUEST, ROUNDS, SEED, time, WARMUP } from './lib/decision-rounds.js';


const h = await harness();
try {
  await h.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
  await h.start();
  // The ledger runs in its own process in production: stop the in-process stand-in so its
  // decoding of decision batches does not share this event loop with the measured calls.
  await h.ledger.stop();
  const clientBus = await h.connect(AGENT);
  const client = createBulwarkClient({ bus: clientBus, sessions: { provider, self: h.world.identity(AGENT), directory: h.world.directory }, rejections: silentReporter(AGENT) });
  const first = await client.policy.evaluate(REQUEST);
  if (first.decision !== 'AllowWithConditions') throw new Error(`bench: unexpected decision ${JSON.stringify(first)}`);
  const requestBytes = new TextEncoder().encode(JSON.stringify(REQUEST));
  const replyBytes = new TextEncoder().encode(JSON.stringify(first));
  console.error(`bench policy-bus: request ${requestBytes.length} B, decision ${replyBytes.length} B, ${ROUNDS} rounds x ${N} calls per impl; ${provider.name} crypto provider, ${provider.frames.kind} frame cipher; ADMIN ${ADMIN} unused`);

  // The bus alone: a second service instance is not possible on the same service name without
  // sharing its queue, so the echo runs under the policy service name in its own namespace.
  const echo = await harness();
  const echoBus = await echo.connect('echo');
  const echoServer = await serveCommands(echoBus, {
    service: 'policy',
    version: '0.0.1',
    rejections: silentReporter(POLICY),
    sessions: { provider, self: echo.world.identity(POLICY), directory: echo.world.directory },
    handlers: { [Commands.policy.evaluate]: async () => replyBytes },
  });
  const echoClient = createBulwarkClient({ bus: await echo.connect(AGENT), sessions: { provider, self: echo.world.identity(AGENT), directory: echo.world.directory }, rejections: silentReporter(AGENT) });

  // The same service with audit off: the decision events' share of the figure.
  const quiet = await harness();
  await quiet.ledger.commitNew('policy.registered', { name: 'secure_data_access', version: 1, text: SEED, file: 'seed.policy' });
  await quiet.start({ audit: { enabled: false } });
  await quiet.ledger.stop();
  const quietClient = createBulwarkClient({ bus: await quiet.connect(AGENT), sessions: { provider, self: quiet.world.identity(AGENT), directory: quiet.world.directory }, rejections: silentReporter(AGENT) });

  // Two connections, like every bulwark impl here (the client's bus, the service's bus): one
  // connection answering its own requests would skip a socket write and read per round trip.
  const nc = await connect({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' });
  const rawServer = await connect({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' });
  const rawSubject = `bench.raw.${Date.now()}`;
  const sub = rawServer.subscribe(rawSubject, { callback: (_e, m) => void m.respond(replyBytes) });
  await rawServer.flush();

  const calls = {
    bulwark: () => client.policy.evaluate(REQUEST),
    'bulwark:audit-off': () => quietClient.policy.evaluate(REQUEST),
    'bulwark:rpc-echo': () => echoClient.policy.evaluate(REQUEST),
    'raw:nats': () => nc.request(rawSubject, requestBytes, { timeout: 5000 }),
  } as const;
  const samples: Record<keyof typeof calls, number[]> = { bulwark: [], 'bulwark:audit-off': [], 'bulwark:rpc-echo': [], 'raw:nats': [] };
  for (const call of Object.values(calls)) await time([], WARMUP, call);
  const loadBefore = loadavg();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [impl, call] of Object.entries(calls) as [keyof typeof calls, () => Promise<unknown>][]) await time(samples[impl], N, call);
  }
  const loadAfter = loadavg();
  for (const [impl, xs] of Object.entries(samples)) {
    emit('policy-bus', 'bus.decision.p50', impl, percentile(xs, 0.5), xs.length);
    emit('policy-bus', 'bus.decision.p99', impl, percentile(xs, 0.99), xs.length);
  }
  console.error(`bench policy-bus: load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  sub.unsubscribe();
  await nc.close();
  await rawServer.close();
  await echoServer.stop();
  await echo.close();
  await quiet.close();
} finally {
  await h.close();
}
