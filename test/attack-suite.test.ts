// The SecureChannel attack suite, on the wire of the real NATS. Real services built on the
// bus (a policy RPC server with two instances in one queue group, and the ledger's durable
// stream consumer) carry genuine traffic; an attacker with a raw NATS connection records it,
// then replays, mutates and injects frames. Every attempt's expected rejection reason comes
// from `attack-model.ts` (the README's check order, written independently of the envelope),
// and the bus's rejection counters must match per reason, per category, with no handler call
// beyond the genuine ones.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { createCryptoProvider } from '@bulwark/crypto';
import { initiateSession, SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import {
  AdmissionKeys,
  CommandClient,
  Commands,
  connectBus,
  createEventPublisher,
  directSubject,
  encodeAdmissionTag,
  ensureStreams,
  Events,
  LEDGER_PRINCIPAL,
  RejectionReporter,
  removeNamespaceStreams,
  serveCommands,
  ServicePrincipals,
  startStreamConsumer,
  uniqueNamespace,
  type Bus,
  type CommandServer,
  type RunningConsumer,
} from '@bulwark/bus';
import { expectedReason, layoutOf, type ReceiverModel } from './attack-model.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const provider = createCryptoProvider('node');
const DAY_MS = 86_400_000;
const SKEW_MS = 30_000;
const MAX_FRAME = 64 * 1024;
// Every envelope object in this suite reads this frozen clock, so that the expected answer
// to a flipped timestamp bit does not depend on how long the run takes.
const T0 = Date.now();
const clock = () => T0;

const POLICY = ServicePrincipals.policy;
const AGENT = 'agent.a1';
const ROGUE = 'agent.rogue';
const OTHER_RECIPIENT = 'svc.incident-response';

function world() {
  const real = testWorld({ provider, clock, validityMs: DAY_MS, ids: [POLICY, AGENT, LEDGER_PRINCIPAL, OTHER_RECIPIENT] });
  // The rogue principal's entry is signed by a root nobody pinned; in its own directory that
  // root also vouches for the real services' entries, so it can address them.
  const rogue = testWorld({ provider, clock, validityMs: DAY_MS, ids: [ROGUE] });
  for (const id of [POLICY, LEDGER_PRINCIPAL]) rogue.admit(real.identity(id).signed.entry);
  return {
    directory: real.directory,
    identity: real.identity,
    rogue: { identity: rogue.identity(ROGUE), directory: rogue.directory, entry: rogue.identity(ROGUE).signed },
  };
}

interface Recorded {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
}

interface Attempt {
  readonly subject: string;
  readonly frame: Uint8Array;
  readonly headers?: MsgHdrs;
  /** A rejection reason, or `duplicate` (an authentic redelivery the consumer acknowledges unprocessed). */
  readonly expect: string;
}

interface CategoryResult {
  readonly surface: string;
  readonly category: string;
  readonly attempts: number;
  readonly observed: Record<string, number>;
}

function tally(reasons: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of reasons) out[r] = (out[r] ?? 0) + 1;
  return out;
}

function diff(after: Readonly<Record<string, number>>, before: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

const sum = (r: Readonly<Record<string, number>>) => Object.values(r).reduce((a, b) => a + b, 0);

async function until(check: () => boolean, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every single-bit flip of `frame`, each tagged with the field it hit. */
function* bitFlips(frame: Uint8Array): Generator<{ field: string; frame: Uint8Array }> {
  for (const f of layoutOf(frame).fields) {
    for (let byte = f.start; byte < f.end; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = frame.slice();
        copy[byte]! ^= 1 << bit;
        yield { field: f.name, frame: copy };
      }
    }
  }
}

function truncations(frame: Uint8Array): Uint8Array[] {
  return Array.from({ length: frame.length }, (_, n) => frame.slice(0, n));
}

function oversized(frame: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let extra = 1; extra <= 64; extra++) {
    const grown = new Uint8Array(frame.length + extra);
    grown.set(frame);
    out.push(grown);
  }
  // Past the receiver's maxFrameSize (NATS itself carries up to 1 MiB).
  for (let extra = 1; extra <= 8; extra++) {
    const huge = new Uint8Array(MAX_FRAME + extra);
    huge.set(frame);
    out.push(huge);
  }
  return out;
}

