import { afterEach, describe, expect, it } from 'vitest';
import type { Bus } from './connect.js';
import { ensureConsumer, startConsumer, type Delivery } from './consumer.js';
import { OpaqueCodec } from './internal/opaque-codec.testing.js';
import { publishSealed } from './publisher.js';
import { RejectionReporter, type RejectionEvent } from './rejections.js';
import { DEFAULT_STREAMS, ensureStream } from './streams.js';
import { cleanUp, eventually, testBus } from './bus.testing.js';
import { BusConfigError, BusPublishError } from './errors.js';

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

function reporter(events: RejectionEvent[] = []) {
  return new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e) });
}

describe('sealed publish and durable consumers', () => {
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
    const sealer = new OpaqueCodec().sealer('svc.policy');
    const first = await publishSealed(bus, sealer, { subject: 'bulwark.evt.policy.decision', msgId: 'evt-1', plaintext: text('a'), expectStream: 'events' });
    const again = await publishSealed(bus, sealer, { subject: 'bulwark.evt.policy.decision', msgId: 'evt-1', plaintext: text('a'), expectStream: 'events' });
    expect(first).toMatchObject({ stream: bus.streamName('events'), duplicate: false });
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    const info = await bus.jsm.streams.info(bus.streamName('events'));
    expect(info.state.messages).toBe(1);
  });

  it('fails a publish that no stream persists', async () => {
    const bus = await setUp('pub-nostream');
    const sealer = new OpaqueCodec().sealer('svc.policy');
    const err = await publishSealed(bus, sealer, { subject: 'bulwark.nowhere.x', msgId: 'evt-2', plaintext: text('a'), expectStream: 'events', timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusPublishError);
    expect((err as Error).message).toContain('evt-2');
  });

  it('acknowledges after the handler succeeds and naks with backoff when it fails', async () => {
    const bus = await setUp('consume-retry');
    const codec = new OpaqueCodec();
    const sealer = codec.sealer('svc.policy');
    const seen: Delivery[] = [];
    let failuresLeft = 2;
    const consumer = await startConsumer(
      bus,
      { stream: 'events', durable: 'ledger', retryInitialMs: 50, retryMaxMs: 200 },
      codec.opener(),
      async (d) => {
        seen.push(d);
        if (str(d.plaintext) === 'flaky' && failuresLeft-- > 0) throw new Error('database down');
      },
      reporter(),
    );
    await publishSealed(bus, sealer, { subject: 'bulwark.evt.policy.decision', msgId: 'e-ok', plaintext: text('fine'), expectStream: 'events' });
    await publishSealed(bus, sealer, { subject: 'bulwark.evt.policy.decision', msgId: 'e-flaky', plaintext: text('flaky'), expectStream: 'events' });
    await eventually(() => consumer.metrics().processed === 2, 5000, 'both events processed');

    const flaky = seen.filter((d) => str(d.plaintext) === 'flaky');
    expect(flaky.map((d) => d.deliveryCount)).toEqual([1, 2, 3]);
    expect(flaky[0]?.msgId).toBe('e-flaky');
    expect(flaky[0]?.subject).toBe('bulwark.evt.policy.decision');
    expect(flaky[0]?.meta.sender).toBe('svc.policy');
    expect(consumer.metrics()).toMatchObject({ processed: 2, failures: 2, duplicates: 0 });

    const info = await bus.jsm.consumers.info(bus.streamName('events'), 'ledger');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it('acknowledges a redelivered frame without running the handler twice', async () => {
    const bus = await setUp('consume-dup');
    const codec = new OpaqueCodec();
    const sealer = codec.sealer('svc.policy', 'sess-1');
    let runs = 0;
    const consumer = await startConsumer(bus, { stream: 'events', durable: 'ledger' }, codec.opener(), async () => void runs++, reporter());
    // The same frame stored twice (as a redelivery after a lost ack would present it).
    const frame = sealer.sealAt(7n, text('x'));
    await bus.js.publish(bus.subject('bulwark.evt.keys.rotated'), frame, { msgID: 'm-1' });
    await bus.js.publish(bus.subject('bulwark.evt.keys.rotated'), frame, { msgID: 'm-2' });
    await eventually(() => consumer.metrics().duplicates === 1, 5000, 'duplicate recognised');
    expect(runs).toBe(1);
    expect(consumer.metrics().processed).toBe(1);
  });

  it('drops a tampered frame before the handler, terminates it and reports it', async () => {
    const bus = await setUp('consume-reject');
    const codec = new OpaqueCodec();
    const forged = new OpaqueCodec().sealer('agent.mallory');
    const events: RejectionEvent[] = [];
    const rej = reporter(events);
    let runs = 0;
    const consumer = await startConsumer(bus, { stream: 'events', durable: 'ledger', maxDeliver: 3 }, codec.opener(), async () => void runs++, rej);
    await publishSealed(bus, forged, { subject: 'bulwark.evt.tools.pinned', msgId: 'bad-1', plaintext: text('evil'), expectStream: 'events' });
    await eventually(() => consumer.metrics().rejected === 1, 5000, 'rejection');
    await rej.flush();
    expect(runs).toBe(0);
    expect(events[0]?.details).toMatchObject({ reason: 'E_MAC', claimed_sender: 'agent.mallory', subject: 'bulwark.evt.tools.pinned' });
    await eventually(async () => (await bus.jsm.consumers.info(bus.streamName('events'), 'ledger')).num_ack_pending === 0, 3000, 'terminated');
  });

  it('terminates a message whose handler keeps failing after maxDeliver attempts', async () => {
    const bus = await setUp('consume-exhaust');
    const codec = new OpaqueCodec();
    let runs = 0;
    const consumer = await startConsumer(
      bus,
      { stream: 'events', durable: 'ledger', maxDeliver: 2, retryInitialMs: 20 },
      codec.opener(),
      async () => {
        runs++;
        throw new Error('always');
      },
      reporter(),
    );
    await publishSealed(bus, codec.sealer('svc.x'), { subject: 'bulwark.evt.audit.checkpoint', msgId: 'x-1', plaintext: text('x'), expectStream: 'events' });
    await eventually(() => consumer.metrics().exhausted === 1, 5000, 'exhausted');
    expect(runs).toBe(2);
    await eventually(async () => (await bus.jsm.consumers.info(bus.streamName('events'), 'ledger')).num_ack_pending === 0, 3000, 'terminated');
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

  it('a second consumer process after a crash sees unacknowledged messages again', async () => {
    const bus = await setUp('consume-crash');
    const codec = new OpaqueCodec();
    const sealer = codec.sealer('svc.policy');
    let firstRuns = 0;
    const crashed = await startConsumer(
      bus,
      { stream: 'events', durable: 'ledger', ackWaitMs: 1_000 },
      codec.opener(),
      async () => {
        firstRuns++;
        await new Promise(() => undefined); // hangs: the process "dies" before acking
      },
      reporter(),
    );
    await publishSealed(bus, sealer, { subject: 'bulwark.evt.policy.decision', msgId: 'c-1', plaintext: text('x'), expectStream: 'events' });
    await eventually(() => firstRuns === 1, 5000, 'first delivery');
    void crashed.stop();

    const other = await testBus('consume-crash-2', bus.namespace);
    buses.push(other);
    const seen: Delivery[] = [];
    const fresh = await startConsumer(other, { stream: 'events', durable: 'ledger', ackWaitMs: 1_000 }, codec.opener(), async (d) => void seen.push(d), reporter());
    await eventually(() => fresh.metrics().processed === 1, 8000, 'redelivery to the new process');
    expect(seen[0]?.msgId).toBe('c-1');
    expect(seen[0]?.deliveryCount).toBe(2);
  });
});
