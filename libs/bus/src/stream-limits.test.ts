import { afterEach, describe, expect, it } from 'vitest';
import { DiscardPolicy, RetentionPolicy } from '@nats-io/jetstream';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { natsOf, type Bus } from './connect.js';
import { openDirectoryBucket, removeDirectoryBucket } from './directory-bucket.js';
import { BusConfigError, BusPublishError, BusStreamFullError } from './errors.js';
import { RejectionReporter } from './rejections.js';
import { createStreamPublisher, startStreamConsumer } from './stream-io.js';
import { DEFAULT_DIRECTORY_LIMITS, DEFAULT_STREAM_LIMITS } from './stream-limits.js';
import { DEFAULT_STREAMS, ensureStream, ensureStreams, streamSpecs, type StreamSpec } from './streams.js';
import { LEDGER_PRINCIPAL } from './subjects.js';
import { cleanUp, eventually, testBus } from './bus.testing.js';

const provider = defaultCryptoProvider();
const world = testWorld({ provider, ids: ['svc.policy', LEDGER_PRINCIPAL] });
const small = (limits: Partial<StreamSpec['limits']>): StreamSpec => ({ ...DEFAULT_STREAMS.events, limits: { ...DEFAULT_STREAMS.events.limits, ...limits } });

function eventsPublisher(bus: Bus) {
  return createStreamPublisher(bus, new SealedSender({ provider, self: world.identity('svc.policy'), directory: world.directory, recipientId: LEDGER_PRINCIPAL }), 'events');
}

