import { afterEach, describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { ChannelReceiver, ChannelSender, createChannelEpochKey } from '@bulwark/envelope';
import type { Bus } from './connect.js';
import type { Delivery } from './consumer.js';
import { BusUsageError } from './errors.js';
import { RejectionReporter } from './rejections.js';
import { createIncidentPublisher, createStreamPublisher, startStreamConsumer } from './stream-io.js';
import { DEFAULT_STREAMS, ensureStream } from './streams.js';
import { cleanUp, eventually, testBus } from './bus.testing.js';

const provider = defaultCryptoProvider();

const CHANNEL = 'soc.incidents';

describe('the SOC incident stream on a channel', () => {
  const buses: Bus[] = [];
  afterEach(async () => {
    await cleanUp(...buses.splice(0));
  });

  it('delivers incidents to an enrolled analyst and refuses one without the epoch key', async () => {
    const bus = await testBus('incidents');
    buses.push(bus);
    await ensureStream(bus, DEFAULT_STREAMS.incidents);
    const w = testWorld({ ids: ['svc.incident-response'] });
    const epochKey = createChannelEpochKey(provider, CHANNEL, 1);
    const incidents = createIncidentPublisher(bus, new ChannelSender({ provider, senderId: 'svc.incident-response', epochKey }));
    const ack = await incidents.publish({ severity: 'high', category: 'auth_failure', incidentId: 'inc-1', payload: new TextEncoder().encode('{"n":1}') });
    expect(ack.stream).toBe(bus.streamName('incidents'));

    const enrolled = new ChannelReceiver({ provider, channelId: CHANNEL, directory: w.directory, skewMs: 86_400_000 });
    enrolled.install(epochKey);
    const seen: Delivery[] = [];
    const analyst = await startStreamConsumer(bus, enrolled, { stream: 'incidents', durable: 'analyst-ann' }, async (d) => void seen.push(d), new RejectionReporter({ reporter: 'analyst.ann', publish: async () => undefined }));
    await eventually(() => analyst.metrics().processed === 1, 5000, 'incident delivered');
    expect(seen[0]).toMatchObject({ subject: 'bulwark.incident.high.auth_failure', msgId: 'inc-1', meta: { sender: 'svc.incident-response' } });

    const outsider = new ChannelReceiver({ provider, channelId: CHANNEL, directory: w.directory, skewMs: 86_400_000 });
    outsider.install(createChannelEpochKey(provider, CHANNEL, 1)); // same epoch number, wrong key
    const rejections = new RejectionReporter({ reporter: 'analyst.eve', publish: async () => undefined });
    let outsiderRuns = 0;
    const eve = await startStreamConsumer(bus, outsider, { stream: 'incidents', durable: 'analyst-eve' }, async () => void outsiderRuns++, rejections);
    await eventually(() => eve.metrics().rejected === 1, 5000, 'outsider rejected');
    expect(outsiderRuns).toBe(0);
    expect(Object.keys(rejections.metrics().rejectedByReason)).toHaveLength(1);
  });

  it('refuses to publish on a subject its stream does not capture', async () => {
    const bus = await testBus('incidents-subject');
    buses.push(bus);
    const sender = new ChannelSender({ provider, senderId: 'svc.incident-response', epochKey: createChannelEpochKey(provider, CHANNEL, 1) });
    const publisher = createStreamPublisher(bus, sender, 'incidents');
    await expect(publisher.publish({ subject: 'bulwark.incident.ack', msgId: 'x', payload: new Uint8Array(1) })).rejects.toBeInstanceOf(BusUsageError);
  });
});
