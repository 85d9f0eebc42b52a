// Attack: fill the event store. Before WP-E no stream had a limit (1 GiB in 4 s), so a flood
// could exhaust the server's storage, after which everything failed for the wrong reason or
// not at all. Now every stream has limits and discards NEW messages when full: a flood stops
// at the limit, stored events are kept, decisions deny saying the audit stream is full, the
// service's readiness says so, and an alert is raised (logged at once, recorded once the
// stream has room again). Each test runs in its own namespace with a small BULWARK_EVENTS.
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { busLimits, loadConfig } from '@bulwark/config';
import { LEDGER_DURABLE as LEDGER_SERVICE_DURABLE } from '@bulwark/audit-ledger';
import {
  DEFAULT_DIRECTORY_LIMITS,
  DEFAULT_STREAM_LIMITS,
  directoryBucketName,
  Events,
  LEDGER_DURABLE,
  openDirectoryBucket,
  removeDirectoryBucket,
  streamSpecs,
  type Bus,
} from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { AGENT, harness, NATS_URL, provider, serviceStats, silentReporter, type Harness } from '../../services/policy/test/world.js';

const LIMIT_BYTES = 256 * 1024;
const LIMIT_MESSAGES = 5_000;
const SMALL = streamSpecs({ events: { maxBytes: LIMIT_BYTES, maxMessages: LIMIT_MESSAGES, maxMessageSize: 64 * 1024 } });
const SEED = `policy reads {
    allow: read(reports)
}`;
const READ = { action: 'read', resource: 'reports' };

/** The attacker: a raw NATS client publishing junk on a subject BULWARK_EVENTS captures, as fast as the server acks. */
async function attacker(): Promise<{ js: JetStreamClient; jsm: JetStreamManager; close(): Promise<void> }> {
  const nc = await connect({ servers: NATS_URL, name: 'attacker' });
  return { js: jetstream(nc), jsm: await jetstreamManager(nc), close: () => nc.close() };
}

/** Publishes `count` messages of `size` bytes, 32 at a time; returns how many were stored and the errors of the rest. */
async function flood(js: JetStreamClient, subject: string, count: number, size: number): Promise<{ stored: number; refused: string[] }> {
  const junk = new Uint8Array(size).fill(0x41);
  let stored = 0;
  const refused: string[] = [];
  for (let at = 0; at < count; at += 32) {
    const wave = Array.from({ length: Math.min(32, count - at) }, () => js.publish(subject, junk));
    for (const outcome of await Promise.allSettled(wave)) {
      if (outcome.status === 'fulfilled') stored++;
      else refused.push(outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason));
    }
  }
  return { stored, refused };
}

/** Floods until not even a tiny message fits: big messages first, then ever smaller ones. */
async function fillUp(js: JetStreamClient, subject: string): Promise<void> {
  for (const size of [4096, 512, 64, 1]) await flood(js, subject, Math.ceil((LIMIT_BYTES * 1.5) / (size + 64)), size);
}

async function clientFor(h: Harness): Promise<BulwarkClient> {
  const bus: Bus = await h.connect(AGENT);
  return createBulwarkClient({ bus, sessions: { provider, self: h.world.identity(AGENT), directory: h.world.directory }, rejections: silentReporter(AGENT), decisionTimeoutMs: 3000 });
}

