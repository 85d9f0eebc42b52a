import { announceEpoch, announcementDetails, type EpochAnnouncement } from '@bulwark/channel';
import { ChannelReceiver, SealedReceiver, type ChannelSender, type SealedSender } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { newEvent, type AuditEvent } from '@bulwark/events';
import { afterEach, describe, expect, it } from 'vitest';
import { crypto as provider, openTestLedger, produced, type LedgerFixture } from '../ledger.fixture.js';
import { wireEventOfRow } from './batch-wire.js';
import { FullStreamSealer } from './full-stream.js';

const CHANNEL = 'ledger.full';
const world = testWorld({ provider, ids: ['svc.audit-ledger', 'svc.key-manager', 'svc.incident-response'] });
const [ledgerId, kmId, incidentId] = ['svc.audit-ledger', 'svc.key-manager', 'svc.incident-response'].map((id) => world.identity(id)) as [ReturnType<typeof world.identity>, ReturnType<typeof world.identity>, ReturnType<typeof world.identity>];

describe('FullStreamSealer', () => {
  let fixture: LedgerFixture | undefined;
  afterEach(async () => {
    await fixture?.close();
    fixture = undefined;
  });

  it('seals to one principal before the first epoch, under the epoch in force at each chunk after, and not at all once the ledger is left out', async () => {
    fixture = await openTestLedger('full_stream');
    const decision = (): AuditEvent => newEvent({ agentId: 'agent.a', eventType: 'policy.decision', details: {} });
    let last: EpochAnnouncement | undefined;
    const announcement = (to: readonly (typeof ledgerId)[]): AuditEvent => {
      last = announceEpoch(provider, { id: kmId.id, keyVersion: 1, x25519: kmId.x25519 }, { channel: CHANNEL, last, reason: last === undefined ? 'created' : 'subscriber_revoked', subject: null, subscribers: to.map((s) => ({ id: s.id, keyVersion: 1, x25519PublicKey: s.x25519.publicKey })), at: Date.now(), by: 'analyst.admin' });
      return newEvent({ agentId: kmId.id, eventType: 'keys.channel_epoch', details: announcementDetails(last) });
    };
    // seq 0-2: two decisions and epoch 1 (ledger, incident); 3-5: two decisions and epoch 2 (incident only); 6: a decision.
    await fixture.ledger.append(produced([decision(), decision(), announcement([ledgerId, incidentId]), decision(), decision(), announcement([incidentId]), decision()]));
    const rows = (await fixture.db.selectFrom('events').selectAll().orderBy('seq').execute()).map(wireEventOfRow);
    const chunk = (a: number, b: number) => ({ subject: 'bulwark.ledger.batch', msgId: `${a}-${b}`, payload: new TextEncoder().encode(`events ${a}-${b}`) });

    const frames: Uint8Array[] = [];
    const make = () =>
      new FullStreamSealer({
        bus: undefined as never,
        db: fixture!.db,
        provider,
        identity: ledgerId,
        directory: world.directory,
        republishTo: incidentId.id,
        channel: CHANNEL,
        publisherOf: (sender: SealedSender | ChannelSender) => ({ publish: async (m) => void frames.push(sender.seal(m.payload)) }),
      });
    const sealer = make();
    const sealed = new SealedReceiver({ provider, self: incidentId, directory: world.directory });
    const channel = new ChannelReceiver({ provider, directory: world.directory, channelId: CHANNEL, keepHistory: true });

    await sealer.publish(chunk(0, 2));
    expect(sealed.open(frames[0]!)).toMatchObject({ ok: true, mode: 2 });
    sealer.applied(rows.slice(0, 3));
    await sealer.publish(chunk(3, 5));
    expect(sealer.epoch).toBe(1);
    expect(channel.open(frames[1]!)).toMatchObject({ ok: false, reason: 'E_UNKNOWN_EPOCH' });
    sealer.applied(rows.slice(3, 6));
    // Epoch 2 leaves the ledger out: no full batch at all, neither under epoch 1 nor sealed.
    await expect(sealer.publish(chunk(6, 6))).rejects.toThrow(/holds no key for epoch 2/);
    expect(frames).toHaveLength(2);

    // A restarted (or second) instance learns the epochs below each chunk from the table.
    const restarted = make();
    await restarted.publish(chunk(3, 5));
    expect(restarted.epoch).toBe(1);
    await expect(make().publish(chunk(6, 6))).rejects.toThrow(/holds no key for epoch 2/);
    await expect(make().publish({ ...chunk(0, 2), msgId: 'x' })).rejects.toThrow(/is not <first seq>-<last seq>/);
  });
});
