// Channels against the real NATS, with the ledger stand-in of world.ts: the key manager
// announces epochs as keys.channel_epoch ledger events, and subscribers rebuild their epoch
// keys from the ledger through the verified reader (followChannels).
import { Commands, createEventPublisher, Events, LEDGER_PRINCIPAL, publishDirectoryEntry, type Bus } from '@bulwark/bus';
import { ChannelReceiver, ChannelSender, SealedSender } from '@bulwark/envelope';
import { directoryIssuerKey, followChannels, type ChannelFollower } from '@bulwark/channel';
import { encodeEvent, newEvent } from '@bulwark/events';
import { createUser } from '@nats-io/nkeys';
import { afterEach, describe, expect, it } from 'vitest';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle } from '@bulwark/client';
import { ADMIN, harness, INCIDENT, KM, provider, silentReporter, type Harness } from './world.js';

const SOC = 'soc.incidents';

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('key manager channels', () => {
  let h: Harness | undefined;
  const followers: ChannelFollower[] = [];
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.stop();
    await h?.close();
    h = undefined;
  });

  async function setup(overrides: Parameters<Harness['start']>[0] = {}) {
    h = await harness();
    for (const id of ['analyst.alice', 'analyst.bob']) {
      await publishDirectoryEntry(h.bus, h.world.add(id).signed);
      h.ledger.alsoControlTo(id);
    }
    h.ledger.alsoControlTo(INCIDENT);
    const km = await h.start(overrides);
    const admin = await h.client(h.world.identity(ADMIN));
    const follow = async (id: string) => {
      const bus: Bus = await h!.connect(id);
      const directory = await h!.directory();
      const receiver = new ChannelReceiver({ provider, directory, channelId: SOC, keepHistory: true, staleAfterMs: 86_400_000 });
      const follower = await followChannels({
        bus,
        provider,
        identity: h!.world.identity(id),
        directory,
        ledgerPublicKey: h!.world.identity(LEDGER_PRINCIPAL).ed25519.publicKey,
        issuer: KM,
        issuerKey: directoryIssuerKey(directory, KM),
        channels: [SOC],
        onEpoch: (key) => receiver.install(key),
        rejections: silentReporter(id),
        raise: async () => undefined,
        syncIntervalMs: 0,
      });
      followers.push(follower);
      await follower.reader.caughtUp(10_000);
      return { follower, receiver, keyring: follower.keyring };
    };
    return { h, km, admin, follow };
  }

  it('announces epochs on the ledger; subscribers rebuild them; a revoked subscriber reads nothing sealed after', async () => {
    const { h, km, admin, follow } = await setup();
    const created = await admin.call(Commands.keys.channel, { action: 'create', channel: SOC, subscribers: [INCIDENT, 'analyst.alice', 'analyst.bob'] });
    expect(created).toMatchObject({ channel: SOC, epoch: 1, reason: 'created', subscribers: [{ id: 'analyst.alice' }, { id: 'analyst.bob' }, { id: INCIDENT }] });
    const epochEvent = h.ledger.committed.find((e) => e.eventType === 'keys.channel_epoch')!;
    expect(epochEvent.producer).toBe(KM);
    // The epoch key itself is never in the ledger, only its wraps.
    const publisherSide = await follow(INCIDENT);
    const bob = await follow('analyst.bob');
    const epoch1 = publisherSide.keyring.current(SOC)!;
    expect(JSON.stringify(epochEvent.details)).not.toContain(Buffer.from(epoch1.key).toString('base64'));
    expect(bob.keyring.current(SOC)!.key).toEqual(epoch1.key);

    const sender = new ChannelSender({ provider, senderId: INCIDENT, epochKey: epoch1 });
    const before = sender.seal(new TextEncoder().encode('incident 1'));
    expect(await admin.call(Commands.keys.channel, { action: 'revoke', channel: SOC, subscriber: 'analyst.bob' })).toMatchObject({ epoch: 2, reason: 'subscriber_revoked', subject: 'analyst.bob' });
    await eventually(() => publisherSide.keyring.current(SOC)?.epoch === 2 && bob.keyring.lastAnnouncement(SOC)?.epoch === 2);
    sender.rotate(publisherSide.keyring.current(SOC)!);
    const after = sender.seal(new TextEncoder().encode('incident 2'));
    expect(bob.keyring.current(SOC)).toBeUndefined();
    expect(bob.receiver.open(before).ok).toBe(true);
    expect(bob.receiver.open(after)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
    // A subscriber who joins later rebuilds every epoch it was given, from the ledger's start.
    const alice = await follow('analyst.alice');
    expect(alice.keyring.heldEpochs(SOC)).toEqual([1, 2]);
    expect(alice.receiver.open(after).ok).toBe(true);

    // Only administrators change channels; anyone authenticated may look.
    const bobClient = await h.client(h.world.identity('analyst.bob'));
    await expect(bobClient.call(Commands.keys.channel, { action: 'add', channel: SOC, subscriber: 'analyst.bob' })).rejects.toThrow(/not a key administrator/);
    expect(await bobClient.call(Commands.keys.channel, { action: 'get', channel: SOC })).toMatchObject({ epoch: 2 });
    await expect(admin.call(Commands.keys.channel, { action: 'revoke', channel: SOC, subscriber: 'analyst.bob' })).rejects.toThrow(/does not subscribe/);
    await expect(admin.call(Commands.keys.channel, { action: 'add', channel: SOC, subscriber: 'analyst.nobody' })).rejects.toThrow(/no active key/);

    // The state is the ledger's: a restarted key manager continues at epoch 3.
    await km.stop();
    const again = await h.start();
    expect(again.channels.book.last(SOC)?.epoch).toBe(2);
    expect(await admin.call(Commands.keys.channel, { action: 'rotate', channel: SOC })).toMatchObject({ epoch: 3, reason: 'on_demand' });
    await eventually(() => alice.keyring.current(SOC)?.epoch === 3);
  });

  it('drops a subscriber whose key is revoked from its channels at once', async () => {
    const { h, km, admin } = await setup();
    await admin.call(Commands.keys.channel, { action: 'create', channel: SOC, subscribers: [INCIDENT] });
    // carol's key is the key manager's (invited): the epoch is wrapped to its active version there.
    await admin.call(Commands.keys.invite, { principal: 'analyst.carol', ttlMs: 60_000 });
    expect(await admin.call(Commands.keys.channel, { action: 'add', channel: SOC, subscriber: 'analyst.carol' })).toMatchObject({ epoch: 2, subscribers: [{ id: 'analyst.carol', keyVersion: 1 }, { id: INCIDENT }] });
    await admin.call(Commands.keys.revoke, { principal: 'analyst.carol', reason: 'key_compromise' });
    await eventually(() => km.channels.book.last(SOC)?.epoch === 3);
    expect(km.channels.book.last(SOC)).toMatchObject({ reason: 'subscriber_revoked', subject: 'analyst.carol', by: KM });
    expect(km.channels.book.subscribers(SOC)).toEqual([INCIDENT]);
    expect(h.ledger.committed.filter((e) => e.eventType === 'keys.channel_epoch').map((e) => e.details['epoch'])).toEqual([1, 2, 3]);
  });

  it('creates the configured channels at start, once', async () => {
    const { h, km } = await setup({ channels: [{ channel: SOC, subscribers: [INCIDENT, 'analyst.alice'] }] });
    await eventually(() => km.channels.book.last(SOC) !== undefined);
    expect(km.channels.book.last(SOC)).toMatchObject({ epoch: 1, reason: 'created', by: KM });
    await km.stop();
    const again = await h.start({ channels: [{ channel: SOC, subscribers: [INCIDENT] }] });
    await new Promise((r) => setTimeout(r, 300));
    expect(again.channels.book.last(SOC)?.epoch).toBe(1);
    expect(h.ledger.committed.filter((e) => e.eventType === 'keys.channel_epoch')).toHaveLength(1);
  });

  it('takes every analyst it enrols into a channel configured with analyst.*, and no agent', async () => {
    const { h, km } = await setup({ channels: [{ channel: SOC, subscribers: [INCIDENT], kinds: ['analyst'] }] });
    await eventually(() => km.channels.book.last(SOC) !== undefined);
    const admin = createBulwarkClient({ bus: await h.connect(ADMIN), sessions: { provider, self: h.world.identity(ADMIN), directory: await h.directory() } });
    const enrol = async (id: string) => {
      const invitation = await admin.keys.invite(id, { ttlMs: 60_000 });
      await enrollWithJoinBundle({ bus: await h.connect(`boot-${id}`), provider, directory: await h.directory(), bundle: parseJoinBundle(invitation.join), natsUser: createUser().getPublicKey() });
    };
    await enrol('analyst.dana');
    await eventually(() => km.channels.book.subscribers(SOC).includes('analyst.dana'));
    expect(km.channels.book.last(SOC)).toMatchObject({ epoch: 2, reason: 'subscriber_added', subject: 'analyst.dana', by: KM, subscribers: [{ id: 'analyst.dana', keyVersion: 2 }, { id: INCIDENT }] });
    await enrol('agent.0190a1b2-c3d4-8e5f-a6b7-00000000000a');
    await new Promise((r) => setTimeout(r, 300));
    expect(km.channels.book.last(SOC)?.epoch).toBe(2);
    // Revoked: dropped at once (a new epoch without it).
    await admin.keys.revoke('analyst.dana', 'cessation_of_operation');
    await eventually(() => km.channels.book.last(SOC)?.epoch === 3);
    expect(km.channels.book.last(SOC)).toMatchObject({ reason: 'subscriber_revoked', subject: 'analyst.dana' });
    expect(km.channels.book.subscribers(SOC)).toEqual([INCIDENT]);
  });

  it('starts a new epoch on the interval', async () => {
    const { admin, follow } = await setup({ channelRotationIntervalMs: 400 });
    await admin.call(Commands.keys.channel, { action: 'create', channel: SOC, subscribers: [INCIDENT] });
    const inc = await follow(INCIDENT);
    await eventually(() => (inc.keyring.lastAnnouncement(SOC)?.epoch ?? 0) >= 2, 8000);
    expect(inc.keyring.lastAnnouncement(SOC)!.reason).toBe('interval');
  });

  it('a forged announcement (not produced by the key manager) halts the subscriber reader before it is applied', async () => {
    const { h, admin, follow } = await setup();
    await admin.call(Commands.keys.channel, { action: 'create', channel: SOC, subscribers: ['analyst.alice'] });
    const alice = await follow('analyst.alice');
    const last = alice.keyring.lastAnnouncement(SOC)!;
    // svc.incident-response sends a well-formed epoch 2 (taking bob in) to the ledger as its own event.
    const forger = createEventPublisher(h.bus, new SealedSender({ provider, self: h.world.identity(INCIDENT), directory: await h.directory(), recipientId: LEDGER_PRINCIPAL }));
    const event = newEvent({ agentId: INCIDENT, eventType: 'keys.channel_epoch', details: { ...(h.ledger.committed.find((e) => e.eventType === 'keys.channel_epoch')!.details), epoch: 2 } });
    await forger.publish({ subject: Events.keys.channelEpoch, eventId: event.eventId, payload: encodeEvent(event) });
    await eventually(() => alice.follower.reader.halted !== undefined);
    expect(alice.follower.reader.halted!.code).toBe('E_READER_PRODUCER');
    expect(alice.keyring.lastAnnouncement(SOC)).toBe(last);
  });
});
