// The SOC stream on a channel (issue 12 "Channels"), against the real NATS: findings go out once
// under the channel's current epoch; an analyst revoked at T opens nothing created after T (and
// still opens what it was sent before); an analyst never enrolled opens nothing; a publisher
// left without the current epoch's key publishes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, ensureStreams, RejectionReporter, removeNamespaceStreams, startStreamConsumer, consumerBacklog, recipientToken, uniqueNamespace, type Bus } from '@bulwark/bus';
import { announceEpoch, announcementDetails, principalKeyring, type ChannelKeyring, type EpochAnnouncement } from '@bulwark/channel';
import { createCryptoProvider } from '@bulwark/crypto';
import { ChannelReceiver } from '@bulwark/envelope';
import { testWorld, type TestIdentity } from '@bulwark/envelope/testing';
import { newEvent, type LedgerEvent } from '@bulwark/events';
import { natsUrl } from '@bulwark/testkit';
import type { SecurityEvent } from '../incidents/security-event.js';
import { SocPublisher } from './publisher.js';

const SOC = 'soc.incidents';
const provider = createCryptoProvider('node');
const world = testWorld({ provider, ids: ['svc.incident-response', 'svc.key-manager', 'analyst.ann', 'analyst.eve'] });
const [incidentId, kmId, ann, eve] = ['svc.incident-response', 'svc.key-manager', 'analyst.ann', 'analyst.eve'].map((id) => world.identity(id)) as [TestIdentity, TestIdentity, TestIdentity, TestIdentity];
const ns = uniqueNamespace('soc');
let bus: Bus;

const incident = (id: string): SecurityEvent => ({
  id,
  timestamp: new Date().toISOString(),
  severity: 'high',
  category: 'policy_violation',
  description: `incident ${id}`,
  affected_components: ['agent.a1'],
  recommended_actions: ['contain the agent'],
  rule: 'policy_deny_burst',
  key: 'agent.a1',
  agentId: 'agent.a1',
  status: 'open',
  evidence: { seqs: [1], count: 1, firstSeq: 1, lastSeq: 1, firstAt: 1, lastAt: 1 },
});

let seq = 0;
let last: EpochAnnouncement | undefined;
/** The key manager's part: the next epoch, as the ledger event subscribers rebuild it from. */
function announce(subscribers: readonly TestIdentity[]): LedgerEvent {
  last = announceEpoch(provider, { id: kmId.id, keyVersion: 1, x25519: kmId.x25519 }, { channel: SOC, last, reason: last === undefined ? 'created' : 'subscriber_revoked', subject: null, subscribers: subscribers.map((s) => ({ id: s.id, keyVersion: 1, x25519PublicKey: s.x25519.publicKey })), at: Date.now(), by: 'analyst.admin' });
  return { ...newEvent({ agentId: kmId.id, eventType: 'keys.channel_epoch', details: announcementDetails(last) }), producer: kmId.id, seq: seq++, previousHash: new Uint8Array(32), eventHash: new Uint8Array(32), signature: new Uint8Array(64) };
}

/** An analyst's side: its key ring and channel receiver, and what it can open from its consumer on the channel's copies. */
function analyst(who: TestIdentity) {
  const receiver = new ChannelReceiver({ provider, directory: world.directory, channelId: SOC, keepHistory: true });
  const keyring: ChannelKeyring = principalKeyring({ provider, identity: who, directory: world.directory, channels: [SOC], onEpoch: (k) => receiver.install(k) });
  const read = async (): Promise<{ ids: string[]; refused: number }> => {
    const ids: string[] = [];
    let refused = 0;
    const durable = `soc-${who.id.replace('.', '_')}-${seq}`;
    const consumer = await startStreamConsumer(
      bus,
      receiver,
      { stream: 'incidents', durable, filterSubject: `bulwark.incident.high.*.${recipientToken(SOC)}`, maxDeliver: 1 },
      async (d) => void ids.push((JSON.parse(new TextDecoder().decode(d.plaintext)) as { finding_info: { uid: string } }).finding_info.uid),
      new RejectionReporter({ reporter: who.id, publish: async () => void refused++ }),
    );
    const until = Date.now() + 10_000;
    for (;;) {
      const b = await consumerBacklog(bus, 'incidents', durable);
      if (b.pending === 0 && b.ackPending === 0) break;
      if (Date.now() > until) throw new Error('consumer did not drain');
      await new Promise((r) => setTimeout(r, 20));
    }
    await consumer.stop();
    return { ids, refused };
  };
  return { keyring, read };
}

beforeAll(async () => {
  bus = await connectBus({ url: natsUrl(), name: 'soc-test', namespace: ns });
  await ensureStreams(bus);
});
afterAll(async () => {
  await removeNamespaceStreams(bus).catch(() => undefined);
  await bus.close();
});

describe('the SOC stream on a channel', () => {
  it('an analyst revoked at T opens nothing created after T; one never enrolled opens nothing', async () => {
    const publisherRing = principalKeyring({ provider, identity: incidentId, directory: world.directory, channels: [SOC] });
    const soc = new SocPublisher({ bus, provider, identity: incidentId, directory: world.directory, analysts: () => [ann.id], channel: { id: SOC, keyring: publisherRing } });
    const annSide = analyst(ann);
    const eveSide = analyst(eve);
    const everyone = [publisherRing, annSide.keyring, eveSide.keyring];

    // Before the key manager's first epoch: nothing, not even a copy sealed to the analyst it names.
    await expect(soc.publish(incident('0190a1b2-c3d4-8e5f-a6b7-000000000000'), 'create', 0)).rejects.toThrow(/has announced no epoch yet/);
    const epoch1 = announce([incidentId, ann]);
    for (const r of everyone) r.apply(epoch1);
    const beforeT = '0190a1b2-c3d4-8e5f-a6b7-000000000001';
    expect(await soc.publish(incident(beforeT), 'create', 0)).toHaveLength(1);
    // T: ann is revoked from the channel (epoch 2 is wrapped to the service only).
    const epoch2 = announce([incidentId]);
    for (const r of everyone) r.apply(epoch2);
    const afterT = '0190a1b2-c3d4-8e5f-a6b7-000000000002';
    // One copy, on the channel: not one per analyst.
    expect(await soc.publish(incident(afterT), 'create', 0)).toHaveLength(1);

    const annRead = await annSide.read();
    expect(annRead.ids).toEqual([beforeT]);
    expect(annRead.refused).toBe(1);
    const eveRead = await eveSide.read();
    expect(eveRead.ids).toEqual([]);
    expect(eveRead.refused).toBe(2);

    // A publisher left out of the current epoch publishes nothing (no older key, no sealed copies).
    const epoch3 = announce([ann]);
    publisherRing.apply(epoch3);
    await expect(soc.publish(incident('0190a1b2-c3d4-8e5f-a6b7-000000000003'), 'create', 0)).rejects.toThrow(/holds no key for epoch 3/);
  });
});
