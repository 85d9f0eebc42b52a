import { describe, expect, it } from 'vitest';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { RejectionReporter, type RejectionEvent } from './rejections.js';
import { TokenBucket } from './token-bucket.js';

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TokenBucket', () => {
  it('allows a burst, then one token per 1/rate seconds', () => {
    const c = clock();
    const b = new TokenBucket(2, 3, c.now);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    c.advance(499);
    expect(b.take()).toBe(false);
    c.advance(1);
    expect(b.take()).toBe(true);
  });
});

describe('RejectionReporter', () => {
  it('reports a flood from one sender at the bucket rate and counts what it suppressed', async () => {
    const c = clock();
    const events: RejectionEvent[] = [];
    const r = new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e), ratePerSecond: 1, burst: 2, now: c.now });
    for (let i = 0; i < 1000; i++) r.report({ reason: 'mac', sender: 'agent.x', subject: 'bulwark.evt.a' });
    await r.flush();
    expect(events).toHaveLength(2);
    expect(r.metrics()).toMatchObject({ rejectedByReason: { mac: 1000 }, reported: 2, suppressed: 998 });

    c.advance(1000);
    r.report({ reason: 'mac', sender: 'agent.x', subject: 'bulwark.evt.a' });
    await r.flush();
    expect(events).toHaveLength(3);
    expect(events[2]?.details).toMatchObject({ reason: 'mac', claimed_sender: 'agent.x', suppressed: 998, subject: 'bulwark.evt.a' });
    expect(events[2]?.event_type).toBe('security_violation');
    expect(events[2]?.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('caps reports across forged sender ids with the global bucket', async () => {
    const c = clock();
    const events: RejectionEvent[] = [];
    const r = new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e), globalRatePerSecond: 5, globalBurst: 5, now: c.now });
    for (let i = 0; i < 500; i++) r.report({ reason: 'shape', sender: `agent.${i}`, subject: 's' });
    await r.flush();
    expect(events).toHaveLength(5);
    expect(r.metrics().suppressed).toBe(495);
  });

  it('keeps separate budgets per reason', async () => {
    const c = clock();
    const events: RejectionEvent[] = [];
    const r = new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e), burst: 1, now: c.now });
    r.report({ reason: 'mac', sender: 'a', subject: 's' });
    r.report({ reason: 'mac', sender: 'a', subject: 's' });
    r.report({ reason: 'replay', sender: 'a', subject: 's' });
    await r.flush();
    expect(events.map((e) => e.details.reason)).toEqual(['mac', 'replay']);
  });

  it('forgets the least recently seen sender beyond maxTrackedKeys', async () => {
    const c = clock();
    const events: RejectionEvent[] = [];
    const r = new RejectionReporter({ reporter: 'svc.test', publish: async (e) => void events.push(e), burst: 1, maxTrackedKeys: 2, now: c.now });
    const from = (sender: string) => r.report({ reason: 'mac', sender, subject: 's' });
    from('a');
    from('a'); // suppressed: a's bucket is empty
    from('b');
    from('c'); // evicts a, the least recently seen
    from('a'); // a starts over with a full bucket
    await r.flush();
    expect(events.map((e) => e.details.claimed_sender)).toEqual(['a', 'b', 'c', 'a']);
    expect(r.metrics().rejectedByReason['mac']).toBe(5);
  });

  it('counts a failed publish without throwing', async () => {
    const r = new RejectionReporter({ reporter: 'svc.test', publish: () => Promise.reject(new Error('down')) });
    expect(() => r.report({ reason: 'mac', sender: undefined, subject: 's' })).not.toThrow();
    await r.flush();
    expect(r.metrics().reportFailures).toBe(1);
  });
});

describe('RejectionReporter metrics', () => {
  it('counts into an OpenTelemetry meter by reason', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const r = new RejectionReporter({ reporter: 'svc.test', publish: async () => undefined, burst: 1, meter: provider.getMeter('bus-test') });
    r.report({ reason: 'E_MAC', sender: 'a', subject: 's' });
    r.report({ reason: 'E_MAC', sender: 'a', subject: 's' });
    r.report({ reason: 'E_STALE', sender: 'a', subject: 's' });
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
    const points = (name: string) =>
      Object.fromEntries(metrics.filter((m) => m.descriptor.name === name).flatMap((m) => m.dataPoints.map((p) => [String(p.attributes['reason']), p.value])));
    expect(points('bulwark.bus.rejected_frames')).toEqual({ E_MAC: 2, E_STALE: 1 });
    expect(points('bulwark.bus.suppressed_reports')).toEqual({ E_MAC: 1 });
    await provider.shutdown();
  });
});
