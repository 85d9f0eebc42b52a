import { describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { initiateSession } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { HandshakeLimiter, type HandshakeLimits } from '../handshake-limiter.js';
import { AdmissionKeys, encodeAdmissionTag } from './handshake-admission.js';
import { HandshakeGate } from './handshake-gate.js';

const provider = defaultCryptoProvider();
const POLICY = 'svc.policy';

function setup(limits: HandshakeLimits = {}) {
  let now = 1_000_000;
  const clock = () => now;
  const world = testWorld({ provider, ids: [POLICY, 'agent.a1', 'agent.b1', 'svc.other'] });
  const gate = new HandshakeGate({ provider, self: world.identity(POLICY), directory: world.directory, clock }, new HandshakeLimiter({ ...limits, now: clock }));
  /** An init from `id` and the tag its client would send. */
  const init = (id: string, peerId = POLICY) => {
    const frame = initiateSession({ provider, self: world.identity(id), directory: world.directory, peerId, clock }).frame;
    const keys = new AdmissionKeys({ provider, self: world.identity(id), directory: world.directory });
    return { frame, tag: encodeAdmissionTag(keys.tag(world.directory.lookup(peerId)!, frame)!) };
  };
  return { gate, init, world, advance: (ms: number) => (now += ms) };
}

describe('HandshakeGate', () => {
  it('admits a tagged init and charges the principal it authenticated', () => {
    const { gate, init } = setup({ perSenderPerSecond: 0.001, perSenderBurst: 2 });
    const a = [init('agent.a1'), init('agent.a1'), init('agent.a1')];
    expect(a.map((i) => gate.admit(i.frame, i.tag))).toEqual([
      { ok: true, sender: 'agent.a1' },
      { ok: true, sender: 'agent.a1' },
      { ok: false, reason: 'E_BUS_HANDSHAKE_RATE', sender: 'agent.a1' },
    ]);
    const b = init('agent.b1');
    expect(gate.admit(b.frame, b.tag)).toEqual({ ok: true, sender: 'agent.b1' });
  });

  it('never charges a principal for inits that do not authenticate as it, however many', () => {
    const { gate, init } = setup({ perSenderPerSecond: 0.001, perSenderBurst: 1 });
    const real = init('agent.a1');
    for (let i = 0; i < 200; i++) {
      const forged = init('agent.a1');
      expect(gate.admit(forged.frame, undefined)).toMatchObject({ ok: false, reason: 'E_BUS_ADMISSION' });
      expect(gate.admit(forged.frame, real.tag)).toMatchObject({ ok: false, reason: 'E_BUS_ADMISSION' });
      expect(gate.admit(forged.frame, init('agent.b1').tag)).toMatchObject({ ok: false, reason: 'E_BUS_ADMISSION' });
    }
    expect(gate.admit(real.frame, real.tag)).toEqual({ ok: true, sender: 'agent.a1' });
  });

  it('refuses an authentic init replayed within its window', () => {
    const { gate, init } = setup();
    const a = init('agent.a1');
    expect(gate.admit(a.frame, a.tag).ok).toBe(true);
    expect(gate.admit(a.frame, a.tag)).toMatchObject({ ok: false, reason: 'E_REPLAY' });
  });

  it('refuses stale, future, misaddressed, unknown and malformed inits before looking at the tag', () => {
    const { gate, init, advance, world } = setup();
    const old = init('agent.a1');
    advance(31_000);
    expect(gate.admit(old.frame, old.tag)).toMatchObject({ ok: false, reason: 'E_STALE' });
    const future = init('agent.a1');
    advance(-62_000);
    expect(gate.admit(future.frame, future.tag)).toMatchObject({ ok: false, reason: 'E_FUTURE' });
    advance(31_000);
    const other = init('agent.a1', 'svc.other');
    expect(gate.admit(other.frame, other.tag)).toMatchObject({ ok: false, reason: 'E_WRONG_RECIPIENT' });
    const stranger = testWorld({ provider, ids: ['agent.mallory'] });
    const mallory = initiateSession({ provider, self: stranger.identity('agent.mallory'), directory: { lookup: (id) => world.directory.lookup(id) }, peerId: POLICY, clock: () => 1_000_000 }).frame;
    expect(gate.admit(mallory, old.tag)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER', sender: 'agent.mallory' });
    expect(gate.admit(new Uint8Array(10), old.tag)).toMatchObject({ ok: false, reason: 'E_FRAME_SIZE' });
  });

  it('pays only key work from the shared failure budget: a flood of refused inits cannot empty it', () => {
    const { gate, init } = setup({ failuresPerSecond: 0.001, failureBurst: 2 });
    // Forged inits naming agent.a1: the first makes the gate derive agent.a1's key (one token);
    // the refusals themselves cost no key work and draw nothing, however many.
    for (let i = 0; i < 200; i++) expect(gate.admit(init('agent.a1').frame, init('agent.b1').tag)).toMatchObject({ ok: false, reason: 'E_BUS_ADMISSION' });
    for (let i = 0; i < 200; i++) expect(gate.admit(init('agent.a1').frame, undefined)).toMatchObject({ ok: false, reason: 'E_BUS_ADMISSION' });
    // So agent.b1, never seen before, still gets its key derived (the other token) and is admitted...
    const b = init('agent.b1');
    expect(gate.admit(b.frame, b.tag)).toEqual({ ok: true, sender: 'agent.b1' });
    // ...and agent.a1, whose key is derived, needs no token: its budget is its own.
    const a = init('agent.a1');
    expect(gate.admit(a.frame, a.tag)).toEqual({ ok: true, sender: 'agent.a1' });
    // With both tokens spent on key work, a third principal's first derivation waits for the budget.
    const other = init('svc.other');
    expect(gate.admit(other.frame, other.tag)).toMatchObject({ ok: false, reason: 'E_BUS_HANDSHAKE_RATE', sender: 'svc.other' });
  });

  it('charges a handshake that fails in Noise IK after admission to the shared failure budget', () => {
    const { gate, init } = setup({ failuresPerSecond: 0.001, failureBurst: 2 });
    const a = init('agent.a1');
    expect(gate.admit(a.frame, a.tag).ok).toBe(true); // derivation: one token
    gate.failed(); // the other
    const b = init('agent.b1');
    expect(gate.admit(b.frame, b.tag)).toMatchObject({ ok: false, reason: 'E_BUS_HANDSHAKE_RATE' });
  });
});
