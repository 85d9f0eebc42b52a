// Attack: a handshake flood that names every principal of the directory (anyone can list it).
// The forger's inits are well formed Noise IK messages made with its own static keys, so they
// cost the responder key work if it does any before it knows who sent them; with them comes an
// admission header of the right shape and random content. Meanwhile honest principals, the
// administrator among them, open new sessions and make one request each. DESIGN §3a: a
// principal's handshake budget is charged only once its handshake authenticates, so the flood
// must leave at least 95% of honest new sessions succeeding, on the service's default limits.
//
// Duration: 10 s by default, 30 s with BULWARK_ATTACK_FULL=1, or BULWARK_ATTACK_FLOOD_SECONDS.
// Rate: BULWARK_ATTACK_FLOOD_RATE forged inits per second (default 1500: 3x the responder's
// global handshake budget, and 75 per named principal against a per-principal 20/s).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { createCryptoProvider } from '@bulwark/crypto';
import { initiateSession } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { CommandClient, Commands, connectBus, RejectionReporter, removeNamespaceStreams, serveCommands, ServicePrincipals, uniqueNamespace, type Bus, type CommandServer } from '@bulwark/bus';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const SECONDS = Number(process.env['BULWARK_ATTACK_FLOOD_SECONDS'] ?? (process.env['BULWARK_ATTACK_FULL'] === '1' ? 30 : 10));
const FLOOD_RATE = Number(process.env['BULWARK_ATTACK_FLOOD_RATE'] ?? 1500);
/** Honest new sessions per second, spread over every principal (each far below its own budget). */
const HONEST_RATE = 20;
const provider = createCryptoProvider();
const POLICY = ServicePrincipals.policy;
const ADMIN = 'analyst.admin';
const AGENTS = Array.from({ length: 18 }, (_, i) => `agent.h${i}`);
const HONEST = [ADMIN, ...AGENTS];
const text = (s: string) => new TextEncoder().encode(s);

describe('handshake flood naming every directory principal', () => {
  const ns = uniqueNamespace('flood');
  const world = testWorld({ provider, ids: [POLICY, ...HONEST] });
  // The forger's own keys under the real ids: valid inits, wrong static keys.
  const forgerKeys = new Map(HONEST.map((id) => [id, provider.x25519.generateKeyPair()]));
  const serverRejections = new RejectionReporter({ reporter: POLICY, publish: async () => undefined });
  let serverBus: Bus;
  let clientBus: Bus;
  let forger: NatsConnection;
  let server: CommandServer;

  beforeAll(async () => {
    serverBus = await connectBus({ url: NATS_URL, name: 'policy', namespace: ns });
    clientBus = await connectBus({ url: NATS_URL, name: 'honest', namespace: ns });
    forger = await connect({ servers: NATS_URL, name: 'forger' });
    server = await serveCommands(serverBus, {
      service: 'policy',
      version: '1.0.0',
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      rejections: serverRejections,
      handlers: { [Commands.policy.evaluate]: async (req) => text(`ok:${req.peer}`) },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await forger?.close();
    await removeNamespaceStreams(serverBus);
    await Promise.all([serverBus?.close(), clientBus?.close()]);
  });

  /** Forged inits for every principal, fresh enough for the skew window; renewed every 5 s. */
  function forgedInits(): Uint8Array[] {
    const frames: Uint8Array[] = [];
    for (let copy = 0; copy < 5; copy++) {
      for (const id of HONEST) {
        frames.push(initiateSession({ provider, self: { id, x25519: forgerKeys.get(id)! }, directory: world.directory, peerId: POLICY }).frame);
      }
    }
    return frames;
  }

  it(`leaves at least 95% of honest new sessions succeeding during ${SECONDS} s of forged inits`, { timeout: (SECONDS + 60) * 1000 }, async () => {
    const subject = serverBus.subject(Commands.policy.evaluate);
    let frames = forgedInits();
    let renewed = Date.now();
    let forged = 0;
    const started = Date.now();
    const end = started + SECONDS * 1000;
    // The forger: a batch every 10 ms, as fast as the rate asks (NATS publishes are buffered).
    const perTick = Math.max(1, Math.round(FLOOD_RATE / 100));
    const flood = setInterval(() => {
      if (Date.now() - renewed > 5000) {
        frames = forgedInits();
        renewed = Date.now();
      }
      for (let i = 0; i < perTick; i++) {
        const h = natsHeaders();
        h.set('Bulwark-Kind', 'handshake');
        h.set('Bulwark-Admission', Buffer.from(provider.randomBytes(16)).toString('base64url'));
        forger.publish(subject, frames[forged % frames.length]!, { headers: h });
        forged++;
      }
    }, 10);

    // Honest principals: each attempt is a new client, so a new handshake, then one request.
    let attempts = 0;
    let succeeded = 0;
    const failures = new Map<string, number>();
    const honest: Promise<void>[] = [];
    try {
      // Let the flood reach its rate first.
      await new Promise((r) => setTimeout(r, 500));
      while (Date.now() < end) {
        const id = HONEST[attempts % HONEST.length]!;
        attempts++;
        const client = new CommandClient(clientBus, {
          sessions: { provider, self: world.identity(id), directory: world.directory },
          rejections: new RejectionReporter({ reporter: id, publish: async () => undefined }),
        });
        honest.push(
          client.request(Commands.policy.evaluate, text('q'), { timeoutMs: 2000 }).then(
            (reply) => {
              if (new TextDecoder().decode(reply) === `ok:${id}`) succeeded++;
            },
            (e: unknown) => {
              const code = (e as { code?: string }).code ?? 'unknown';
              failures.set(code, (failures.get(code) ?? 0) + 1);
            },
          ),
        );
        await new Promise((r) => setTimeout(r, 1000 / HONEST_RATE));
      }
    } finally {
      clearInterval(flood);
    }
    await Promise.all(honest);
    const elapsed = (Date.now() - started) / 1000;
    const ratio = succeeded / attempts;
    const rejected = serverRejections.metrics().rejectedByReason;
    console.log(
      `handshake flood: ${SECONDS} s, ${forged} forged inits (${Math.round(forged / elapsed)}/s naming ${HONEST.length} principals); ` +
        `honest new sessions ${succeeded}/${attempts} = ${(ratio * 100).toFixed(1)}%; honest failures ${JSON.stringify(Object.fromEntries(failures))}; ` +
        `server rejections ${JSON.stringify(rejected)}`,
    );
    expect(attempts).toBeGreaterThan(SECONDS * HONEST_RATE * 0.5);
    // The forger shares the machine: under load it reaches less than the rate it asks for.
    expect(forged).toBeGreaterThan(SECONDS * FLOOD_RATE * 0.3);
    expect(ratio).toBeGreaterThanOrEqual(0.95);
    // The cost bound: every forged init was refused at its admission tag, before any key work
    // (none reached Noise IK, which would have refused it as E_UNKNOWN_SENDER).
    expect(rejected).toEqual({ E_BUS_ADMISSION: forged });
  });
});
