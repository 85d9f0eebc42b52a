// `npm run bench -- envelope [--rounds N] [--ms M] [--rpc-calls N] [--rpc-rounds R]`: seal + open of one frame, per mode and size,
// against the raw node:crypto calls the envelope makes (ChaCha20-Poly1305 + HMAC-SHA256 over the
// same bytes). One JSON line per figure (DESIGN §11): the median of interleaved rounds. Rates are
// per second of this process's CPU time (user + system), so that other work on a shared machine
// stretches the wall clock without skewing the figures.
// Then `request_reply.p50` / `.p99` (us): a bulwark RPC over an established session against raw
// NATS request/reply of the same bytes, against the local NATS (NATS_URL); `--rpc-calls N`
// (default 400) calls per impl per round, `--rpc-rounds R` (default 5; 0 skips it), after
// `--rpc-warmup W` (default 3000) calls of each: a service answers many requests, so the figure is
// the steady state, with both paths compiled by the JIT, not the first few hundred calls.
// Then `session_setup.p50` / `.p99` (us): a new session (Noise IK handshake through the queue
// group, then the first request on the instance's direct subject), `--handshakes H` (default 300)
// times back to back, with the responder's handshake admission limits raised for the purpose.
import { loadavg } from 'node:os';
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import {
  ChannelReceiver,
  ChannelSender,
  createChannelEpochKey,
  initiateSession,
  SealedReceiver,
  SealedSender,
  SessionResponder,
} from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { connect as connectNats } from '@nats-io/transport-node';
import { CommandClient, Commands, connectBus, RejectionReporter, serveCommands, ServicePrincipals, uniqueNamespace } from '@bulwark/bus';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const ROUNDS = option('rounds', 15);
const ROUND_MS = option('ms', 100);
const RPC_CALLS = option('rpc-calls', 400);
const RPC_ROUNDS = option('rpc-rounds', 5);
const RPC_WARMUP = option('rpc-warmup', 3000);
const HANDSHAKES = option('handshakes', 300);
const RPC_BYTES = 256;

type SealOpen = (plaintext: Uint8Array) => void;

/** The three modes wired up in one process, each returning a seal-then-open step. */
function envelopeSteps(provider: CryptoProvider): Record<'session' | 'sealed' | 'channel', SealOpen> {
  const { directory, identity } = testWorld({ provider, ids: ['agent.bench', 'svc.policy'] });
  const agent = identity('agent.bench');
  const service = identity('svc.policy');
  const common = { provider, directory };

  const responder = new SessionResponder({ ...common, self: service, instanceId: 'policy-1' });
  const pending = initiateSession({ ...common, self: agent, peerId: service.id });
  const accepted = responder.accept(pending.frame);
  if (!accepted.ok) throw new Error(accepted.detail);
  const completed = pending.complete(accepted.reply);
  if (!completed.ok) throw new Error(completed.detail);
  const client = completed.session;
  const server = accepted.session;

  const sealer = new SealedSender({ ...common, self: agent, recipientId: service.id });
  const unsealer = new SealedReceiver({ ...common, self: service });

  const epochKey = createChannelEpochKey(provider, 'soc.incidents', 1);
  const publisher = new ChannelSender({ ...common, senderId: service.id, epochKey });
  const subscriber = new ChannelReceiver({ ...common, channelId: 'soc.incidents' });
  subscriber.install(epochKey);

  const check = (ok: boolean) => {
    if (!ok) throw new Error('bench frame refused');
  };
  return {
    session: (p) => check(server.open(client.seal(p)).ok),
    sealed: (p) => check(unsealer.open(sealer.seal(p)).ok),
    channel: (p) => check(subscriber.open(publisher.seal(p)).ok),
  };
}

