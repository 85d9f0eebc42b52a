// The reader on the real NATS (NATS_URL): the bus around the core. The ledger's part (sealing
// control batches to the reader's principal, or full batches under a channel's epochs, answering
// gap queries) is played by the test with the ledger identity and an in-memory ledger; the
// cross-service attacks with the real ledger runtime are in test/attack/ledger-reader.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { connectBus, createStreamPublisher, ensureStreams, LEDGER_BATCH_SUBJECT, LEDGER_PRINCIPAL, ledgerControlSubject, RejectionReporter, removeNamespaceStreams, uniqueNamespace, type Bus } from '@bulwark/bus';
import { ChannelReceiver, ChannelSender, createChannelEpochKey, SealedReceiver, SealedSender, type ChannelEpochKey } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { encodeEventBatch, type AuditEvent, type LedgerEvent } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import { crypto, MemoryLedger } from './internal/ledger.fixture.js';
import { startLedgerReader, type LedgerReader } from './reader.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const SELF = 'svc.policy';
const CHANNEL = 'ledger.full';
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('ledger reader on the bus', () => {
  const world = testWorld({ provider: crypto, ids: [SELF, LEDGER_PRINCIPAL, 'svc.key-manager'] });
  let bus: Bus | undefined;
  let reader: LedgerReader | undefined;
  afterEach(async () => {
    await reader?.stop();
    if (bus !== undefined) {
      await removeNamespaceStreams(bus);
      await bus.close();
    }
    bus = reader = undefined;
  });

  async function setup(syncIntervalMs = 0) {
    bus = await connectBus({ url: NATS_URL, name: 'reader-test', namespace: uniqueNamespace('lr') });
    await ensureStreams(bus);
    const ledger = new MemoryLedger(world.identity(LEDGER_PRINCIPAL).ed25519);
    const applied: LedgerEvent[] = [];
    const raised: AuditEvent[] = [];
    const publisherAs = (id: string) => createStreamPublisher(bus!, new SealedSender({ provider: crypto, self: world.identity(id), directory: world.directory, recipientId: SELF }), 'ledger');
    const fromLedger = publisherAs(LEDGER_PRINCIPAL);
    const send = (payload: Uint8Array, publisher = fromLedger) => publisher.publish({ subject: ledgerControlSubject(SELF), msgId: `m-${Math.random()}`, payload });
    reader = await startLedgerReader({
      bus,
      provider: crypto,
      identity: world.identity(SELF),
      directory: world.directory,
      receiver: new SealedReceiver({ provider: crypto, self: world.identity(SELF), directory: world.directory, staleAfterMs: 86_400_000 }),
      ledgerPublicKey: ledger.keys.publicKey,
      reader: 'svc.policy/test',
      mode: 'control',
      rejections: quiet(SELF),
      onEvent: (e) => void applied.push(e),
      raise: async (e) => void raised.push(e),
      gapSource: ledger.source(),
      syncIntervalMs,
    });
    return { ledger, applied, raised, send, publisherAs };
  }

  it('replays its control subject and, once the stream is exhausted, takes a deleted tail from the ledger', async () => {
    const { ledger, applied, send } = await setup();
    ledger.history(3);
    const [m0, m2] = ledger.controlMessages();
    for (const m of [m0!, m2!]) await send(encodeEventBatch(m.events, { controlPreviousSeq: m.controlPreviousSeq! }));
    await reader!.caughtUp(10_000);
    expect(applied.map((e) => e.seq)).toEqual([0, 2, 4]);
    expect(reader!.halted).toBeUndefined();
    expect(reader!.position().seq).toBe(4);
    expect(ledger.queries).toEqual([{ fromSeq: 3, control: true }]);
  });

  it('a live reader asks the ledger again and applies a control event whose message never reached the stream', async () => {
    const { ledger, applied } = await setup(100);
    ledger.history(1);
    await reader!.caughtUp(10_000);
    expect(applied.map((e) => e.seq)).toEqual([0]);
    ledger.append('policy.rolledback', { name: 'p', version: 1 }); // committed; its message deleted before delivery
    await until(() => applied.length === 2, 5000, 'the live sync');
    expect(applied.map((e) => e.seq)).toEqual([0, 2]);
  });

  it('halts on a frame another principal sealed onto the ledger subject, and raises the Critical security.violation', async () => {
    const { ledger, applied, raised, send, publisherAs } = await setup();
    ledger.history(2);
    const [m0, m2] = ledger.controlMessages();
    await send(encodeEventBatch(m0!.events, { controlPreviousSeq: -1 }));
    // Correct events, correct order: only the sender is wrong.
    await send(encodeEventBatch(m2!.events, { controlPreviousSeq: 0 }), publisherAs('svc.key-manager'));
    await until(() => reader!.halted !== undefined, 10_000, 'the halt');
    expect(applied.map((e) => e.seq)).toEqual([0]);
    expect(reader!.halted).toMatchObject({ code: 'E_READER_MESSAGE', seq: 1 });
    await until(() => raised.length > 0, 5000, 'the security event');
    expect(raised[0]).toMatchObject({
      eventType: 'security.violation',
      agentId: SELF,
      details: { kind: 'reader.halted', severity: 'critical', reader: 'svc.policy/test', seq: 1, problem: expect.stringMatching(/^E_READER_MESSAGE: .*sealed by svc.key-manager/) },
    });
    await reader!.caughtUp(5000); // resolves at once: halted
    expect(reader!.metrics()).toMatchObject({ halted: true, applied: 1 });
  });

  it('halts on a ledger frame that is not a ledger batch', async () => {
    const { applied, send } = await setup();
    await send(new TextEncoder().encode('not protobuf'));
    await until(() => reader!.halted !== undefined, 10_000, 'the halt');
    expect(reader!.halted).toMatchObject({ code: 'E_READER_MESSAGE', seq: 0 });
    expect(applied).toEqual([]);
  });

  /** The full stream in channel mode (the incident service's reader): frames under epoch 1, the receiver holding epoch 1 only. */
  async function setupChannel(epochWaitMs?: number) {
    bus = await connectBus({ url: NATS_URL, name: 'reader-channel-test', namespace: uniqueNamespace('lr') });
    await ensureStreams(bus);
    const ledger = new MemoryLedger(world.identity(LEDGER_PRINCIPAL).ed25519);
    const applied: LedgerEvent[] = [];
    const errors: string[] = [];
    const logger = { fatal: () => undefined, error: (_: unknown, msg: string) => void errors.push(msg), warn: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;
    const epochs: ChannelEpochKey[] = [createChannelEpochKey(crypto, CHANNEL, 1), createChannelEpochKey(crypto, CHANNEL, 2)];
    const receiver = new ChannelReceiver({ provider: crypto, directory: world.directory, channelId: CHANNEL, keepHistory: true, staleAfterMs: 86_400_000 });
    receiver.install(epochs[0]!);
    const sender = new ChannelSender({ provider: crypto, senderId: LEDGER_PRINCIPAL, epochKey: epochs[0]! });
    const publisher = createStreamPublisher(bus, sender, 'ledger');
    const send = (from: number, to: number) => publisher.publish({ subject: LEDGER_BATCH_SUBJECT, msgId: `full-${from}-${to}`, payload: encodeEventBatch(ledger.full(from, to).events) });
    reader = await startLedgerReader({
      bus,
      provider: crypto,
      identity: world.identity(SELF),
      directory: world.directory,
      receiver,
      ledgerPublicKey: ledger.keys.publicKey,
      reader: 'svc.policy/full',
      mode: 'full',
      rejections: quiet(SELF),
      onEvent: (e) => void applied.push(e),
      raise: async () => undefined,
      gapSource: ledger.source(),
      syncIntervalMs: 0,
      logger,
      ...(epochWaitMs === undefined ? {} : { epochWaitMs }),
    });
    await reader.caughtUp(10_000);
    return { ledger, applied, errors, epochs, receiver, sender, send };
  }

  // A frame under an epoch not held yet (at a rotation its wrap is opened only at the switch) waits for that epoch.
  it('a frame under an epoch not held yet: opened once the epoch is installed, from the stream, in order, and asks the ledger for nothing', async () => {
    const { ledger, applied, epochs, receiver, sender, send } = await setupChannel();
    ledger.history(2);
    await send(0, 1);
    await expect.poll(() => applied.length).toBe(2);
    // The ledger moved to epoch 2; this reader learns its key 700 ms after the first frame under it.
    sender.rotate(epochs[1]!);
    await send(2, 3);
    const queriesBefore = ledger.queries.length;
    await new Promise((r) => setTimeout(r, 700));
    expect(applied.map((e) => e.seq)).toEqual([0, 1]);
    receiver.install(epochs[1]!);
    await expect.poll(() => applied.map((e) => e.seq), { timeout: 5000 }).toEqual([0, 1, 2, 3]);
    expect(ledger.queries.length).toBe(queriesBefore);
    expect(reader!.halted).toBeUndefined();
  });

  it('a frame under an epoch that never comes: its events are taken from the ledger (verified) after an error, never skipped', async () => {
    const { ledger, applied, errors, epochs, sender, send } = await setupChannel(600);
    ledger.history(1);
    await send(0, 1);
    await expect.poll(() => applied.length).toBe(2);
    sender.rotate(epochs[1]!);
    ledger.history(1);
    await send(2, 3);
    await expect.poll(() => applied.map((e) => e.seq), { timeout: 10_000 }).toEqual([0, 1, 2, 3]);
    expect(ledger.queries.some((q) => q.fromSeq === 2)).toBe(true);
    expect(errors.join('\n')).toMatch(/epoch/);
    expect(reader!.halted).toBeUndefined();
  });
});
