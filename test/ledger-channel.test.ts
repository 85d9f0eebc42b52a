// BULWARK_LEDGER's full stream on a channel (issue 12 "Channels"), against the real NATS and
// PostgreSQL with the real ledger service: before the channel's first epoch the full batches
// are sealed to svc.incident-response; after it, every subscriber of an epoch reads them (a
// verified full-mode ledger reader replays the whole stream from the start, across the move and
// the epochs); a subscriber revoked at epoch 2 reads nothing committed after the revocation,
// and a service never subscribed reads nothing of the channel. The key manager's part (the
// announcements) is played here with its identity; services/key-manager/test/channels.test.ts
// covers the service itself.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, consumerBacklog, createEventPublisher, ensureStreams, Events, LEDGER_BATCH_SUBJECT, LEDGER_PRINCIPAL, RejectionReporter, removeNamespaceStreams, startStreamConsumer, uniqueNamespace, type Bus } from '@bulwark/bus';
import { announceEpoch, announcementDetails, ChannelKeyring, directoryIssuerKey, type EpochAnnouncement } from '@bulwark/channel';
import { createCryptoProvider } from '@bulwark/crypto';
import { ChannelReceiver, SealedOrChannelReceiver, SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld, type TestIdentity } from '@bulwark/envelope/testing';
import { decodeLedgerBatch, encodeEvent, newEvent, type LedgerEvent } from '@bulwark/events';
import { DEFAULT_RULES_FILE, loadRules, startIncidentService } from '@bulwark/incident-response';
import { startLedgerReader } from '@bulwark/ledger-reader';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';

const CHANNEL = 'ledger.full';
const KM = 'svc.key-manager';
const TEN_YEARS_MS = 10 * 366 * 86_400_000;
const provider = createCryptoProvider('node');
const world = testWorld({ provider });
const directory = world.directory;
const ledgerId = world.add(LEDGER_PRINCIPAL);
const kmId = world.add(KM);
const incidentId = world.add('svc.incident-response');
const policyId = world.add('svc.policy');
const toolsId = world.add('svc.schemapin');

const ns = uniqueNamespace('chan');
const dbSchema = withTestSchema('ledger_channel');
const buses: Bus[] = [];
let db: Awaited<ReturnType<typeof createDatabase<LedgerDatabase>>>;
let ledger: LedgerService;
const connectTo = async (name: string) => {
  const bus = await connectBus({ url: natsUrl(), name, namespace: ns });
  buses.push(bus);
  return bus;
};
const eventually = async (check: () => Promise<boolean> | boolean, ms: number, what: string) => {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const keyringOf = (who: TestIdentity, receiver: ChannelReceiver) =>
  new ChannelKeyring({ provider, self: { id: who.id, x25519SecretKey: () => who.x25519.secretKey }, issuer: KM, issuerKey: directoryIssuerKey(directory, KM), channels: [CHANNEL], onEpoch: (k) => receiver.install(k) });

beforeAll(async () => {
  db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: dbSchema.name });
  await ensureStreams(await connectTo('setup'));
  await migrateLedger(db);
  ledger = await LedgerService.start({
    bus: await connectTo('ledger'),
    db,
    crypto: provider,
    identity: ledgerId,
    directory,
    settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/audit', schema: dbSchema.name, namespace: ns, checkpointMs: 0, checkpointEvents: 0, batchMaxEvents: 3, channel: CHANNEL, republishTo: incidentId.id, controlTo: [] },
  });
}, 60_000);

afterAll(async () => {
  await ledger?.stop();
  const bus = buses[0];
  if (bus !== undefined) await removeNamespaceStreams(bus).catch(() => undefined);
  for (const b of buses) await b.close().catch(() => undefined);
  if (db !== undefined) await closeDatabase(db);
  await dbSchema.drop();
});