/** The bare calls: encrypt with the header as AD, MAC header || ciphertext || counter, then verify and decrypt. */
function rawStep(): SealOpen {
  const encKey = randomBytes(32);
  const macKey = randomBytes(32);
  const header = randomBytes(70);
  let counter = 0n;
  return (plaintext) => {
    const nonce = Buffer.alloc(12);
    nonce.writeBigUInt64LE(counter++, 4);
    const counterBytes = nonce.subarray(4);
    const cipher = createCipheriv('chacha20-poly1305', encKey, nonce, { authTagLength: 16 });
    cipher.setAAD(header, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    const tag = cipher.getAuthTag();
    const mac = createHmac('sha256', macKey).update(header).update(body).update(tag).update(counterBytes).digest();

    const expected = createHmac('sha256', macKey).update(header).update(body).update(tag).update(counterBytes).digest();
    if (!timingSafeEqual(mac, expected)) throw new Error('raw mac');
    const decipher = createDecipheriv('chacha20-poly1305', encKey, nonce, { authTagLength: 16 });
    decipher.setAAD(header, { plaintextLength: body.length });
    decipher.setAuthTag(tag);
    decipher.update(body);
    decipher.final();
  };
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

function opsPerSecond(step: SealOpen, plaintext: Uint8Array, ms: number): number {
  let n = 0;
  const start = cpuMicros();
  const budget = ms * 1000;
  let used = 0;
  while (used < budget) {
    for (let i = 0; i < 8; i++) step(plaintext);
    n += 8;
    used = cpuMicros() - start;
  }
  return n / (used / 1e6);
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

// The provider a deployment gets by default (`auto`: libsodium where it loads); the raw figures stay node:crypto.
const defaultProvider = createCryptoProvider();
console.error(`bench envelope: bulwark uses the ${defaultProvider.name} crypto provider, ${defaultProvider.frames.kind} frame cipher`);
const bulwark = envelopeSteps(defaultProvider);
const noble = envelopeSteps(createCryptoProvider('noble'));
const raw = rawStep();

function measure(pairs: readonly (readonly [string, SealOpen])[], plaintext: Uint8Array, rounds: number, ms: number): Map<string, number[]> {
  for (const [, step] of pairs) opsPerSecond(step, plaintext, 30); // warm-up
  const samples = new Map<string, number[]>(pairs.map(([impl]) => [impl, []]));
  for (let round = 0; round < rounds; round++) {
    // Interleave, and alternate the order, so drift on a shared machine hits every impl alike.
    const order = round % 2 === 0 ? pairs : [...pairs].reverse();
    for (const [impl, step] of order) samples.get(impl)!.push(opsPerSecond(step, plaintext, ms));
  }
  return samples;
}

for (const [sizeName, size] of [['1KiB', 1024], ['64KiB', 65536]] as const) {
  const plaintext = randomBytes(size);
  for (const mode of ['session', 'sealed', 'channel'] as const) {
    const samples = measure([['bulwark', bulwark[mode]], ['raw:node-crypto', raw]], plaintext, ROUNDS, ROUND_MS);
    // The pure-JS provider is an order of magnitude slower: fewer, separate rounds, so its
    // garbage does not land in the figures it is not compared with.
    for (const [impl, values] of measure([['bulwark:noble', noble[mode]]], plaintext, 3, ROUND_MS)) samples.set(impl, values);
    for (const [impl, values] of samples) {
      console.log(JSON.stringify({ bench: 'envelope', figure: `seal_open.${mode}.${sizeName}`, impl, value: Math.round(median(values)), unit: 'ops/s', n: values.length }));
    }
  }
}

/**
 * Request/reply round trip over the local NATS (NATS_URL), sequential calls in one process:
 * `bulwark` = CommandClient.request() through an established Noise session to a serveCommands
 * handler that answers with a reply of the request's size (seal and open both ways, request id,
 * kind and trace headers); `raw:nats` = nc.request() of the same bytes to a subscriber on a
 * second connection that answers with the same reply bytes. Rounds interleave the two; percentiles over every call.
 */
async function requestReply(): Promise<void> {
  const url = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
  const provider = createCryptoProvider();
  const { directory, identity } = testWorld({ provider, ids: [ServicePrincipals.policy, 'agent.bench'] });
  const service = identity(ServicePrincipals.policy);
  const agent = identity('agent.bench');
  const silent = (reporter: string) => new RejectionReporter({ reporter, publish: async () => undefined });
  const namespace = uniqueNamespace('bench');
  const serverBus = await connectBus({ url, name: 'bench-server', namespace });
  const clientBus = await connectBus({ url, name: 'bench-client', namespace });
  const reply = randomBytes(RPC_BYTES);
  const request = randomBytes(RPC_BYTES);
  const server = await serveCommands(serverBus, {
    service: 'policy',
    version: '0.0.1',
    sessions: { provider, self: service, directory },
    rejections: silent(service.id),
    handlers: { [Commands.policy.evaluate]: async () => reply },
    // session_setup times one client's handshakes back to back: the cost, not the admission limit.
    handshakeLimits: { perSenderPerSecond: 100_000, perSenderBurst: 100_000, globalPerSecond: 100_000, globalBurst: 100_000 },
  });
  const client = new CommandClient(clientBus, { sessions: { provider, self: agent, directory }, rejections: silent(agent.id) });
  // Two connections, like the bulwark pair (client bus, server bus): one connection answering
  // its own requests would skip a socket write and read per round trip.
  const raw = await connectNats({ servers: url, name: 'bench-raw-client' });
  const rawServer = await connectNats({ servers: url, name: 'bench-raw-server' });
  const rawSubject = `${namespace.subjectPrefix}bench.raw.echo`;
  const echo = rawServer.subscribe(rawSubject, { callback: (_e, m) => void m.respond(reply) });
  await rawServer.flush();
  const calls: Record<'bulwark' | 'raw:nats', () => Promise<unknown>> = {
    bulwark: () => client.request(Commands.policy.evaluate, request, { timeoutMs: 5000 }),
    'raw:nats': () => raw.request(rawSubject, request, { timeout: 5000 }),
  };
  try {
    const samples: Record<string, number[]> = { bulwark: [], 'raw:nats': [] };
    for (const call of Object.values(calls)) for (let i = 0; i < RPC_WARMUP; i++) await call(); // warm-up: session established, both paths JIT-compiled
    for (let round = 0; round < RPC_ROUNDS; round++) {
      const order = round % 2 === 0 ? (['bulwark', 'raw:nats'] as const) : (['raw:nats', 'bulwark'] as const);
      for (const impl of order) {
        for (let i = 0; i < RPC_CALLS; i++) {
          const t0 = process.hrtime.bigint();
          await calls[impl]();
          samples[impl]!.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
      }
    }
    const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
    for (const [figure, p] of [['request_reply.p50', 0.5], ['request_reply.p99', 0.99]] as const) {
      for (const [impl, xs] of Object.entries(samples)) {
        console.log(JSON.stringify({ bench: 'envelope', figure, impl, value: Number(percentile(xs, p).toFixed(1)), unit: 'us', n: xs.length }));
      }
    }
    // A new session: the Noise IK handshake through the queue group, then the first request on
    // the instance's direct subject (what a client pays once per service, per session lifetime).
    const setups: number[] = [];
    for (let i = 0; i < HANDSHAKES; i++) {
      client.reset();
      const t0 = process.hrtime.bigint();
      await calls.bulwark();
      setups.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    for (const [figure, p] of [['session_setup.p50', 0.5], ['session_setup.p99', 0.99]] as const) {
      console.log(JSON.stringify({ bench: 'envelope', figure, impl: 'bulwark', value: Number(percentile(setups, p).toFixed(1)), unit: 'us', n: setups.length }));
    }
  } finally {
    echo.unsubscribe();
    await raw.close();
    await rawServer.close();
    await server.stop();
    await clientBus.close();
    await serverBus.close();
  }
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
if (RPC_ROUNDS > 0) {
  console.error(`bench envelope: load average ${load()} before request/reply`);
  await requestReply();
}
console.error(`bench envelope: load average ${load()} at the end`);
