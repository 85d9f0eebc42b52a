import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { context, trace, TraceFlags } from '@opentelemetry/api';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { createTelemetry } from '@bulwark/telemetry';
import { connectBus, natsOf, type Bus } from './connect.js';
import { consumerBacklog, ensureConsumer, type Delivery } from './consumer.js';
import { BusConfigError, BusPublishError, BusUsageError } from './errors.js';
import { RejectionReporter, type RejectionEvent } from './rejections.js';
import { createEventPublisher, startStreamConsumer } from './stream-io.js';
import { DEFAULT_STREAMS, ensureStream } from './streams.js';
import { Events, LEDGER_PRINCIPAL } from './subjects.js';
import { cleanUp, eventually, NATS_URL, testBus } from './bus.testing.js';
import { uniqueNamespace } from './namespace.js';

const provider = defaultCryptoProvider();

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const reporter = (events: RejectionEvent[] = []) => new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e) });

// Stream consumers allow for backlog: frames may be consumed long after they were sealed.
const STREAM_SKEW_MS = 24 * 60 * 60 * 1000;

function world() {
  const w = testWorld({ ids: ['svc.policy', LEDGER_PRINCIPAL] });
  const sender = () => new SealedSender({ provider, self: w.identity('svc.policy'), directory: w.directory, recipientId: LEDGER_PRINCIPAL });
  const receiver = () => new SealedReceiver({ provider, self: w.identity(LEDGER_PRINCIPAL), directory: w.directory, skewMs: STREAM_SKEW_MS });
  return { sender, receiver };
}

/**
 * A TCP relay to NATS that drops what the server sends to a client inbox with an empty payload:
 * the server's confirmations of acks (`ackAck`), and nothing else the bus receives (replies,
 * JetStream API answers and pull deliveries all have a payload or headers). The acks themselves
 * (client to server) pass untouched.
 */
