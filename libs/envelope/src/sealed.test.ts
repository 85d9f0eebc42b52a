import { describe, expect, it } from 'vitest';
import { Mode } from './frame.js';
import { SealedReceiver, SealedSender } from './sealed.js';
import { directoryOf, entryFor, principal, providers, revoke, ROOT_SEED, utf8, world } from './test-support/fixtures.js';
import { expectEveryBitFlipRefused, oneBitPerByte } from './test-support/tamper.js';
import { signDirectoryEntry } from './directory.js';
import { REPLAY_WINDOW_SIZE } from './replay-window.js';

describe.each(providers.map((p) => [p.name, p] as const))('sealed mode (%s provider)', (_name, provider) => {
  function setup(senderOptions: { epochMaxMessages?: number; epochMaxAgeMs?: number } = {}) {
    const w = world(provider);
    const sender = new SealedSender({ ...w.common, self: w.agent, recipientId: 'svc.audit-ledger', ...senderOptions });
    const instanceA = new SealedReceiver({ ...w.common, self: w.ledger });
    const instanceB = new SealedReceiver({ ...w.common, self: w.ledger });
    return { ...w, sender, instanceA, instanceB };
  }

  it('delivers to any instance of the recipient without shared state', () => {
    const { sender, instanceA, instanceB, agent } = setup();
    const frames = [0, 1, 2, 3].map((i) => sender.seal(utf8(`event ${i}`)));
    frames.forEach((frame, i) => {
      const result = (i % 2 === 0 ? instanceA : instanceB).open(frame);
      expect(result).toMatchObject({ ok: true, mode: Mode.sealed, sender: agent.id, recipient: 'svc.audit-ledger', counter: BigInt(i) });
      expect(result.ok && new TextDecoder().decode(result.plaintext)).toBe(`event ${i}`);
    });
  });

  it('rotates its ephemeral key per epoch, by count and by time', () => {
    const { sender, instanceA, clock } = setup({ epochMaxMessages: 2, epochMaxAgeMs: 60_000 });
    const sessions = [0, 1, 2, 3, 4].map(() => {
      const result = instanceA.open(sender.seal(utf8('e')));
      if (!result.ok) throw new Error(result.detail);
      return `${result.sessionId}:${result.counter}`;
    });
    const ids = sessions.map((s) => s.split(':')[0]);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[1]);
    expect(ids[2]).toBe(ids[3]);
    expect(sessions[2]!.endsWith(':0')).toBe(true);
    const before = instanceA.open(sender.seal(utf8('e')));
    clock.advance(60_000);
    const after = instanceA.open(sender.seal(utf8('e')));
    expect(before.ok && after.ok && before.sessionId !== after.sessionId).toBe(true);
  });

  it('refuses every bit flip, field by field', () => {
    const { sender, instanceA } = setup();
    // An earlier frame of the epoch puts its keys in the receiver's cache, as in steady state.
    expect(instanceA.open(sender.seal(utf8('first event'))).ok).toBe(true);
    const frame = sender.seal(utf8('an audit event'));
    expectEveryBitFlipRefused(frame, (f) => instanceA.open(f), {
      version: ['E_VERSION'],
      mode: ['E_FRAME_SHAPE', 'E_MODE'],
      'sender length': ['E_FRAME_SHAPE'],
      sender: ['E_FRAME_SHAPE', 'E_UNKNOWN_SENDER'],
      'recipient length': ['E_FRAME_SHAPE'],
      recipient: ['E_FRAME_SHAPE', 'E_WRONG_RECIPIENT'],
      'session id': ['E_HANDSHAKE'],
      counter: ['E_MAC'],
      timestamp: ['E_MAC', 'E_STALE', 'E_FUTURE', 'E_FRAME_SHAPE'],
      'sealed handshake': ['E_HANDSHAKE'],
      'ciphertext length': ['E_FRAME_SHAPE'],
      ciphertext: ['E_MAC'],
      mac: ['E_MAC'],
    }, (field, index) => (field === 'session id' || field === 'sealed handshake' ? oneBitPerByte(field, index) : [0, 1, 2, 3, 4, 5, 6, 7]));
    expect(instanceA.open(frame).ok).toBe(true);
  });

  it('fails a frame re-addressed to another recipient', () => {
    const { sender, common, policy, ledger, agent, clock } = setup();
    const frame = sender.seal(utf8('for the ledger'));
    // Delivered as is to another service: the header names the ledger.
    const policyReceiver = new SealedReceiver({ ...common, self: policy });
    expect(policyReceiver.open(frame)).toMatchObject({ ok: false, reason: 'E_WRONG_RECIPIENT' });
    // Header rewritten to name the other service: the Noise prologue no longer matches.
    const ledgerBytes = new TextEncoder().encode(ledger.id);
    const start = frame.indexOf(ledgerBytes[0]!, 3 + frame[2]! + 1);
    const rewritten = new Uint8Array(frame.length - ledgerBytes.length + policy.id.length);
    rewritten.set(frame.subarray(0, start - 1));
    rewritten[start - 1] = policy.id.length;
    rewritten.set(new TextEncoder().encode(policy.id), start);
    rewritten.set(frame.subarray(start + ledgerBytes.length), start + policy.id.length);
    expect(policyReceiver.open(rewritten)).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
    // Even a receiver holding the ledger's id but another static key cannot open it.
    const impostor = principal(provider, ledger.id, 50);
    const impostorReceiver = new SealedReceiver({ ...common, directory: directoryOf(provider, clock, [agent]), self: impostor });
    expect(impostorReceiver.open(frame)).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
  });

  it('refuses stale and future frames, duplicates and frames older than the window', () => {
    const { sender, instanceA, clock } = setup();
    const first = sender.seal(utf8('x'));
    clock.advance(30_001);
    expect(instanceA.open(first)).toMatchObject({ ok: false, reason: 'E_STALE' });
    clock.advance(-60_002);
    expect(instanceA.open(first)).toMatchObject({ ok: false, reason: 'E_FUTURE' });
    clock.advance(30_001);
    expect(instanceA.open(first).ok).toBe(true);
    expect(instanceA.open(first)).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: true });
    let last = first;
    for (let i = 0; i < REPLAY_WINDOW_SIZE + 1; i++) last = sender.seal(utf8('y'));
    expect(instanceA.open(last).ok).toBe(true);
    const old = instanceA.open(first);
    expect(old).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: false });
  });

  it('lets a durable-stream consumer drain a backlog older than the skew, never a future frame', () => {
    const { sender, common, ledger, clock, agent } = setup();
    const backlog = new SealedReceiver({ ...common, self: ledger, staleAfterMs: 3_600_000 });
    const frame = sender.seal(utf8('queued while the ledger was down'));
    clock.advance(600_000);
    expect(backlog.open(frame).ok).toBe(true);
    clock.advance(3_000_001);
    expect(backlog.open(sender.seal(utf8('fresh'))).ok).toBe(true);
    expect(backlog.open(frame)).toMatchObject({ ok: false, reason: 'E_STALE' });
    const fastClock = new SealedSender({ ...common, clock: () => clock.now + 30_001, self: agent, recipientId: ledger.id });
    expect(backlog.open(fastClock.seal(utf8('from the future')))).toMatchObject({ ok: false, reason: 'E_FUTURE' });
  });

  it('defers the replay window to commit(), so a redelivery after a failed handler is processed', () => {
    const { sender, instanceA } = setup();
    const frame = sender.seal(utf8('event'));
    const first = instanceA.open(frame, { deferCommit: true });
    expect(first.ok).toBe(true);
    // The handler failed: no commit. JetStream redelivers; the frame is still fresh.
    const second = instanceA.open(frame, { deferCommit: true });
    expect(second.ok).toBe(true);
    if (second.ok) second.commit();
    // Processed and committed: a further redelivery is an authentic duplicate.
    expect(instanceA.open(frame, { deferCommit: true })).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: true });
    // Without deferCommit the window is updated at once, and commit() changes nothing.
    const next = instanceA.open(sender.seal(utf8('next')));
    expect(next.ok).toBe(true);
    if (next.ok) next.commit();
  });

  it('refuses senders the directory does not vouch for, and stops at once on revocation', () => {
    const { sender, instanceA, common, clock, ledger, directory, agent } = setup();
    const stranger = principal(provider, 'agent.stranger', 60);
    const strangerSender = new SealedSender({ ...common, directory: directoryOf(provider, clock, [stranger, ledger]), self: stranger, recipientId: ledger.id });
    expect(instanceA.open(strangerSender.seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    const impostor = principal(provider, agent.id, 61);
    const impostorSender = new SealedSender({ ...common, directory: directoryOf(provider, clock, [impostor, ledger]), self: impostor, recipientId: ledger.id });
    expect(instanceA.open(impostorSender.seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
    const frame = sender.seal(utf8('x'));
    expect(instanceA.open(sender.seal(utf8('warm the cache'))).ok).toBe(true);
    revoke(provider, directory, agent);
    expect(instanceA.open(frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    revoke(provider, directory, ledger);
    expect(() => sender.seal(utf8('x'))).toThrow(/no valid directory entry/);
  });

  it('moves to a new epoch when the recipient rotates its key', () => {
    const { sender, common, clock, ledger, directory } = setup();
    const first = sender.seal(utf8('x'));
    const rotated = principal(provider, ledger.id, 70);
    expect(directory.put(signDirectoryEntry(provider, ROOT_SEED, entryFor(rotated, { keyVersion: 2 }))).ok).toBe(true);
    const second = sender.seal(utf8('y'));
    const receiver = new SealedReceiver({ ...common, self: rotated });
    expect(receiver.open(second).ok).toBe(true);
    expect(receiver.open(first)).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
    clock.advance(1);
  });
});

describe.each(providers.map((p) => [p.name, p] as const))("sealed mode across a rotation of one side's own key (%s provider)", (_name, provider) => {
  it("a receiver that rotated opens frames sealed to its previous key (previousX25519), and not without it", () => {
    const w = world(provider);
    // The sender still has the ledger's old entry; the ledger already holds its new key.
    const frame = new SealedSender({ ...w.common, self: w.agent, recipientId: w.ledger.id }).seal(utf8('in flight'));
    const renewed = principal(provider, w.ledger.id, 9).x25519;
    expect(new SealedReceiver({ ...w.common, self: { id: w.ledger.id, x25519: renewed, previousX25519: [w.ledger.x25519] } }).open(frame)).toMatchObject({ ok: true });
    expect(new SealedReceiver({ ...w.common, self: { id: w.ledger.id, x25519: renewed } }).open(frame)).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
  });

  it('a sender whose own key rotated starts a new epoch under the new key', () => {
    const w = world(provider);
    const self = { id: w.agent.id, x25519: w.agent.x25519 };
    const sender = new SealedSender({ ...w.common, self, recipientId: w.ledger.id });
    const receiver = new SealedReceiver({ ...w.common, self: w.ledger });
    const first = receiver.open(sender.seal(utf8('before')));
    expect(first.ok).toBe(true);
    const next = principal(provider, w.agent.id, 9);
    expect(w.directory.put(signDirectoryEntry(provider, ROOT_SEED, entryFor(next, { keyVersion: 2 }))).ok).toBe(true);
    self.x25519 = next.x25519;
    const second = receiver.open(sender.seal(utf8('after')));
    expect(second).toMatchObject({ ok: true });
    expect(first.ok && second.ok && first.sessionId !== second.sessionId).toBe(true);
  });

  it("frames a sender sealed under its replaced key open only while the directory's superseded grace lasts", () => {
    const w = world(provider);
    const old = entryFor(w.agent);
    const frame = new SealedSender({ ...w.common, self: w.agent, recipientId: w.ledger.id }).seal(utf8('sealed before the switch'));
    expect(w.directory.put(signDirectoryEntry(provider, ROOT_SEED, entryFor(principal(provider, w.agent.id, 9), { keyVersion: 2 }))).ok).toBe(true);
    const graced = { lookup: (id: string) => w.directory.lookup(id), superseded: (id: string) => (id === w.agent.id ? old : undefined) };
    expect(new SealedReceiver({ ...w.common, directory: graced, self: w.ledger }).open(frame)).toMatchObject({ ok: true });
    expect(new SealedReceiver({ ...w.common, self: w.ledger }).open(frame)).toMatchObject({ ok: false, reason: 'E_HANDSHAKE' });
  });
});