describe('the ledger full stream on a channel', () => {
  it('moves from sealed mode to the channel; epochs follow subscribers; a revoked subscriber reads nothing after its revocation', async () => {
    const producer = createEventPublisher(await connectTo('policy'), new SealedSender({ provider, self: policyId, directory, recipientId: LEDGER_PRINCIPAL }));
    const km = createEventPublisher(await connectTo('km'), new SealedSender({ provider, self: kmId, directory, recipientId: LEDGER_PRINCIPAL }));
    const size = async () => (await ledger.ledger.head()).size;
    const decisions = async (n: number, tag: string) => {
      const before = await size();
      for (let i = 0; i < n; i++) {
        const e = newEvent({ agentId: 'agent.x', eventType: 'policy.decision', details: { tag, i } });
        await producer.publish({ subject: Events.policy.decision, eventId: e.eventId, payload: encodeEvent(e) });
      }
      await eventually(async () => (await size()) === before + n, 10_000, `${n} ${tag} decisions committed`);
    };
    let last: EpochAnnouncement | undefined;
    const announce = async (subscribers: readonly TestIdentity[], reason: 'created' | 'subscriber_revoked') => {
      last = announceEpoch(provider, { id: KM, keyVersion: 1, x25519: kmId.x25519 }, { channel: CHANNEL, last, reason, subject: null, subscribers: subscribers.map((s) => ({ id: s.id, keyVersion: 1, x25519PublicKey: s.x25519.publicKey })), at: Date.now(), by: 'analyst.admin' });
      const e = newEvent({ agentId: KM, eventType: 'keys.channel_epoch', details: announcementDetails(last) });
      const before = await size();
      await km.publish({ subject: Events.keys.channelEpoch, eventId: e.eventId, payload: encodeEvent(e) });
      await eventually(async () => (await size()) === before + 1, 10_000, 'announcement committed');
      return before; // its seq
    };

    await decisions(4, 'sealed');
    const epoch1At = await announce([ledgerId, incidentId, policyId], 'created');
    await decisions(4, 'epoch1');
    const epoch2At = await announce([ledgerId, incidentId], 'subscriber_revoked');
    await decisions(4, 'epoch2');
    const total = await size();

    // svc.incident-response: a verified full-mode reader from the start, through sealed mode and both epochs.
    const channel = new ChannelReceiver({ provider, directory, channelId: CHANNEL, keepHistory: true, staleAfterMs: TEN_YEARS_MS });
    const keyring = keyringOf(incidentId, channel);
    const applied: LedgerEvent[] = [];
    const rejected: string[] = [];
    const reader = await startLedgerReader({
      bus: await connectTo('incident'),
      provider,
      identity: incidentId,
      directory,
      receiver: new SealedOrChannelReceiver(new SealedReceiver({ provider, self: incidentId, directory, staleAfterMs: TEN_YEARS_MS }), channel),
      ledgerPublicKey: ledgerId.ed25519.publicKey,
      reader: 'test/incident',
      mode: 'full',
      rejections: new RejectionReporter({ reporter: incidentId.id, publish: async (r) => void rejected.push(JSON.stringify(r)) }),
      raise: async () => undefined,
      syncIntervalMs: 0,
      onEvent: (event) => {
        keyring.apply(event);
        applied.push(event);
      },
    });
    await reader.caughtUp(20_000);
    await eventually(() => applied.length === total, 10_000, 'every event applied');
    expect(reader.halted).toBeUndefined();
    expect(applied.map((e) => e.seq)).toEqual([...Array(total).keys()]);
    expect(keyring.heldEpochs(CHANNEL)).toEqual([1, 2]);
    // Nothing came through the ledger's query in place of the stream: the stream was readable throughout.
    expect(rejected).toEqual([]);
    await reader.stop();

    // The raw stream as other services see it: which batches each can open.
    const readable = async (who: TestIdentity, epochs: readonly number[]) => {
      const receiver = new ChannelReceiver({ provider, directory, channelId: CHANNEL, keepHistory: true, staleAfterMs: TEN_YEARS_MS });
      const ring = keyringOf(who, receiver);
      // Its epoch keys, as it would rebuild them from its control subject (followChannels): only the announcements.
      for (const e of applied.filter((x) => x.eventType === 'keys.channel_epoch')) ring.apply(e);
      expect(ring.heldEpochs(CHANNEL)).toEqual(epochs);
      const seqs: number[] = [];
      let refused = 0;
      const bus = await connectTo(`${who.id}-raw`);
      const durable = `raw-${who.id.replace('.', '_')}`;
      const consumer = await startStreamConsumer(
        bus,
        receiver,
        { stream: 'ledger', durable, filterSubject: LEDGER_BATCH_SUBJECT, maxDeliver: 1 },
        async (d) => void seqs.push(...decodeLedgerBatch(d.plaintext).events.map((e) => e.seq)),
        new RejectionReporter({ reporter: who.id, publish: async () => void refused++ }),
      );
      await eventually(
        async () => {
          const backlog = await consumerBacklog(bus, 'ledger', durable);
          return backlog.pending === 0 && backlog.ackPending === 0;
        },
        10_000,
        `${who.id} consumed the stream`,
      );
      await consumer.stop();
      return { seqs: seqs.sort((a, b) => a - b), refused };
    };
    // svc.policy held epoch 1 only: it reads from just after epoch 1's announcement to epoch 2's announcement, nothing after.
    const policy = await readable(policyId, [1]);
    expect(policy.seqs).toEqual([...Array(epoch2At - epoch1At).keys()].map((i) => epoch1At + 1 + i));
    expect(Math.max(...policy.seqs)).toBe(epoch2At);
    expect(policy.refused).toBeGreaterThan(0);
    // svc.schemapin was never a subscriber: it opens nothing.
    const outsider = await readable(toolsId, []);
    expect(outsider.seqs).toEqual([]);
  });

  it('the incident detectors read the whole ledger through the channel (the service as bulwark up runs it)', async () => {
    const total = (await ledger.ledger.head()).size;
    const incidents = await startIncidentService({
      bus: await connectTo('incident-service'),
      provider,
      identity: incidentId,
      directory,
      ledgerPublicKey: ledgerId.ed25519.publicKey,
      rules: loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]),
      analysts: [],
      ledgerChannel: CHANNEL,
    });
    try {
      await eventually(() => incidents.state.applied >= total, 20_000, 'the incident service applied the ledger');
      expect(incidents.halted()).toBeUndefined();
      // Read from the stream, not around it: no frame was refused (a refusal is reported to the ledger as bus.rejected).
      await new Promise((r) => setTimeout(r, 1000));
      expect(await db.selectFrom('events').select('seq').where('event_type', '=', 'bus.rejected').execute()).toEqual([]);
      expect(incidents.state.applied).toBe(total);
    } finally {
      await incidents.stop();
    }
  });
});