describe('attack: flooding the event streams', () => {
  let h: Harness | undefined;
  let closeAttacker: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await closeAttacker?.();
    closeAttacker = undefined;
    await h?.close();
    h = undefined;
  });

  it('stops a flood of BULWARK_EVENTS at its limit: the store does not grow past it and keeps what it held', async () => {
    h = await harness({ streams: SMALL });
    const a = await attacker();
    closeAttacker = a.close;
    const stream = h.bus.streamName('events');
    const first = await a.js.publish(h.bus.subject('bulwark.evt.agent.created'), new Uint8Array(100));
    // 4 KiB × 200 = 800 KiB: three times the limit.
    const { stored, refused } = await flood(a.js, h.bus.subject('bulwark.evt.agent.flood'), 200, 4096);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((m) => /maximum bytes exceeded/.test(m))).toBe(true);
    const state = (await a.jsm.streams.info(stream)).state;
    expect(state.bytes).toBeLessThanOrEqual(LIMIT_BYTES);
    // Discard new: the oldest message is still the first one (discard old would have evicted it).
    expect(state.first_seq).toBe(first.seq);
    expect(state.messages).toBe(stored + 1);
    // More of the same changes nothing.
    const again = await flood(a.js, h.bus.subject('bulwark.evt.agent.flood'), 64, 4096);
    expect(again.stored).toBe(0);
    expect((await a.jsm.streams.info(stream)).state.bytes).toBe(state.bytes);
  });

  it('stops a flood of small messages at the message limit', async () => {
    const tiny = streamSpecs({ events: { maxBytes: LIMIT_BYTES, maxMessages: 300, maxMessageSize: 64 * 1024 } });
    h = await harness({ streams: tiny });
    const a = await attacker();
    closeAttacker = a.close;
    const { stored, refused } = await flood(a.js, h.bus.subject('bulwark.evt.agent.flood'), 400, 16);
    expect(stored).toBe(300);
    expect(refused.length).toBe(100);
    expect(refused.every((m) => /maximum messages exceeded/.test(m))).toBe(true);
    expect((await a.jsm.streams.info(h.bus.streamName('events'))).state.messages).toBe(300);
  });

  it('stops a flood of BULWARK_LEDGER, BULWARK_INCIDENTS and the directory bucket at their limits too', async () => {
    const limits = { maxBytes: 128 * 1024, maxMessages: 10_000, maxMessageSize: 8 * 1024 };
    h = await harness({ streams: streamSpecs({ ledger: limits, incidents: limits }) });
    const a = await attacker();
    closeAttacker = a.close;
    for (const [key, subject] of [
      ['ledger', 'bulwark.ledger.batch'],
      ['incidents', 'bulwark.incident.critical.flood'],
    ] as const) {
      const { refused } = await flood(a.js, h.bus.subject(subject), 64, 4096);
      expect(refused.length, key).toBeGreaterThan(0);
      const state = (await a.jsm.streams.info(h.bus.streamName(key))).state;
      expect(state.bytes, key).toBeLessThanOrEqual(limits.maxBytes);
      expect(state.first_seq, key).toBe(1);
    }
    // The directory: a writer parks values under new keys until the bucket refuses.
    const kv = await openDirectoryBucket(h.bus, { maxBytes: 64 * 1024, maxMessages: 100, maxValueSize: 512 });
    try {
      let refusedPuts = 0;
      for (let i = 0; i < 150; i++) await kv.put(`agent.flood${i}`, new Uint8Array(300)).catch(() => refusedPuts++);
      expect(refusedPuts).toBe(50);
      expect(await kv.put('agent.big', new Uint8Array(600)).then(() => 'stored', () => 'refused')).toBe('refused');
      const info = await a.jsm.streams.info(`KV_${directoryBucketName(h.bus)}`);
      expect(info.state.messages).toBe(100);
      expect(info.state.first_seq).toBe(1);
    } finally {
      await removeDirectoryBucket(h.bus);
    }
  });

  it('then denies decisions saying the audit stream is full, reports not ready on $SRV.STATS, raises an alert, and recovers once there is room', async () => {
    h = await harness({ streams: SMALL });
    await h.ledger.commitNew('policy.registered', { name: 'reads', version: 1, text: SEED, file: 'seed.policy' });
    const service = await h.start({ audit: { lingerMs: 5 } });
    const alerts = await h.watchEvents(Events.alert.raised);
    const agent = await clientFor(h);
    expect(await agent.policy.evaluate(READ)).toMatchObject({ decision: 'Allow' });
    expect((await serviceStats(service.instanceId)).ready).toBe(true);

    const a = await attacker();
    closeAttacker = a.close;
    await fillUp(a.js, h.bus.subject('bulwark.evt.agent.flood'));
    const stream = h.bus.streamName('events');
    // The next decision's batch is refused by the full stream; from then on requests are denied.
    await agent.policy.evaluate(READ);
    await expect.poll(() => service.metrics().audit.condition, { timeout: 5000 }).toBe('stream_full');
    const denied = await agent.policy.evaluate(READ);
    expect(denied).toMatchObject({ decision: 'Deny', reason: expect.stringContaining(`audit stream ${stream} is full: its byte limit (max_bytes) is reached`) });
    expect(stream).toMatch(/BULWARK_EVENTS$/);
    await expect.poll(async () => (await serviceStats(service.instanceId)).ready, { timeout: 5000, interval: 200 }).toBe(false);
    expect((await serviceStats(service.instanceId)).reason).toContain(`audit stream ${stream} is full`);
    // The alert is raised (logged, counted) but cannot be recorded in the full stream yet.
    await expect.poll(() => service.metrics().audit.alerts.raised, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    expect(service.metrics().audit.alerts.pending).toBeGreaterThanOrEqual(1);
    expect(alerts).toHaveLength(0);
    expect((await a.jsm.streams.info(stream)).state.bytes).toBeLessThanOrEqual(LIMIT_BYTES);

    // The operator removes the junk: the queued decisions and the alert get through, and decisions resume.
    await a.jsm.streams.purge(stream, { filter: h.bus.subject('bulwark.evt.agent.flood') });
    await expect.poll(async () => (await agent.policy.evaluate(READ)).decision, { timeout: 15_000, interval: 200 }).toBe('Allow');
    await expect.poll(() => alerts.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(alerts[0]).toMatchObject({ eventType: 'alert.raised', agentId: 'svc.policy', details: { kind: 'policy.audit_stream_full', stream, limit: 'bytes' } });
    await expect.poll(async () => (await serviceStats(service.instanceId)).ready, { timeout: 5000, interval: 200 }).toBe(true);
  }, 60_000);

  it('ships limits on every stream and the directory bucket by default, the same in @bulwark/config and @bulwark/bus', () => {
    const limits = busLimits(loadConfig({ env: {}, cwd: '/' }).config);
    expect(limits.streams).toEqual(DEFAULT_STREAM_LIMITS);
    expect(limits.directory).toEqual(DEFAULT_DIRECTORY_LIMITS);
    // Strict mode reads the ack floor of the durable the ledger really consumes with.
    expect(LEDGER_DURABLE).toBe(LEDGER_SERVICE_DURABLE);
    for (const spec of streamSpecs()) {
      expect(spec.limits.maxBytes).toBeGreaterThan(0);
      expect(spec.limits.maxMessages).toBeGreaterThan(0);
      expect(spec.limits.maxMessageSize).toBeLessThanOrEqual(spec.limits.maxBytes);
    }
  });
});