async function ackConfirmationDropper(target: string): Promise<{ url: string; dropped: () => number; close: () => Promise<void> }> {
  const { hostname, port } = new URL(target);
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    let buffered = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const eol = buffered.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffered.subarray(0, eol).toString();
        const [op, subject = ''] = line.split(' ');
        let end = eol + 2;
        if (op === 'MSG' || op === 'HMSG') {
          // The last token is the payload size (HMSG: headers and payload together).
          const size = Number(line.slice(line.lastIndexOf(' ') + 1));
          if (buffered.length < end + size + 2) return;
          end += size + 2;
          if (op === 'MSG' && size === 0 && subject.startsWith('_INBOX.')) {
            dropped += 1;
            buffered = buffered.subarray(end);
            continue;
          }
        }
        client.write(buffered.subarray(0, end));
        buffered = buffered.subarray(end);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no TCP address');
  return {
    url: `nats://127.0.0.1:${address.port}`,
    dropped: () => dropped,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('sealed events on durable consumers', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  async function setUp(name: string) {
    const bus = await testBus(name);
    buses.push(bus);
    await ensureStream(bus, DEFAULT_STREAMS.events);
    return bus;
  }

  it('stores an event once per event id, and the ack says so', async () => {
    const bus = await setUp('pub-dedupe');
    const events = createEventPublisher(bus, world().sender());
    const secret = text('plaintext-marker-4711');
    const first = await events.publish({ subject: Events.policy.decision, eventId: 'evt-1', payload: secret });
    const again = await events.publish({ subject: Events.policy.decision, eventId: 'evt-1', payload: secret });
    expect(first).toMatchObject({ stream: bus.streamName('events'), duplicate: false });
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    const info = await natsOf(bus).jsm.streams.info(bus.streamName('events'));
    expect(info.state.messages).toBe(1);
    const stored = await natsOf(bus).jsm.streams.getMessage(bus.streamName('events'), { seq: first.seq });
    expect(Buffer.from(stored!.data).includes(Buffer.from(secret))).toBe(false);
  });

  it('fails a publish that no stream persists, naming the event', async () => {
    const bus = await testBus('pub-nostream');
    buses.push(bus);
    const events = createEventPublisher(bus, world().sender());
    const err = await events.publish({ subject: Events.policy.decision, eventId: 'evt-2', payload: text('a'), timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusPublishError);
    expect((err as Error).message).toContain('evt-2');
  });

  it('refuses a message id that is not a safe token', async () => {
    const bus = await setUp('pub-badid');
    const events = createEventPublisher(bus, world().sender());
    await expect(events.publish({ subject: Events.policy.decision, eventId: 'a b', payload: text('a') })).rejects.toBeInstanceOf(BusUsageError);
  });

  it('acknowledges after the handler succeeds and naks with backoff when it fails', async () => {
    const bus = await setUp('consume-retry');
    const w = world();
    const events = createEventPublisher(bus, w.sender());
    const seen: Delivery[] = [];
    let failuresLeft = 2;
    const consumer = await startStreamConsumer(
      bus,
      w.receiver(),
      { stream: 'events', durable: 'ledger', retryInitialMs: 50, retryMaxMs: 200 },
      async (d) => {
        seen.push(d);
        if (str(d.plaintext) === 'flaky' && failuresLeft-- > 0) throw new Error('database down');
      },
      reporter(),
    );
    await events.publish({ subject: Events.policy.decision, eventId: 'e-ok', payload: text('fine') });
    await events.publish({ subject: Events.policy.decision, eventId: 'e-flaky', payload: text('flaky') });
    await eventually(() => consumer.metrics().processed === 2, 5000, 'both events processed');

    const flaky = seen.filter((d) => str(d.plaintext) === 'flaky');
    expect(flaky.map((d) => d.deliveryCount)).toEqual([1, 2, 3]);
    expect(flaky[0]).toMatchObject({ msgId: 'e-flaky', subject: Events.policy.decision, meta: { sender: 'svc.policy' } });
    expect(consumer.metrics()).toMatchObject({ processed: 2, failures: 2, duplicates: 0, rejected: 0 });
    const info = await natsOf(bus).jsm.consumers.info(bus.streamName('events'), 'ledger');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it('hands up to `concurrency` messages to the handler at once and acknowledges each after its own success', async () => {
    const bus = await setUp('consume-concurrent');
    const w = world();
    const events = createEventPublisher(bus, w.sender());
    let inHand = 0;
    let most = 0;
    let release: () => void = () => undefined;
    const allIn = new Promise<void>((resolve) => {
      release = resolve;
    });
    let failOnce = true;
    const consumer = await startStreamConsumer(
      bus,
      w.receiver(),
      { stream: 'events', durable: 'ledger', concurrency: 4, retryInitialMs: 50 },
      async (d) => {
        inHand += 1;
        most = Math.max(most, inHand);
        if (inHand === 4) release();
        // The first four wait for each other: only a consumer that holds four at once gets past this.
        await Promise.race([allIn, new Promise((r) => setTimeout(r, 2000))]);
        inHand -= 1;
        if (str(d.plaintext) === 'm2' && failOnce) {
          failOnce = false;
          throw new Error('database down');
        }
      },
      reporter(),
    );
    for (let i = 0; i < 6; i++) await events.publish({ subject: Events.policy.decision, eventId: `c-${i}`, payload: text(`m${i}`) });
    await eventually(() => consumer.metrics().processed === 6, 5000, 'all six processed');
    expect(most).toBe(4);
    expect(consumer.metrics()).toMatchObject({ processed: 6, failures: 1 });
    await expect(startStreamConsumer(bus, w.receiver(), { stream: 'events', durable: 'ledger', concurrency: 0 }, async () => undefined, reporter())).rejects.toBeInstanceOf(BusConfigError);
    const info = await natsOf(bus).jsm.consumers.info(bus.streamName('events'), 'ledger');
    expect(info.num_ack_pending).toBe(0);
  });

  it('acknowledges a redelivered frame without running the handler twice', async () => {
    const bus = await setUp('consume-dup');
    const w = world();
    let runs = 0;
    const consumer = await startStreamConsumer(bus, w.receiver(), { stream: 'events', durable: 'ledger' }, async () => void runs++, reporter());
    // The same frame stored twice: what a redelivery after a lost ack presents.
    const frame = w.sender().seal(text('x'));
    await natsOf(bus).js.publish(bus.subject(Events.keys.rotated), frame, { msgID: 'm-1' });
    await natsOf(bus).js.publish(bus.subject(Events.keys.rotated), frame, { msgID: 'm-2' });
    await eventually(() => consumer.metrics().duplicates === 1, 5000, 'duplicate recognised');
    expect(runs).toBe(1);
    expect(consumer.metrics()).toMatchObject({ processed: 1, rejected: 0 });
  });

  it('drops a tampered frame before the handler, terminates it and reports it', async () => {
    const bus = await setUp('consume-reject');
    const w = world();
    const events: RejectionEvent[] = [];
    const rej = reporter(events);
    let runs = 0;
    const consumer = await startStreamConsumer(bus, w.receiver(), { stream: 'events', durable: 'ledger', maxDeliver: 3 }, async () => void runs++, rej);
    const frame = w.sender().seal(text('evil'));
    frame[frame.length - 1]! ^= 1;
    await natsOf(bus).js.publish(bus.subject(Events.tools.pinned), frame, { msgID: 'bad-1' });
    await eventually(() => consumer.metrics().rejected === 1, 5000, 'rejection');
    await rej.flush();
    expect(runs).toBe(0);
    expect(events[0]?.details).toMatchObject({ reason: 'E_MAC', claimed_sender: 'svc.policy', subject: Events.tools.pinned });
    await eventually(async () => (await natsOf(bus).jsm.consumers.info(bus.streamName('events'), 'ledger')).num_ack_pending === 0, 3000, 'terminated');
  });

  it('terminates a message whose handler keeps failing after maxDeliver attempts', async () => {
    const bus = await setUp('consume-exhaust');
    const w = world();
    let runs = 0;
    const consumer = await startStreamConsumer(
      bus,
      w.receiver(),
      { stream: 'events', durable: 'ledger', maxDeliver: 2, retryInitialMs: 20 },
      async () => {
        runs++;
        throw new Error('always');
      },
      reporter(),
    );
    await createEventPublisher(bus, w.sender()).publish({ subject: Events.audit.checkpoint, eventId: 'x-1', payload: text('x') });
    await eventually(() => consumer.metrics().exhausted === 1, 5000, 'exhausted');
    expect(runs).toBe(2);
    await eventually(async () => (await natsOf(bus).jsm.consumers.info(bus.streamName('events'), 'ledger')).num_ack_pending === 0, 3000, 'terminated');
  });

  it('sets up a consumer idempotently and refuses a changed filter', async () => {
    const bus = await setUp('consumer-idem');
    const spec = { stream: 'events' as const, durable: 'proj', filterSubject: 'bulwark.evt.policy.>' };
    expect(await ensureConsumer(bus, spec)).toBe('created');
    expect(await ensureConsumer(bus, spec)).toBe('unchanged');
    expect(await ensureConsumer(bus, { ...spec, ackWaitMs: 5_000 })).toBe('updated');
    const err = await ensureConsumer(bus, { ...spec, filterSubject: 'bulwark.evt.keys.>' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusConfigError);
    expect((err as BusConfigError).code).toBe('E_BUS_CONSUMER_CONFLICT');
  });

  it('reports the backlog of a durable until it is consumed, and sets an inactivity threshold', async () => {
    const bus = await setUp('consumer-backlog');
    const w = world();
    const events = createEventPublisher(bus, w.sender());
    for (let i = 0; i < 3; i++) await events.publish({ subject: Events.policy.updated, eventId: `bl-${i}`, payload: text(`u${i}`) });
    const spec = { stream: 'events' as const, durable: 'replay-1', filterSubject: 'bulwark.evt.policy.>', inactiveThresholdMs: 60_000 };
    await ensureConsumer(bus, spec);
    expect(await consumerBacklog(bus, 'events', 'replay-1')).toEqual({ pending: 3, ackPending: 0, ackFloor: 0 });
    const info = await natsOf(bus).jsm.consumers.info(bus.streamName('events'), 'replay-1');
    expect(info.config.inactive_threshold).toBe(60_000 * 1_000_000);
    const seen: string[] = [];
    const consumer = await startStreamConsumer(bus, w.receiver(), spec, async (d) => void seen.push(str(d.plaintext)), reporter());
    await eventually(async () => {
      const backlog = await consumerBacklog(bus, 'events', 'replay-1');
      return backlog.pending === 0 && backlog.ackPending === 0;
    });
    expect(seen).toEqual(['u0', 'u1', 'u2']);
    // Every message up to the last one was acknowledged: the floor is its stream sequence.
    expect((await consumerBacklog(bus, 'events', 'replay-1')).ackFloor).toBe(3);
    await consumer.stop();
    const missing = await consumerBacklog(bus, 'events', 'nobody').catch((e: unknown) => e);
    expect((missing as BusConfigError).code).toBe('E_BUS_CONSUMER');
  });

  it('redelivers to another process after a crash, which processes it (the ledger dedupes by event id)', async () => {
    const bus = await setUp('consume-crash');
    const w = world();
    let firstRuns = 0;
    const crashed = await startStreamConsumer(
      bus,
      w.receiver(),
      { stream: 'events', durable: 'ledger', ackWaitMs: 1_000, stopTimeoutMs: 200 },
      async () => {
        firstRuns++;
        await new Promise(() => undefined); // hangs: the process "dies" before acking
      },
      reporter(),
    );
    await createEventPublisher(bus, w.sender()).publish({ subject: Events.policy.decision, eventId: 'c-1', payload: text('x') });
    await eventually(() => firstRuns === 1, 5000, 'first delivery');
    // stop() gives up on the hung handler after stopTimeoutMs instead of hanging.
    const stopStarted = Date.now();
    await crashed.stop();
    expect(Date.now() - stopStarted).toBeLessThan(2_000);

    const other = await testBus('consume-crash-2', bus.namespace);
    buses.push(other);
    const seen: Delivery[] = [];
    const fresh = await startStreamConsumer(other, w.receiver(), { stream: 'events', durable: 'ledger', ackWaitMs: 1_000 }, async (d) => void seen.push(d), reporter());
    await eventually(() => fresh.metrics().processed === 1, 8000, 'redelivery to the new process');
    expect(seen[0]).toMatchObject({ msgId: 'c-1', deliveryCount: 2 });
  });

  it('carries trace context from the publisher to the handler', async () => {
    createTelemetry({ service: 'bus-test' });
    const bus = await setUp('consume-trace');
    const w = world();
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    let seenTraceId: string | undefined;
    const consumer = await startStreamConsumer(
      bus,
      w.receiver(),
      { stream: 'events', durable: 'ledger' },
      async () => {
        seenTraceId = trace.getSpanContext(context.active())?.traceId;
      },
      reporter(),
    );
    const parent = trace.setSpanContext(context.active(), { traceId, spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED, isRemote: false });
    const events = createEventPublisher(bus, w.sender());
    await context.with(parent, () => events.publish({ subject: Events.policy.decision, eventId: 't-1', payload: text('x') }));
    await eventually(() => consumer.metrics().processed === 1, 5000, 'traced delivery');
    expect(seenTraceId).toBe(traceId);
  });
  it('hands over the next message at once when the confirmation of the last ack never comes', async () => {
    // An in-order reader (the incident service's ledger reader) once waited the JetStream API
    // timeout (5 s) for the confirmation of the previous message's ack before its next message.
    const namespace = uniqueNamespace();
    const publisherBus = await testBus('ack-lost-publisher', namespace);
    buses.push(publisherBus);
    await ensureStream(publisherBus, DEFAULT_STREAMS.events);
    const relay = await ackConfirmationDropper(NATS_URL);
    const bus = await connectBus({ url: relay.url, name: 'ack-lost-consumer', namespace });
    const w = world();
    const events = createEventPublisher(publisherBus, w.sender());
    const handledAt: number[] = [];
    const consumer = await startStreamConsumer(bus, w.receiver(), { stream: 'events', durable: 'in-order' }, async () => void handledAt.push(Date.now()), reporter());
    try {
      await events.publish({ subject: Events.policy.decision, eventId: 'e-first', payload: text('first') });
      await eventually(() => handledAt.length === 1, 5000, 'the first message handled');
      const second = Date.now();
      await events.publish({ subject: Events.policy.decision, eventId: 'e-second', payload: text('second') });
      await eventually(() => handledAt.length === 2, 10_000, 'the second message handled');
      expect(handledAt[1]! - second).toBeLessThan(1000);
      expect(relay.dropped()).toBeGreaterThanOrEqual(1);
      // The acks themselves reached the server: nothing pending, nothing redelivered.
      await eventually(async () => {
        const backlog = await consumerBacklog(publisherBus, 'events', 'in-order');
        return backlog.pending === 0 && backlog.ackPending === 0;
      }, 5000, 'both messages acknowledged');
      expect(consumer.metrics()).toMatchObject({ processed: 2, duplicates: 0 });
    } finally {
      await consumer.stop();
      await bus.close();
      await relay.close();
    }
  }, 30_000);
});
