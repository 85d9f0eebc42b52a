// Attack: a handshake flood that names every principal of the directory (anyone can list it).
// The forger's inits are well formed Noise IK messages made with its own static keys, so they
// cost the responder key work if it does any before it knows who sent them; with them comes an
// admission header of the right shape and random content; a quarter of them name ids that are
// not in the directory at all. Meanwhile honest principals, the administrator among them, open
// new sessions and make one request each; some of them (QUIET) the forger never names, so the
// responder has never derived their admission keys when they first call. DESIGN §3a: a
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
/** The flood runs alone first: long enough to spend a 1000-token budget refilled at 500/s. */
const WARMUP_MS = Math.min(3000, SECONDS * 300);
const provider = createCryptoProvider();
const POLICY = ServicePrincipals.policy;
const ADMIN = 'analyst.admin';
const AGENTS = Array.from({ length: 18 }, (_, i) => `agent.h${i}`);
/** Named by the forger. */
const NAMED = [ADMIN, ...AGENTS];
/** Never named by the forger; their first handshakes come once the flood is running. */
const QUIET = Array.from({ length: 6 }, (_, i) => `agent.q${i}`);
const HONEST = [...NAMED, ...QUIET];
const GHOSTS = Array.from({ length: 6 }, (_, i) => `agent.ghost${i}`);
const text = (s: string) => new TextEncoder().encode(s);

describe('handshake flood naming every directory principal', () => {
  const ns = uniqueNamespace('flood');
  const world = testWorld({ provider, ids: [POLICY, ...HONEST] });
  // The forger's own keys under the real ids: valid inits, wrong static keys.
  const forgerKeys = new Map([...NAMED, ...GHOSTS].map((id) => [id, provider.x25519.generateKeyPair()]));
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

  /** Forged inits naming every principal (and some ghosts), fresh enough for the skew window; renewed every 5 s. */
  function forgedInits(): { frame: Uint8Array; ghost: boolean }[] {
    const frames: { frame: Uint8Array; ghost: boolean }[] = [];
    for (let copy = 0; copy < 5; copy++) {
      for (const id of [...NAMED, ...GHOSTS]) {
        const frame = initiateSession({ provider, self: { id, x25519: forgerKeys.get(id)! }, directory: world.directory, peerId: POLICY }).frame;
        frames.push({ frame, ghost: GHOSTS.includes(id) });
      }
    }
    return frames;
  }

  it(`leaves at least 95% of honest new sessions succeeding during ${SECONDS} s of forged inits`, { timeout: (SECONDS + 60) * 1000 }, async () => {
    const subject = serverBus.subject(Commands.policy.evaluate);
    let frames = forgedInits();
    let renewed = Date.now();
    let forged = 0;
    let ghostInits = 0;
    const started = Date.now();
    const end = started + SECONDS * 1000;
    // The forger: every millisecond, as many inits as keep it at its rate (an even flow, not
    // bursts that a budget refilled between them would absorb); NATS buffers the publishes.
    let flooding = true;
    const flood = () => {
      if (!flooding) return;
      if (Date.now() - renewed > 5000) {
        frames = forgedInits();
        renewed = Date.now();
      }
      const due = Math.floor(((Date.now() - started) / 1000) * FLOOD_RATE);
      while (forged < due) {
        const h = natsHeaders();
        h.set('Bulwark-Kind', 'handshake');
        h.set('Bulwark-Admission', Buffer.from(provider.randomBytes(16)).toString('base64url'));
        const next = frames[forged % frames.length]!;
        forger.publish(subject, next.frame, { headers: h });
        forged++;
        if (next.ghost) ghostInits++;
      }
      setTimeout(flood, 1);
    };
    flood();

    // Honest principals: each attempt is a new client, so a new handshake, then one request.
    let attempts = 0;
    let succeeded = 0;
    const failures = new Map<string, number>();
    /** Whether each QUIET principal's first session (the one that needs its key derived) succeeded. */
    const quietFirst = new Map<string, boolean>();
    const honest: Promise<void>[] = [];
    try {
      await new Promise((r) => setTimeout(r, WARMUP_MS));
      while (Date.now() < end) {
        const id = HONEST[attempts % HONEST.length]!;
        attempts++;
        const first = QUIET.includes(id) && !quietFirst.has(id);
        if (first) quietFirst.set(id, false);
        const client = new CommandClient(clientBus, {
          sessions: { provider, self: world.identity(id), directory: world.directory },
          rejections: new RejectionReporter({ reporter: id, publish: async () => undefined }),
        });
        honest.push(
          client.request(Commands.policy.evaluate, text('q'), { timeoutMs: 2000 }).then(
            (reply) => {
              if (new TextDecoder().decode(reply) !== `ok:${id}`) return;
              succeeded++;
              if (first) quietFirst.set(id, true);
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
      flooding = false;
    }
    await Promise.all(honest);
    const elapsed = (Date.now() - started) / 1000;
    // The last forged inits may still be on their way to the server.
    const counted = () => Object.values(serverRejections.metrics().rejectedByReason).reduce((a, b) => a + b, 0);
    for (let i = 0; i < 100 && counted() < forged; i++) await new Promise((r) => setTimeout(r, 50));
    const ratio = succeeded / attempts;
    const rejected = serverRejections.metrics().rejectedByReason;
    console.log(
      `handshake flood: ${SECONDS} s, ${forged} forged inits (${Math.round(forged / elapsed)}/s naming ${NAMED.length} principals and ${GHOSTS.length} unknown ids); ` +
        `honest new sessions ${succeeded}/${attempts} = ${(ratio * 100).toFixed(1)}%; first sessions of never-named principals ${[...quietFirst.values()].filter(Boolean).length}/${QUIET.length}; honest failures ${JSON.stringify(Object.fromEntries(failures))}; ` +
        `server rejections ${JSON.stringify(rejected)}`,
    );
    expect(attempts).toBeGreaterThan(((SECONDS * 1000 - WARMUP_MS) / 1000) * HONEST_RATE * 0.5);
    // The forger shares the machine: under load it reaches less than the rate it asks for.
    expect(forged).toBeGreaterThan(SECONDS * FLOOD_RATE * 0.3);
    expect(ratio).toBeGreaterThanOrEqual(0.95);
    // The flood must not keep a principal it never named from its first session either.
    expect([...quietFirst.values()]).toEqual(QUIET.map(() => true));
    // The cost bound: every forged init was refused before any key work, at its admission tag or
    // for naming no directory entry; none reached Noise IK (which refuses a wrong static key as
    // E_UNKNOWN_SENDER too, so the counts say it: one unknown-sender refusal per ghost init).
    expect(rejected).toEqual({ E_BUS_ADMISSION: forged - ghostInits, E_UNKNOWN_SENDER: ghostInits });
  });
});