/** The same frame with its recipient id replaced (lengths kept consistent). */
function readdress(frame: Uint8Array, recipient: string): Uint8Array {
  const s = frame[2]!;
  const oldLength = frame[3 + s]!;
  const id = Buffer.from(recipient, 'latin1');
  return Buffer.concat([frame.subarray(0, 3 + s), Buffer.from([id.length]), id, frame.subarray(4 + s + oldLength)]);
}

function kindHeader(kind: 'handshake' | 'request'): MsgHdrs {
  const h = natsHeaders();
  h.set('Bulwark-Kind', kind);
  return h;
}

describe('SecureChannel attack suite over the real NATS', () => {
  const ns = uniqueNamespace('attack');
  const buses: Bus[] = [];
  let attacker: NatsConnection;
  const w = world();
  const silentPublish = async () => undefined;

  beforeAll(async () => {
    for (const name of ['policy-1', 'policy-2', 'agent', 'ledger']) buses.push(await connectBus({ url: NATS_URL, name, namespace: ns }));
    await ensureStreams(buses[3]!);
    attacker = await connect({ servers: NATS_URL, name: 'attacker' });
  });

  afterAll(async () => {
    await removeNamespaceStreams(buses[3]!).catch(() => undefined);
    await Promise.all(buses.map((b) => b.close()));
    await attacker?.close();
  });

  it('accepts none of ≥ 10,000 replayed, mutated and forged frames, and counts each with the right reason', { timeout: 120_000 }, async () => {
    const started = Date.now();
    const results: CategoryResult[] = [];

    // --- the services under attack -------------------------------------------------
    const rpcRejections = new RejectionReporter({ reporter: POLICY, publish: silentPublish });
    let rpcHandled = 0;
    const servers: CommandServer[] = [];
    for (const bus of buses.slice(0, 2)) {
      servers.push(
        await serveCommands(bus, {
          service: 'policy',
          version: '1.0.0',
          sessions: { provider, self: w.identity(POLICY), directory: w.directory, clock, maxFrameSize: MAX_FRAME },
          rejections: rpcRejections,
          handlers: {
            [Commands.policy.evaluate]: async () => {
              rpcHandled += 1;
              return new TextEncoder().encode('allow');
            },
          },
        }),
      );
    }
    const streamRejections = new RejectionReporter({ reporter: LEDGER_PRINCIPAL, publish: silentPublish });
    let streamHandled = 0;
    const receiver = new SealedReceiver({ provider, self: w.identity(LEDGER_PRINCIPAL), directory: w.directory, clock, maxFrameSize: MAX_FRAME });
    const consumer: RunningConsumer = await startStreamConsumer(
      buses[3]!,
      receiver,
      { stream: 'events', durable: 'ledger-attack', filterSubject: 'bulwark.evt.policy.>' },
      async () => void streamHandled++,
      streamRejections,
    );

    // --- genuine traffic, recorded off the wire by the attacker ---------------------
    const recordedRpc: Recorded[] = [];
    const recordedEvents: Recorded[] = [];
    const tap = (subject: string, into: Recorded[]) =>
      attacker.subscribe(subject, { callback: (_e, m) => void into.push({ subject: m.subject, data: new Uint8Array(m.data), headers: m.headers }) });
    const rpcTap = tap(`${ns.subjectPrefix}bulwark.direct.>`, recordedRpc);
    const eventTap = tap(`${ns.subjectPrefix}bulwark.evt.policy.>`, recordedEvents);
    await attacker.flush();

    const client = new CommandClient(buses[2]!, { sessions: { provider, self: w.identity(AGENT), directory: w.directory, clock }, rejections: new RejectionReporter({ reporter: AGENT, publish: silentPublish }) });
    const GENUINE_RPC = 12;
    const body = new Uint8Array(1024).fill(0x61);
    for (let i = 0; i < GENUINE_RPC; i++) await client.request(Commands.policy.evaluate, body, { timeoutMs: 5000 });

    const policySender = new SealedSender({ provider, self: w.identity(POLICY), directory: w.directory, clock, recipientId: LEDGER_PRINCIPAL });
    const events = createEventPublisher(buses[0]!, policySender);
    const payload = new Uint8Array(256).fill(0x62);
    const publishGenuine = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) await events.publish({ subject: Events.policy.decision, eventId: `genuine-${i}`, payload });
    };
    await publishGenuine(0, 10);
    // Frames sealed and lost in between move the sender's counter past the replay window,
    // so the first ten become too old to tell from a replay once a later frame is accepted.
    for (let i = 0; i < 4100; i++) policySender.seal(payload);
    await publishGenuine(10, 10);
    const GENUINE_EVENTS = 20;
    await until(() => streamHandled === GENUINE_EVENTS && rpcHandled === GENUINE_RPC, 10_000, 'genuine traffic handled');
    await attacker.flush();
    rpcTap.unsubscribe();
    eventTap.unsubscribe();
    expect(recordedRpc).toHaveLength(GENUINE_RPC);
    expect(recordedEvents).toHaveLength(GENUINE_EVENTS);

    // --- what each receiver holds, for the oracle ------------------------------------
    const holder = (await client.instanceOf('policy'))!;
    const other = servers.map((s) => s.instanceId).find((id) => id !== holder)!;
    const firstRequest = recordedRpc[0]!.data;
    const rpcSession = `${AGENT}/${Buffer.from(firstRequest.subarray(layoutOf(firstRequest).fields[6]!.start, layoutOf(firstRequest).fields[6]!.end)).toString('hex')}`;
    const base = { now: T0, skewMs: SKEW_MS, staleAfterMs: SKEW_MS, maxFrameSize: MAX_FRAME, directory: new Set([POLICY, AGENT, LEDGER_PRINCIPAL, OTHER_RECIPIENT]), epochs: new Map<string, string>() };
    const holderModel: ReceiverModel = {
      ...base,
      kind: 'session-responder',
      self: POLICY,
      sessions: new Set([rpcSession]),
      accepted: new Map(recordedRpc.map((r) => [Buffer.from(r.data).toString('hex'), 'duplicate'] as const)),
    };
    const otherModel: ReceiverModel = { ...holderModel, sessions: new Set(), accepted: new Map() };
    const lastEvent = recordedEvents.at(-1)!.data;
    const eventLayout = layoutOf(lastEvent).fields;
    const fieldHex = (frame: Uint8Array, name: string) => {
      const f = eventLayout.find((x) => x.name === name)!;
      return Buffer.from(frame.subarray(f.start, f.end)).toString('hex');
    };
    const ledgerModel: ReceiverModel = {
      ...base,
      kind: 'sealed-receiver',
      self: LEDGER_PRINCIPAL,
      sessions: new Set(),
      epochs: new Map([[`${POLICY}/${fieldHex(lastEvent, 'session id')}`, fieldHex(lastEvent, 'sealed handshake')]]),
      accepted: new Map(recordedEvents.map((r, i) => [Buffer.from(r.data).toString('hex'), i < 10 ? 'too-old' : 'duplicate'] as const)),
    };

    // --- the attacks ------------------------------------------------------------------
    const holderSubject = recordedRpc[0]!.subject;
    const otherSubject = `${ns.subjectPrefix}${directSubject(other, Commands.policy.evaluate)}`;
    const commandSubject = `${ns.subjectPrefix}${Commands.policy.evaluate}`;
    const eventSubject = `${ns.subjectPrefix}${Events.policy.decision}`;
    const requestHeaders = recordedRpc[0]!.headers;

    const rpcAttempts = (model: ReceiverModel, subject: string, frames: Iterable<Uint8Array>): Attempt[] =>
      [...frames].map((frame) => {
        const reason = expectedReason(frame, model);
        // The RPC server reports an authentic repeated request as a replay: requests are never redelivered.
        return { subject, frame, headers: requestHeaders, expect: reason === 'duplicate' ? 'E_REPLAY' : reason };
      });
    const eventAttempts = (frames: Iterable<Uint8Array>): Attempt[] => [...frames].map((frame) => ({ subject: eventSubject, frame, expect: expectedReason(frame, ledgerModel) }));
    const repeat = <T>(items: readonly T[], times: number): T[] => Array.from({ length: times }, () => items).flat();

    // Genuine senders whose clocks are off by more than the window: authentic, and refused.
    const stale = new SealedSender({ provider, self: w.identity(POLICY), directory: w.directory, clock: () => T0 - SKEW_MS - 1, recipientId: LEDGER_PRINCIPAL });
    const future = new SealedSender({ provider, self: w.identity(POLICY), directory: w.directory, clock: () => T0 + SKEW_MS + 1, recipientId: LEDGER_PRINCIPAL });
    const rogueSender = new SealedSender({ provider, self: w.rogue.identity, directory: w.rogue.directory, clock, recipientId: LEDGER_PRINCIPAL });
    const elsewhere = new SealedSender({ provider, self: w.identity(POLICY), directory: w.directory, clock, recipientId: OTHER_RECIPIENT });
    const sealMany = (sender: SealedSender, n: number) => Array.from({ length: n }, () => sender.seal(payload));
    expect(w.directory.put(w.rogue.entry)).toMatchObject({ ok: false, reason: 'E_ENTRY_SIGNATURE' });

    // An authenticated session whose client clock then drifts: its frames carry a valid mac.
    let driftingNow = T0;
    const pending = initiateSession({ provider, self: w.identity(AGENT), directory: w.directory, clock: () => driftingNow, peerId: POLICY });
    // A genuine handshake: with the admission tag the agent's client would send.
    const driftHeaders = kindHeader('handshake');
    const agentKeys = new AdmissionKeys({ provider, self: w.identity(AGENT), directory: w.directory });
    driftHeaders.set('Bulwark-Admission', encodeAdmissionTag(agentKeys.tag(w.directory.lookup(POLICY)!, pending.frame)!));
    const handshakeReply = await attacker.request(commandSubject, pending.frame, { headers: driftHeaders, timeout: 5000 });
    const drifting = pending.complete(handshakeReply.data);
    if (!drifting.ok) throw new Error(`drifting session refused: ${drifting.reason}`);
    const driftSubject = `${ns.subjectPrefix}${directSubject(drifting.session.instanceId, Commands.policy.evaluate)}`;
    const driftModel: ReceiverModel = { ...holderModel, sessions: new Set([`${AGENT}/${drifting.session.id}`]) };
    const drifted = (offset: number, n: number) =>
      Array.from({ length: n }, () => {
        driftingNow = T0 + offset;
        return drifting.session.seal(body);
      });

    const rogueInits = Array.from({ length: 50 }, () => initiateSession({ provider, self: w.rogue.identity, directory: w.rogue.directory, clock, peerId: POLICY }).frame);

    const rpcCategories: Array<[string, Attempt[]]> = [
      ['replay, same instance', rpcAttempts(holderModel, holderSubject, repeat(recordedRpc.map((r) => r.data), 40))],
      ['replay, other instance', rpcAttempts(otherModel, otherSubject, repeat(recordedRpc.map((r) => r.data), 40))],
      ['bit flip, every bit', rpcAttempts(holderModel, holderSubject, [...bitFlips(recordedRpc.at(-1)!.data)].map((f) => f.frame))],
      ['truncated', rpcAttempts(holderModel, holderSubject, truncations(recordedRpc.at(-1)!.data))],
      ['oversized', rpcAttempts(holderModel, holderSubject, oversized(recordedRpc.at(-1)!.data))],
      ['stale timestamp', rpcAttempts(driftModel, driftSubject, drifted(-SKEW_MS - 1, 50))],
      ['future timestamp', rpcAttempts(driftModel, driftSubject, drifted(SKEW_MS + 1, 50))],
      ['principal not signed by root', rogueInits.map((frame) => ({ subject: commandSubject, frame, headers: kindHeader('handshake'), expect: 'E_UNKNOWN_SENDER' }))],
    ];
    const streamCategories: Array<[string, Attempt[]]> = [
      ['replay inside window', eventAttempts(repeat(recordedEvents.slice(10).map((r) => r.data), 10))],
      ['replay outside window', eventAttempts(repeat(recordedEvents.slice(0, 10).map((r) => r.data), 10))],
      ['bit flip, every bit', eventAttempts([...bitFlips(lastEvent)].map((f) => f.frame))],
      ['truncated', eventAttempts(truncations(lastEvent))],
      ['oversized', eventAttempts(oversized(lastEvent))],
      ['stale timestamp', eventAttempts(sealMany(stale, 50))],
      ['future timestamp', eventAttempts(sealMany(future, 50))],
      ['principal not signed by root', eventAttempts(sealMany(rogueSender, 100))],
      ['sealed to another recipient', eventAttempts(sealMany(elsewhere, 50))],
      ['re-addressed to this recipient', eventAttempts(sealMany(elsewhere, 50).map((f) => readdress(f, LEDGER_PRINCIPAL)))],
    ];

    // The oracle's own sanity: each mutated field yields the reasons worked out for it.
    const flipReasons = new Map<string, Set<string>>();
    for (const f of bitFlips(lastEvent)) {
      const set = flipReasons.get(f.field) ?? new Set<string>();
      set.add(expectedReason(f.frame, ledgerModel));
      flipReasons.set(f.field, set);
    }
    expect(flipReasons.get('version')).toEqual(new Set(['E_VERSION']));
    expect(flipReasons.get('ciphertext')).toEqual(new Set(['E_MAC']));
    expect(flipReasons.get('mac')).toEqual(new Set(['E_MAC']));
    expect(flipReasons.get('counter')).toEqual(new Set(['E_MAC']));
    expect(flipReasons.get('sealed handshake')).toEqual(new Set(['E_HANDSHAKE']));
    expect(flipReasons.get('session id')).toEqual(new Set(['E_HANDSHAKE']));
    expect(flipReasons.get('ciphertext length')).toEqual(new Set(['E_FRAME_SHAPE']));

    const run = async (surface: string, categories: Array<[string, Attempt[]]>, rejected: () => Readonly<Record<string, number>>, duplicates: () => number, handled: () => number, genuine: number) => {
      for (const [category, attempts] of categories) {
        const before = { ...rejected() };
        const dupBefore = duplicates();
        for (let i = 0; i < attempts.length; i++) {
          const a = attempts[i]!;
          attacker.publish(a.subject, a.frame, a.headers !== undefined ? { headers: a.headers } : undefined);
          if (i % 500 === 499) await attacker.flush();
        }
        await attacker.flush();
        await until(() => sum(diff(rejected(), before)) + duplicates() - dupBefore + handled() - genuine >= attempts.length, 30_000, `${surface} / ${category}: every attempt answered`);
        const observed = diff(rejected(), before);
        if (duplicates() > dupBefore) observed['duplicate (acked, not handled)'] = duplicates() - dupBefore;
        results.push({ surface, category, attempts: attempts.length, observed });
        const expected = tally(attempts.map((a) => (a.expect === 'duplicate' ? 'duplicate (acked, not handled)' : a.expect)));
        expect(observed, `${surface} / ${category}`).toEqual(expected);
        expect(handled(), `${surface} / ${category}: no attack reached a handler`).toBe(genuine);
      }
    };
    await run('rpc (2 instances)', rpcCategories, () => rpcRejections.metrics().rejectedByReason, () => 0, () => rpcHandled, GENUINE_RPC);
    await run('stream consumer', streamCategories, () => streamRejections.metrics().rejectedByReason, () => consumer.metrics().duplicates, () => streamHandled, GENUINE_EVENTS);

    // The genuine client still works after the attacks.
    await client.request(Commands.policy.evaluate, body, { timeoutMs: 5000 });
    expect(rpcHandled).toBe(GENUINE_RPC + 1);

    const total = results.reduce((a, r) => a + r.attempts, 0);
    const lines = results.map(
      (r) => `${r.surface.padEnd(18)} ${r.category.padEnd(32)} ${String(r.attempts).padStart(6)}  ${Object.entries(r.observed).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    );
    console.log(
      [`${'surface'.padEnd(18)} ${'category'.padEnd(32)} ${'tries'.padStart(6)}  rejections by reason`, ...lines, `total ${total} attempts, 0 accepted, ${((Date.now() - started) / 1000).toFixed(1)} s`].join('\n'),
    );
    expect(total).toBeGreaterThanOrEqual(10_000);
    await consumer.stop();
  });
});
