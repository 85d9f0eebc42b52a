import { afterEach, describe, expect, it } from 'vitest';
import { StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { connectBus, type Bus, natsOf } from './connect.js';
import { BusConfigError, BusConnectError } from './errors.js';
import { uniqueNamespace } from './namespace.js';
import { DEFAULT_STREAMS, ensureStream, ensureStreams, missingStreams } from './streams.js';
import { cleanUp, NATS_URL, testBus } from './bus.testing.js';

describe('streams', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  it('creates the three streams once and leaves them unchanged on a second run', async () => {
    const bus = await testBus('streams-idempotent');
    buses.push(bus);
    expect(await missingStreams(bus)).toHaveLength(3);
    const first = await ensureStreams(bus);
    expect(Object.values(first)).toEqual(['created', 'created', 'created']);
    const second = await ensureStreams(bus);
    expect(Object.values(second)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(await missingStreams(bus)).toEqual([]);

    const info = await natsOf(bus).jsm.streams.info(bus.streamName('events'));
    expect(info.config.subjects).toEqual([bus.subject('bulwark.evt.>')]);
    expect(info.config.storage).toBe(StorageType.File);
    expect(info.config.duplicate_window).toBe(nanos(DEFAULT_STREAMS.events.duplicateWindowMs));
  });

  it('survives two processes setting up the same streams at once', async () => {
    const ns = uniqueNamespace();
    const a = await testBus('streams-race-a', ns);
    const b = await testBus('streams-race-b', ns);
    buses.push(a, b);
    const outcomes = await Promise.all([ensureStreams(a), ensureStreams(b)]);
    const all = outcomes.flatMap((o) => Object.values(o));
    expect(all.filter((o) => o === 'created').length).toBeGreaterThanOrEqual(3);
    expect(await missingStreams(a)).toEqual([]);
  });

  it('updates a stream whose duplicate window drifted', async () => {
    const bus = await testBus('streams-update');
    buses.push(bus);
    await ensureStream(bus, { ...DEFAULT_STREAMS.events, duplicateWindowMs: 5_000 });
    expect(await ensureStream(bus, DEFAULT_STREAMS.events)).toBe('updated');
    const info = await natsOf(bus).jsm.streams.info(bus.streamName('events'));
    expect(info.config.duplicate_window).toBe(nanos(DEFAULT_STREAMS.events.duplicateWindowMs));
  });

  it('refuses a stream that exists with another storage type, naming it', async () => {
    const bus = await testBus('streams-conflict');
    buses.push(bus);
    await ensureStream(bus, { ...DEFAULT_STREAMS.ledger, storage: 'memory' });
    const err = await ensureStream(bus, DEFAULT_STREAMS.ledger).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusConfigError);
    expect((err as BusConfigError).code).toBe('E_BUS_STREAM_CONFLICT');
    expect((err as Error).message).toContain(bus.streamName('ledger'));
    expect((err as Error).message).toContain('storage');
  });

  it('keeps incident commands out of the SOC stream', async () => {
    const bus = await testBus('streams-incidents');
    buses.push(bus);
    await ensureStream(bus, DEFAULT_STREAMS.incidents);
    const ack = await natsOf(bus).js.publish(bus.subject('bulwark.incident.high.auth_failure'), new Uint8Array([1]));
    expect(ack.stream).toBe(bus.streamName('incidents'));
    const info = await natsOf(bus).jsm.streams.info(bus.streamName('incidents'));
    const captures = (subject: string) =>
      (info.config.subjects ?? []).some((pattern) => subject.startsWith(pattern.slice(0, -1)));
    expect(captures(bus.subject('bulwark.incident.ack'))).toBe(false);
    expect(captures(bus.subject('bulwark.incident.critical.x'))).toBe(true);
  });
});

describe('connectBus', () => {
  it('names the URL when the server cannot be reached', async () => {
    const url = 'nats://127.0.0.1:1';
    const err = await connectBus({ url, name: 'unreachable', connectTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusConnectError);
    expect((err as BusConnectError).code).toBe('E_BUS_CONNECT');
    expect((err as Error).message).toContain(url);
  });

  it('drains on close and reports itself disconnected', async () => {
    const bus = await connectBus({ url: NATS_URL, name: 'close-test' });
    expect(bus.isConnected()).toBe(true);
    await Promise.all([bus.close(), bus.close()]);
    expect(bus.isConnected()).toBe(false);
    expect(natsOf(bus).nc.isClosed()).toBe(true);
  });
});
