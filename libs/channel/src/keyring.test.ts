import { createCryptoProvider, type CryptoProvider } from '@bulwark/crypto';
import { ChannelReceiver, ChannelSender } from '@bulwark/envelope';
import { testWorld, type TestIdentity } from '@bulwark/envelope/testing';
import { newEvent, type JsonObject, type LedgerEvent } from '@bulwark/events';
import { describe, expect, it } from 'vitest';
import { announcementDetails, announcementHash, type EpochAnnouncement } from './announcement.js';
import { ChannelBook, type ChannelChange } from './book.js';
import { announceEpoch } from './issuer.js';
import { ChannelKeyring, directoryIssuerKey, principalKeyring } from './keyring.js';

const CHANNEL = 'ledger.full';
const KM = 'svc.key-manager';

function setup(provider: CryptoProvider) {
  const world = testWorld({ provider, ids: [KM, 'svc.audit-ledger', 'svc.incident-response', 'analyst.alice', 'analyst.bob', 'analyst.mallory'] });
  const km = world.identity(KM);
  const issuer = { id: KM, keyVersion: 1, x25519: km.x25519 };
  const book = new ChannelBook(provider);
  let seq = 0;
  const events: LedgerEvent[] = [];
  const eventOf = (details: JsonObject, producer = KM): LedgerEvent => ({
    ...newEvent({ agentId: KM, eventType: 'keys.channel_epoch', details }),
    producer,
    seq: seq++,
    previousHash: new Uint8Array(32),
    eventHash: new Uint8Array(32),
    signature: new Uint8Array(64),
  });
  /** What the key manager does: plan against its state, wrap, commit, apply the committed copy. */
  const change = (c: ChannelChange, at = Date.now()): { announcement: EpochAnnouncement; event: LedgerEvent } => {
    const planned = book.plan(c);
    const subscribers = planned.subscribers.map((id) => {
      const entry = world.directory.lookup(id)!;
      return { id, keyVersion: entry.keyVersion, x25519PublicKey: entry.x25519PublicKey };
    });
    const announcement = announceEpoch(provider, issuer, { ...planned, subscribers, at, by: 'analyst.admin' });
    const event = eventOf(announcementDetails(announcement));
    book.apply(announcement);
    events.push(event);
    return { announcement, event };
  };
  const keyringOf = (who: TestIdentity, receiver?: ChannelReceiver) =>
    new ChannelKeyring({
      provider,
      self: { id: who.id, x25519SecretKey: (v) => (v === 1 ? who.x25519.secretKey : undefined) },
      issuer: KM,
      issuerKey: directoryIssuerKey(world.directory, KM),
      ...(receiver === undefined ? {} : { onEpoch: (key) => receiver.install(key) }),
    });
  const receiverOf = () => new ChannelReceiver({ provider, directory: world.directory, channelId: CHANNEL, keepHistory: true, staleAfterMs: 10 * 365 * 86_400_000 });
  return { world, km, issuer, book, events, eventOf, change, keyringOf, receiverOf };
}

