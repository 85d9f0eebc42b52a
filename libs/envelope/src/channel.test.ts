import { describe, expect, it } from 'vitest';
import {
  ChannelReceiver,
  ChannelSender,
  SealedOrChannelReceiver,
  createChannelEpochKey,
  decodeChannelEpochKey,
  encodeChannelEpochKey,
  unwrapChannelEpochKey,
  wrapChannelEpochKey,
  type ChannelEpochKey,
} from './channel.js';
import { Mode } from './frame.js';
import { SealedReceiver, SealedSender } from './sealed.js';
import { providers, revoke, utf8, world } from './test-support/fixtures.js';
import { expectEveryBitFlipRefused } from './test-support/tamper.js';

const CHANNEL = 'soc.incidents';

describe.each(providers.map((p) => [p.name, p] as const))('channel mode (%s provider)', (_name, provider) => {
  function setup() {
    const w = world(provider);
    const subscribers = [w.alice, w.bob];
    /** The key-manager's part: a sealed wrap per authorized subscriber. */
    const distribute = (epochKey: ChannelEpochKey, to: typeof subscribers) =>
      new Map(to.map((s) => [s.id, wrapChannelEpochKey(new SealedSender({ ...w.common, self: w.keyManager, recipientId: s.id }), epochKey)]));
    const receiverOf = (s: (typeof subscribers)[number]) => ({
      sealed: new SealedReceiver({ ...w.common, self: s }),
      channel: new ChannelReceiver({ ...w.common, channelId: CHANNEL }),
    });
    return { ...w, subscribers, distribute, receiverOf };
  }

  it('encodes epoch keys canonically', () => {
    const epochKey = createChannelEpochKey(provider, CHANNEL, 7);
    const bytes = encodeChannelEpochKey(epochKey);
    expect(decodeChannelEpochKey(bytes)).toEqual(epochKey);
    expect(decodeChannelEpochKey(bytes.subarray(1))).toBeUndefined();
    expect(decodeChannelEpochKey(Uint8Array.from([...bytes, 0]))).toBeUndefined();
  });

  it('wraps the epoch key to each subscriber and carries frames one to many', () => {
    const { distribute, receiverOf, alice, bob, policy, common } = setup();
    const epochKey = createChannelEpochKey(provider, CHANNEL, 1);
    const wrapped = distribute(epochKey, [alice, bob]);
    const receivers = [alice, bob].map((s) => {
      const r = receiverOf(s);
      const unwrapped = unwrapChannelEpochKey(r.sealed, wrapped.get(s.id)!, 'svc.key-manager');
      if (!unwrapped.ok) throw new Error(unwrapped.detail);
      expect(unwrapped.epochKey).toEqual(epochKey);
      r.channel.install(unwrapped.epochKey);
      return r.channel;
    });
    const publisher = new ChannelSender({ ...common, senderId: policy.id, epochKey });
    for (let i = 0; i < 3; i++) {
      const frame = publisher.seal(utf8(`incident ${i}`));
      for (const receiver of receivers) {
        const result = receiver.open(frame);
        expect(result).toMatchObject({ ok: true, mode: Mode.channel, sender: policy.id, recipient: CHANNEL, counter: BigInt(i) });
        expect(result.ok && new TextDecoder().decode(result.plaintext)).toBe(`incident ${i}`);
      }
    }
  });

  it('keeps a wrapped key to its subscriber and its issuer', () => {
    const { distribute, receiverOf, alice, bob, common, agent, keyManager } = setup();
    const epochKey = createChannelEpochKey(provider, CHANNEL, 1);
    const forAlice = distribute(epochKey, [alice]).get(alice.id)!;
    expect(unwrapChannelEpochKey(receiverOf(bob).sealed, forAlice, 'svc.key-manager')).toMatchObject({ ok: false, reason: 'E_WRONG_RECIPIENT' });
    const fromAgent = wrapChannelEpochKey(new SealedSender({ ...common, self: agent, recipientId: alice.id }), epochKey);
    expect(unwrapChannelEpochKey(receiverOf(alice).sealed, fromAgent, 'svc.key-manager')).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
    const notAKey = new SealedSender({ ...common, self: keyManager, recipientId: alice.id }).seal(utf8('hello'));
    expect(unwrapChannelEpochKey(receiverOf(alice).sealed, notAKey, 'svc.key-manager')).toMatchObject({ ok: false, reason: 'E_FRAME_SHAPE' });
  });

  it('revoking a subscriber starts an epoch it cannot read', () => {
    const { distribute, receiverOf, alice, bob, policy, common, clock } = setup();
    const epoch1 = createChannelEpochKey(provider, CHANNEL, 1);
    const a = receiverOf(alice);
    const b = receiverOf(bob);
    for (const [r, s] of [[a, alice], [b, bob]] as const) {
      const u = unwrapChannelEpochKey(r.sealed, distribute(epoch1, [s]).get(s.id)!, 'svc.key-manager');
      if (u.ok) r.channel.install(u.epochKey);
    }
    const publisher = new ChannelSender({ ...common, senderId: policy.id, epochKey: epoch1 });
    const beforeRevocation = publisher.seal(utf8('old'));
    // Bob is revoked: epoch 2 goes to Alice only.
    const epoch2 = createChannelEpochKey(provider, CHANNEL, 2);
    const u2 = unwrapChannelEpochKey(a.sealed, distribute(epoch2, [alice]).get(alice.id)!, 'svc.key-manager');
    if (!u2.ok) throw new Error(u2.detail);
    a.channel.install(u2.epochKey);
    publisher.rotate(epoch2);
    expect(() => publisher.rotate(epoch1)).toThrow(/does not follow/);
    const afterRevocation = publisher.seal(utf8('new'));
    expect(a.channel.open(afterRevocation).ok).toBe(true);
    expect(b.channel.open(afterRevocation)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
    // The previous epoch stays readable for the grace period only.
    expect(a.channel.open(beforeRevocation).ok).toBe(true);
    const late = new ChannelSender({ ...common, senderId: policy.id, epochKey: epoch1 }).seal(utf8('late'));
    clock.advance(30_000);
    // Still inside the skew window, but past epoch 1's grace period (30 s after epoch 2 arrived).
    expect(a.channel.open(late)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
  });

  it('keeps every installed epoch for a history reader, in any order', () => {
    const { policy, common, clock } = setup();
    const epochs = [1, 2, 3].map((n) => createChannelEpochKey(provider, CHANNEL, n));
    const frames = epochs.map((k) => new ChannelSender({ ...common, senderId: policy.id, epochKey: k }).seal(utf8(`epoch ${k.epoch}`)));
    const history = new ChannelReceiver({ ...common, channelId: CHANNEL, keepHistory: true, staleAfterMs: 86_400_000 });
    for (const n of [3, 1]) history.install(epochs[n - 1]!);
    clock.advance(3_600_000);
    expect(history.currentEpoch).toBe(3);
    expect(history.open(frames[0]!).ok).toBe(true);
    expect(history.open(frames[2]!).ok).toBe(true);
    // An epoch never installed (this reader was left out of it) stays unreadable.
    expect(history.open(frames[1]!)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
    // Without keepHistory the older epoch is gone once its grace period ends.
    const live = new ChannelReceiver({ ...common, channelId: CHANNEL, staleAfterMs: 86_400_000 });
    for (const k of epochs) live.install(k);
    clock.advance(60_000);
    expect(live.open(frames[0]!)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
  });

  it('opens a stream moving from sealed mode to a channel, each frame with the checks of its mode', () => {
    const { ledger, alice, common } = setup();
    const epochKey = createChannelEpochKey(provider, CHANNEL, 1);
    const channel = new ChannelReceiver({ ...common, channelId: CHANNEL });
    channel.install(epochKey);
    const either = new SealedOrChannelReceiver(new SealedReceiver({ ...common, self: alice }), channel);
    const sealed = new SealedSender({ ...common, self: ledger, recipientId: alice.id }).seal(utf8('before'));
    const onChannel = new ChannelSender({ ...common, senderId: ledger.id, epochKey }).seal(utf8('after'));
    expect(either.open(sealed)).toMatchObject({ ok: true, mode: Mode.sealed });
    expect(either.open(onChannel)).toMatchObject({ ok: true, mode: Mode.channel });
    // A sealed frame to someone else, and a frame of another mode, are refused.
    expect(either.open(new SealedSender({ ...common, self: ledger, recipientId: 'analyst.bob' }).seal(utf8('x')))).toMatchObject({ ok: false, reason: 'E_WRONG_RECIPIENT' });
    const sessionMode = onChannel.slice();
    sessionMode[1] = Mode.session;
    expect(either.open(sessionMode)).toMatchObject({ ok: false, reason: 'E_MODE' });
  });

  it('refuses every bit flip, field by field', () => {
    const { policy, common, clock } = setup();
    const epochKey = createChannelEpochKey(provider, CHANNEL, 3);
    const receiver = new ChannelReceiver({ ...common, channelId: CHANNEL });
    receiver.install(epochKey);
    const frame = new ChannelSender({ ...common, senderId: policy.id, epochKey }).seal(utf8('alert'));
    expectEveryBitFlipRefused(frame, (f) => receiver.open(f), {
      version: ['E_VERSION'],
      mode: ['E_FRAME_SHAPE', 'E_MODE'],
      'sender length': ['E_FRAME_SHAPE'],
      sender: ['E_FRAME_SHAPE', 'E_UNKNOWN_SENDER'],
      'recipient length': ['E_FRAME_SHAPE'],
      recipient: ['E_FRAME_SHAPE', 'E_WRONG_RECIPIENT'],
      'session id': ['E_UNKNOWN_EPOCH', 'E_MAC'],
      counter: ['E_MAC'],
      timestamp: ['E_MAC', 'E_STALE', 'E_FUTURE', 'E_FRAME_SHAPE'],
      'ciphertext length': ['E_FRAME_SHAPE'],
      ciphertext: ['E_MAC'],
      mac: ['E_MAC'],
    });
    const deferred = receiver.open(frame, { deferCommit: true });
    expect(deferred.ok).toBe(true);
    if (deferred.ok) deferred.commit();
    expect(receiver.open(frame)).toMatchObject({ ok: false, reason: 'E_REPLAY', duplicate: true });
    clock.advance(30_001);
    expect(receiver.open(frame)).toMatchObject({ ok: false, reason: 'E_STALE' });
  });

  it('gives each publisher and each publisher instance its own keys and counters', () => {
    const { policy, agent, common, directory } = setup();
    const epochKey = createChannelEpochKey(provider, CHANNEL, 1);
    const receiver = new ChannelReceiver({ ...common, channelId: CHANNEL });
    receiver.install(epochKey);
    const instance1 = new ChannelSender({ ...common, senderId: policy.id, epochKey });
    const instance2 = new ChannelSender({ ...common, senderId: policy.id, epochKey });
    const other = new ChannelSender({ ...common, senderId: agent.id, epochKey });
    const frames = [instance1.seal(utf8('a')), instance2.seal(utf8('b')), other.seal(utf8('c'))];
    // Same counter (0) in all three, yet distinct streams: none is taken for a replay of another.
    for (const frame of frames) expect(receiver.open(frame)).toMatchObject({ ok: true, counter: 0n });
    // Another channel's receiver refuses them.
    const otherChannel = new ChannelReceiver({ ...common, channelId: 'soc.other' });
    otherChannel.install(createChannelEpochKey(provider, 'soc.other', 1));
    expect(otherChannel.open(frames[0]!)).toMatchObject({ ok: false, reason: 'E_WRONG_RECIPIENT' });
    // A revoked publisher is refused at once.
    revoke(provider, directory, agent);
    expect(receiver.open(other.seal(utf8('d')))).toMatchObject({ ok: false, reason: 'E_UNKNOWN_SENDER' });
  });
});