describe('stream limits', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  it('creates every stream with byte, message and message-size limits and discard new', async () => {
    const bus = await testBus('limits-create');
    buses.push(bus);
    await ensureStreams(bus);
    for (const key of ['events', 'ledger', 'incidents'] as const) {
      const { config } = await natsOf(bus).jsm.streams.info(bus.streamName(key));
      expect(config).toMatchObject({
        max_bytes: DEFAULT_STREAM_LIMITS[key].maxBytes,
        max_msgs: DEFAULT_STREAM_LIMITS[key].maxMessages,
        max_msg_size: DEFAULT_STREAM_LIMITS[key].maxMessageSize,
        discard: DiscardPolicy.New,
      });
    }
  });

  it('brings an unlimited, discard-old stream to its limits in place, keeping its messages', async () => {
    const bus = await testBus('limits-reconcile');
    buses.push(bus);
    const name = bus.streamName('events');
    await natsOf(bus).jsm.streams.add({ name, subjects: [bus.subject('bulwark.evt.>')], retention: RetentionPolicy.Workqueue, discard: DiscardPolicy.Old, duplicate_window: 120_000_000_000, max_age: 30 * 86_400_000_000_000 });
    await eventsPublisher(bus).publish({ subject: 'bulwark.evt.policy.decision', msgId: 'kept', payload: new Uint8Array(10) });
    const specs = streamSpecs({ events: { maxBytes: 1 << 20, maxMessages: 50, maxMessageSize: 4096 } });
    expect(await ensureStream(bus, specs[0]!)).toBe('updated');
    const info = await natsOf(bus).jsm.streams.info(name);
    expect(info.config).toMatchObject({ max_bytes: 1 << 20, max_msgs: 50, max_msg_size: 4096, discard: DiscardPolicy.New });
    expect(info.state.messages).toBe(1);
    expect(await ensureStream(bus, specs[0]!)).toBe('unchanged');
  });

  it('refuses the next publish once a stream is full and keeps what it holds (E_BUS_STREAM_FULL)', async () => {
    const bus = await testBus('limits-full');
    buses.push(bus);
    await ensureStream(bus, small({ maxMessages: 3 }));
    const events = eventsPublisher(bus);
    for (let i = 0; i < 3; i++) await events.publish({ subject: 'bulwark.evt.policy.decision', msgId: `m${i}`, payload: new Uint8Array(10) });
    const err = await events.publish({ subject: 'bulwark.evt.policy.decision', msgId: 'm3', payload: new Uint8Array(10) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusStreamFullError);
    expect(err).toBeInstanceOf(BusPublishError);
    expect(err).toMatchObject({ code: 'E_BUS_STREAM_FULL', context: { stream: bus.streamName('events'), limit: 'messages' } });
    expect((err as Error).message).toContain(`stream ${bus.streamName('events')}`);
    const { state } = await natsOf(bus).jsm.streams.info(bus.streamName('events'));
    // Discard new: the first message is still there (discard old would have dropped it for m3).
    expect(state).toMatchObject({ messages: 3, first_seq: 1, last_seq: 3 });
  });

  it('frees the space of BULWARK_EVENTS as the ledger acknowledges (work queue), so a full stream drains', async () => {
    const bus = await testBus('limits-drain');
    buses.push(bus);
    await ensureStream(bus, small({ maxMessages: 3 }));
    const events = eventsPublisher(bus);
    for (let i = 0; i < 3; i++) await events.publish({ subject: 'bulwark.evt.policy.decision', msgId: `d${i}`, payload: new Uint8Array(10) });
    await expect(events.publish({ subject: 'bulwark.evt.policy.decision', msgId: 'd3', payload: new Uint8Array(10) })).rejects.toBeInstanceOf(BusStreamFullError);
    const receiver = new SealedReceiver({ provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory });
    const ledger = await startStreamConsumer(bus, receiver, { stream: 'events', durable: 'ledger', filterSubject: 'bulwark.evt.>' }, async () => undefined, new RejectionReporter({ reporter: LEDGER_PRINCIPAL, publish: async () => undefined }));
    try {
      await eventually(async () => (await natsOf(bus).jsm.streams.info(bus.streamName('events'))).state.messages === 0, 5000, 'acknowledged messages removed');
      expect((await events.publish({ subject: 'bulwark.evt.policy.decision', msgId: 'd3', payload: new Uint8Array(10) })).seq).toBe(4);
    } finally {
      await ledger.stop();
    }
  });

  it('refuses a BULWARK_EVENTS of an older release (limits retention), naming the retention: a migration, never a silent change', async () => {
    const bus = await testBus('limits-retention');
    buses.push(bus);
    await ensureStream(bus, { ...DEFAULT_STREAMS.events, retention: 'limits' });
    const err = await ensureStream(bus, DEFAULT_STREAMS.events).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_BUS_STREAM_CONFLICT' });
    expect((err as Error).message).toContain('retention (limits, want workqueue)');
  });

  it('names the byte limit when the bytes run out', async () => {
    const bus = await testBus('limits-bytes');
    buses.push(bus);
    await ensureStream(bus, small({ maxBytes: 64 * 1024, maxMessageSize: 16 * 1024 }));
    const events = eventsPublisher(bus);
    let err: unknown;
    for (let i = 0; i < 20 && err === undefined; i++) {
      await events.publish({ subject: 'bulwark.evt.policy.decision', msgId: `b${i}`, payload: new Uint8Array(8000) }).catch((e: unknown) => (err = e));
    }
    expect(err).toMatchObject({ code: 'E_BUS_STREAM_FULL', context: { limit: 'bytes' } });
    const { state } = await natsOf(bus).jsm.streams.info(bus.streamName('events'));
    expect(state.bytes).toBeLessThanOrEqual(64 * 1024);
  });

  it('refuses a message over the stream\'s max message size (E_BUS_MESSAGE_TOO_LARGE)', async () => {
    const bus = await testBus('limits-size');
    buses.push(bus);
    await ensureStream(bus, small({ maxMessageSize: 2048 }));
    const err = await eventsPublisher(bus).publish({ subject: 'bulwark.evt.policy.decision', msgId: 'big', payload: new Uint8Array(4096) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusPublishError);
    expect(err).toMatchObject({ code: 'E_BUS_MESSAGE_TOO_LARGE' });
  });

  it('refuses to lower a limit below what the stream holds, which NATS would apply by purging (E_BUS_STREAM_LIMIT)', async () => {
    const bus = await testBus('limits-shrink');
    buses.push(bus);
    await ensureStream(bus, small({ maxMessages: 100 }));
    const events = eventsPublisher(bus);
    for (let i = 0; i < 5; i++) await events.publish({ subject: 'bulwark.evt.policy.decision', msgId: `s${i}`, payload: new Uint8Array(10) });
    const err = await ensureStream(bus, small({ maxMessages: 2 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusConfigError);
    expect(err).toMatchObject({ code: 'E_BUS_STREAM_LIMIT' });
    expect((err as Error).message).toContain('5 messages > max_msgs 2');
    const info = await natsOf(bus).jsm.streams.info(bus.streamName('events'));
    expect(info.state.messages).toBe(5);
    expect(info.config.max_msgs).toBe(100);
    // Raising it is always fine.
    expect(await ensureStream(bus, small({ maxMessages: 1000 }))).toBe('updated');
  });

  it('gives the directory bucket limits and discard new, and reconciles them when the writer asks', async () => {
    const bus = await testBus('limits-directory');
    buses.push(bus);
    try {
      await openDirectoryBucket(bus);
      const stream = `KV_${bus.namespace.streamPrefix}BULWARK_DIRECTORY`;
      expect((await natsOf(bus).jsm.streams.info(stream)).config).toMatchObject({
        max_bytes: DEFAULT_DIRECTORY_LIMITS.maxBytes,
        max_msgs: DEFAULT_DIRECTORY_LIMITS.maxMessages,
        max_msg_size: DEFAULT_DIRECTORY_LIMITS.maxValueSize,
        discard: DiscardPolicy.New,
      });
      await openDirectoryBucket(bus, { maxBytes: 1 << 20, maxMessages: 500, maxValueSize: 800 });
      expect((await natsOf(bus).jsm.streams.info(stream)).config).toMatchObject({ max_bytes: 1 << 20, max_msgs: 500, max_msg_size: 800 });
      // A reader (no limits given) changes nothing.
      await openDirectoryBucket(bus);
      expect((await natsOf(bus).jsm.streams.info(stream)).config.max_msgs).toBe(500);
    } finally {
      await removeDirectoryBucket(bus);
    }
  });
});