describe.each(['sodium', 'node', 'noble'] as const)('channel epochs (%s provider)', (name) => {
  const provider = createCryptoProvider(name);

  it('gives each subscriber the key of every epoch it subscribed to, and keeps history', () => {
    const s = setup(provider);
    const alice = s.world.identity('analyst.alice');
    const ledger = s.world.identity('svc.audit-ledger');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['svc.audit-ledger', 'analyst.alice'] });
    const ringA = s.keyringOf(alice, s.receiverOf());
    const ringL = s.keyringOf(ledger);
    expect(ringA.apply(e1.event)).toBe('held');
    expect(ringL.apply(e1.event)).toBe('held');
    expect(ringA.current(CHANNEL)!.key).toEqual(ringL.current(CHANNEL)!.key);
    const e2 = s.change({ action: 'rotate', channel: CHANNEL, reason: 'interval' });
    expect(ringA.apply(e2.event)).toBe('held');
    ringL.apply(e2.event);
    expect(ringA.heldEpochs(CHANNEL)).toEqual([1, 2]);
    expect(ringA.epochKey(CHANNEL, 1)!.key).not.toEqual(ringA.epochKey(CHANNEL, 2)!.key);
    // Any other event on the ledger is not the key ring's.
    expect(ringA.apply({ ...e2.event, eventType: 'policy.decision', seq: 99 })).toBe('ignored');
  });

  it('a non-subscriber gets no key and reads nothing', () => {
    const s = setup(provider);
    const mallory = s.world.identity('analyst.mallory');
    const ledger = s.world.identity('svc.audit-ledger');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['svc.audit-ledger', 'analyst.alice'] });
    const outsiderReceiver = s.receiverOf();
    const outsider = s.keyringOf(mallory, outsiderReceiver);
    expect(outsider.apply(e1.event)).toBe('not-subscribed');
    expect(outsider.current(CHANNEL)).toBeUndefined();
    const ringL = s.keyringOf(ledger);
    ringL.apply(e1.event);
    const frame = new ChannelSender({ provider, senderId: ledger.id, epochKey: ringL.current(CHANNEL)! }).seal(new TextEncoder().encode('event'));
    expect(outsiderReceiver.open(frame)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
  });

  it('a revoked subscriber keeps its history but reads nothing sealed after the revocation epoch', () => {
    const s = setup(provider);
    const bob = s.world.identity('analyst.bob');
    const ledger = s.world.identity('svc.audit-ledger');
    const bobReceiver = s.receiverOf();
    const ringB = s.keyringOf(bob, bobReceiver);
    const ringL = s.keyringOf(ledger);
    const apply = (e: { event: LedgerEvent }) => [ringB.apply(e.event), ringL.apply(e.event)];
    apply(s.change({ action: 'create', channel: CHANNEL, subscribers: ['svc.audit-ledger', 'analyst.bob'] }));
    const before = new ChannelSender({ provider, senderId: ledger.id, epochKey: ringL.current(CHANNEL)! });
    const old = before.seal(new TextEncoder().encode('before'));
    expect(apply(s.change({ action: 'revoke', channel: CHANNEL, subscriber: 'analyst.bob' }))).toEqual(['not-subscribed', 'held']);
    before.rotate(ringL.current(CHANNEL)!);
    const after = before.seal(new TextEncoder().encode('after'));
    expect(bobReceiver.open(old).ok).toBe(true);
    expect(bobReceiver.open(after)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
    // Later epochs stay closed to it too, until it is added again.
    expect(apply(s.change({ action: 'rotate', channel: CHANNEL, reason: 'interval' }))[0]).toBe('not-subscribed');
    expect(ringB.heldEpochs(CHANNEL)).toEqual([1]);
    expect(apply(s.change({ action: 'add', channel: CHANNEL, subscriber: 'analyst.bob' }))[0]).toBe('held');
    expect(ringB.heldEpochs(CHANNEL)).toEqual([1, 4]);
  });

  it('refuses a tampered wrap', () => {
    const s = setup(provider);
    const alice = s.world.identity('analyst.alice');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice'] });
    const subs = e1.event.details['subscribers'] as { id: string; keyVersion: number; wrap: string }[];
    const bytes = Buffer.from(subs[0]!.wrap, 'base64');
    bytes[40]! ^= 0x01;
    const tampered = { ...e1.event, details: { ...e1.event.details, subscribers: [{ ...subs[0]!, wrap: bytes.toString('base64') }] } };
    expect(() => s.keyringOf(alice).apply(tampered)).toThrow(expect.objectContaining({ code: 'E_CHANNEL_WRAP' }));
  });

  it('refuses a wrap put under another recipient', () => {
    const s = setup(provider);
    const bob = s.world.identity('analyst.bob');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice', 'analyst.bob'] });
    const subs = e1.event.details['subscribers'] as { id: string; keyVersion: number; wrap: string }[];
    const swapped = { ...e1.event, details: { ...e1.event.details, subscribers: [subs[0]!, { ...subs[1]!, wrap: subs[0]!.wrap }] } };
    expect(() => s.keyringOf(bob).apply(swapped)).toThrow(expect.objectContaining({ code: 'E_CHANNEL_WRAP' }));
  });

  it('refuses a replayed, reordered or forked announcement', () => {
    const s = setup(provider);
    const alice = s.world.identity('analyst.alice');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice', 'analyst.bob'] });
    const e2 = s.change({ action: 'revoke', channel: CHANNEL, subscriber: 'analyst.bob' });
    const e3 = s.change({ action: 'rotate', channel: CHANNEL, reason: 'on_demand' });
    // Reordered: epoch 2 before epoch 1; then epoch 3 right after 1. Skipped, changing nothing.
    const early = s.keyringOf(alice);
    expect(early.apply(e2.event)).toBe('out-of-order');
    expect(early.current(CHANNEL)).toBeUndefined();
    const ring = s.keyringOf(alice);
    ring.apply(e1.event);
    expect(ring.apply(e3.event)).toBe('out-of-order');
    expect(ring.heldEpochs(CHANNEL)).toEqual([1]);
    ring.apply(e2.event);
    // Replayed: epoch 1 (which still names bob) again as a later event, and epoch 2 again.
    expect(ring.apply({ ...e1.event, seq: 50 })).toBe('out-of-order');
    expect(ring.apply({ ...e2.event, seq: 51 })).toBe('out-of-order');
    // Forked: an epoch 3 that does not link to the epoch 2 applied (re-adding bob behind the revocation's back).
    const keys = ['analyst.alice', 'analyst.bob'].map((id) => ({ id, keyVersion: 1, x25519PublicKey: s.world.directory.lookup(id)!.x25519PublicKey }));
    const fork = announceEpoch(provider, s.issuer, { channel: CHANNEL, last: { ...e1.announcement, epoch: 2 }, reason: 'subscriber_added', subject: 'analyst.bob', subscribers: keys, at: Date.now(), by: 'x' });
    expect(fork.epoch).toBe(3);
    expect(ring.apply(s.eventOf(announcementDetails(fork)))).toBe('out-of-order');
    expect(ring.skipped).toBe(4);
    expect(ring.lastAnnouncement(CHANNEL)!.epoch).toBe(2);
    expect(ring.apply(e3.event)).toBe('held');
  });

  it('refuses an announcement not from the key manager', () => {
    const s = setup(provider);
    const alice = s.world.identity('analyst.alice');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice'] });
    // Produced by another principal (the ledger's producer field, as the envelope authenticated it).
    expect(() => s.keyringOf(alice).apply({ ...e1.event, producer: 'svc.policy' })).toThrow(expect.objectContaining({ code: 'E_CHANNEL_ISSUER' }));
    // Wrapped by a forger under its own key, announced with that key.
    const forger = s.world.identity('analyst.mallory');
    const aliceKey = { id: alice.id, keyVersion: 1, x25519PublicKey: alice.x25519.publicKey };
    const own = announceEpoch(provider, { id: KM, keyVersion: 1, x25519: forger.x25519 }, { channel: 'soc.incidents', last: undefined, reason: 'created', subject: null, subscribers: [aliceKey], at: Date.now(), by: forger.id });
    expect(() => s.keyringOf(alice).apply(s.eventOf(announcementDetails(own)))).toThrow(/not a key trusted for svc.key-manager/);
    // Wrapped by the forger, announced with the key manager's public key: the wrap does not open.
    const claimed = { ...own, issuerPublicKey: s.km.x25519.publicKey };
    expect(() => s.keyringOf(alice).apply(s.eventOf(announcementDetails(claimed)))).toThrow(expect.objectContaining({ code: 'E_CHANNEL_WRAP' }));
    // Issued under another issuer id.
    const other = announceEpoch(provider, { id: 'svc.policy', keyVersion: 1, x25519: s.km.x25519 }, { channel: 'soc.incidents', last: undefined, reason: 'created', subject: null, subscribers: [aliceKey], at: Date.now(), by: 'svc.policy' });
    expect(() => s.keyringOf(alice).apply(s.eventOf(announcementDetails(other)))).toThrow(expect.objectContaining({ code: 'E_CHANNEL_ISSUER' }));
  });

  it('checks old announcements after the issuer rotated its key, with the versions the ledger recorded', () => {
    const s = setup(provider);
    const alice = s.world.identity('analyst.alice');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice'] });
    // The key manager rotates to version 2; the directory now certifies only that one.
    const v2 = provider.x25519.generateKeyPair();
    s.world.admit({ id: KM, ed25519PublicKey: s.km.ed25519.publicKey, x25519PublicKey: v2.publicKey, keyVersion: 2 });
    const ring = s.keyringOf(alice);
    expect(() => ring.apply(e1.event)).toThrow(/not a key trusted/);
    const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');
    const generated = { ...e1.event, eventType: 'keys.generated' as const, details: { principal: KM, by: KM, ed25519: b64(s.km.ed25519.publicKey), x25519: b64(s.km.x25519.publicKey), at: 1, natsUser: null } };
    // The same event claimed by another producer teaches nothing.
    const replay = s.keyringOf(alice);
    replay.apply({ ...generated, producer: 'svc.policy' });
    expect(() => replay.apply(e1.event)).toThrow(/not a key trusted/);
    const fresh = s.keyringOf(alice);
    expect(fresh.apply(generated)).toBe('ignored');
    expect(fresh.apply(e1.event)).toBe('held');
  });

  it('refuses a malformed announcement, naming the field', () => {
    const s = setup(provider);
    const alice = s.world.identity('analyst.alice');
    const e1 = s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice'] });
    const ring = s.keyringOf(alice);
    const withDetails = (d: JsonObject) => ({ ...e1.event, details: d });
    expect(() => ring.apply(withDetails({ ...e1.event.details, extra: 1 }))).toThrow(/details have fields/);
    expect(() => ring.apply(withDetails({ ...e1.event.details, epoch: 0 }))).toThrow(/epoch is not a positive integer/);
    expect(() => ring.apply(withDetails({ ...e1.event.details, previous: 'ab'.repeat(32) }))).toThrow(/epoch 1 names a previous/);
    expect(() => ring.apply(withDetails({ ...e1.event.details, subscribers: [{ id: 'analyst.alice', keyVersion: 1, wrap: 'AAAA' }] }))).toThrow(/subscribers\[0\]\.wrap/);
    expect(ring.apply(e1.event)).toBe('held');
  });
});

describe('channel book', () => {
  const provider = createCryptoProvider('node');
  it('plans epochs against the state and refuses what does not fit', () => {
    const s = setup(provider);
    expect(() => s.book.plan({ action: 'add', channel: CHANNEL, subscriber: 'analyst.bob' })).toThrow(/no such channel/);
    expect(() => s.book.plan({ action: 'create', channel: CHANNEL, subscribers: [] })).toThrow(/at least one subscriber/);
    s.change({ action: 'create', channel: CHANNEL, subscribers: ['analyst.alice', 'analyst.bob'] });
    expect(() => s.book.plan({ action: 'create', channel: CHANNEL, subscribers: ['analyst.bob'] })).toThrow(/exists already/);
    expect(() => s.book.plan({ action: 'add', channel: CHANNEL, subscriber: 'analyst.bob' })).toThrow(/subscribes already/);
    expect(() => s.book.plan({ action: 'revoke', channel: CHANNEL, subscriber: 'analyst.mallory' })).toThrow(/does not subscribe/);
    expect(s.book.plan({ action: 'revoke', channel: CHANNEL, subscriber: 'analyst.bob' })).toMatchObject({ reason: 'subscriber_revoked', subject: 'analyst.bob', subscribers: ['analyst.alice'] });
    s.change({ action: 'revoke', channel: CHANNEL, subscriber: 'analyst.bob' });
    expect(() => s.book.plan({ action: 'revoke', channel: CHANNEL, subscriber: 'analyst.alice' })).toThrow(/last subscriber/);
    expect(s.book.channelsOf('analyst.alice')).toEqual([CHANNEL]);
    expect(s.book.channelsOf('analyst.bob')).toEqual([]);
    // A committed announcement that does not follow is refused by the state too.
    const last = s.book.last(CHANNEL)!;
    expect(() => s.book.apply(last)).toThrow(/epoch 2 announced after epoch 2/);
    expect(announcementHash(provider, last)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('a subscriber that rotates its own key (principalKeyring)', () => {
  const provider = createCryptoProvider('sodium');
  const INCIDENT = 'svc.incident-response';

  /** The key manager announcing an epoch wrapped to the incident service's key of `version` (desk.ts: `subscriber_rekeyed`). */
  function rekeying() {
    const s = setup(provider);
    const v1 = s.world.identity(INCIDENT).x25519;
    const v2 = provider.x25519.generateKeyPair();
    const certified = new Map<number, Uint8Array>([[1, v1.publicKey]]);
    const announce = (c: ChannelChange, version: number, publicKey: Uint8Array): LedgerEvent => {
      const planned = s.book.plan(c);
      const subscribers = planned.subscribers.map((id) => (id === INCIDENT ? { id, keyVersion: version, x25519PublicKey: publicKey } : { id, keyVersion: 1, x25519PublicKey: s.world.directory.lookup(id)!.x25519PublicKey }));
      const announcement = announceEpoch(provider, s.issuer, { ...planned, subscribers, at: Date.now(), by: 'analyst.admin' });
      s.book.apply(announcement);
      return s.eventOf(announcementDetails(announcement));
    };
    const e1 = announce({ action: 'create', channel: CHANNEL, subscribers: [INCIDENT, 'analyst.alice'] }, 1, v1.publicKey);
    certified.set(2, v2.publicKey);
    const e2 = announce({ action: 'rotate', channel: CHANNEL, reason: 'subscriber_rekeyed', subject: INCIDENT }, 2, v2.publicKey);
    return { s, v1, v2, certified, e1, e2 };
  }

  it('opens the epoch wrapped to its new version once its live identity switched, and the earlier one with the earlier key', () => {
    const { s, v1, v2, certified, e1, e2 } = rekeying();
    const live: { id: string; version: number; x25519: typeof v1; previousX25519?: (typeof v1)[] } = { id: INCIDENT, version: 1, x25519: v1 };
    const opened: number[] = [];
    const ring = principalKeyring({ provider, identity: live, directory: s.world.directory, channels: [CHANNEL], versionKey: (v) => certified.get(v), onEpoch: (k) => void opened.push(k.epoch) });
    expect(ring.apply(e1)).toBe('held');
    // Announced a moment before the switch: unreadable (not a halt), and kept.
    expect(ring.apply(e2)).toBe('unreadable');
    expect(ring.unreadableEpochs(CHANNEL)).toEqual([2]);
    // The switch in place (@bulwark/client key-rotation.ts), as the service's one identity object.
    live.previousX25519 = [v1];
    live.x25519 = v2;
    live.version = 2;
    expect(ring.current(CHANNEL)?.epoch).toBe(2);
    expect(opened).toEqual([1, 2]);
    expect(ring.unreadableEpochs(CHANNEL)).toEqual([]);
    const alice = s.keyringOf(s.world.identity('analyst.alice'));
    alice.apply(e1);
    alice.apply(e2);
    expect(ring.current(CHANNEL)!.key).toEqual(alice.current(CHANNEL)!.key);
  });

  it('after a restart under its new version, replays epochs wrapped to its earlier version (previousX25519, picked by version)', () => {
    const { s, v1, v2, certified, e1, e2 } = rekeying();
    const ring = principalKeyring({ provider, identity: { id: INCIDENT, version: 2, x25519: v2, previousX25519: [v1] }, directory: s.world.directory, channels: [CHANNEL], versionKey: (v) => certified.get(v) });
    expect(ring.apply(e1)).toBe('held');
    expect(ring.apply(e2)).toBe('held');
    expect(ring.heldEpochs(CHANNEL)).toEqual([1, 2]);
    // Without the per-version pick (only the current key), version 1's epoch is lost.
    const currentOnly = principalKeyring({ provider, identity: { id: INCIDENT, version: 2, x25519: v2 }, directory: s.world.directory, channels: [CHANNEL], versionKey: (v) => certified.get(v) });
    expect(currentOnly.apply(e1)).toBe('unreadable');
    expect(currentOnly.apply(e2)).toBe('held');
  });

  it('a copy of the identity taken at start holds no key for the epoch of its new version', () => {
    const { s, v1, certified, e1, e2 } = rekeying();
    const live = { id: INCIDENT, version: 1, x25519: v1 };
    const ring = principalKeyring({ provider, identity: { ...live }, directory: s.world.directory, channels: [CHANNEL], versionKey: (v) => certified.get(v) });
    ring.apply(e1);
    ring.apply(e2);
    expect(ring.retryUnreadable()).toBe(0);
    expect(ring.current(CHANNEL)).toBeUndefined();
  });

  it('a version whose certified key it does not hold is unreadable, never opened with another held key', () => {
    const { s, v1, v2, e1, e2 } = rekeying();
    const mallory = s.world.identity('analyst.mallory').x25519;
    // The ledger certifies for version 1 a key the service never held: it is not tried with v2's key.
    const ring = principalKeyring({ provider, identity: { id: INCIDENT, version: 2, x25519: v2, previousX25519: [mallory] }, directory: s.world.directory, channels: [CHANNEL], versionKey: (v) => (v === 1 ? v1.publicKey : v === 2 ? v2.publicKey : undefined) });
    expect(ring.apply(e1)).toBe('unreadable');
    expect(ring.apply(e2)).toBe('held');
    expect(ring.heldEpochs(CHANNEL)).toEqual([2]);
  });
});
