import { isSpanContextValid } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { createTelemetry } from './index.js';

describe('createTelemetry', () => {
  it('creates real spans and instruments with no exporter configured', async () => {
    const telemetry = createTelemetry({ service: 'svc.bare' });
    const span = telemetry.tracer.startSpan('evaluate');
    expect(isSpanContextValid(span.spanContext())).toBe(true);
    expect(span.isRecording()).toBe(true);
    span.end();
    telemetry.meter.createCounter('bulwark.test.count').add(1);
    telemetry.meter.createHistogram('bulwark.test.duration', { unit: 'ms' }).record(0.4);
    await telemetry.flush();
    await telemetry.shutdown();
  });

  it('nests spans started inside an active span, across awaits', async () => {
    const exporter = new InMemorySpanExporter();
    const telemetry = createTelemetry({ service: 'svc.policy', version: '0.1.0', instanceId: 'i-1', spanExporter: exporter });
    await telemetry.tracer.startActiveSpan('policy.evaluate', async (parent) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      telemetry.tracer.startSpan('policy.cache.lookup').end();
      parent.end();
    });
    await telemetry.flush();
    const spans = exporter.getFinishedSpans();
    const parent = spans.find((s) => s.name === 'policy.evaluate');
    const child = spans.find((s) => s.name === 'policy.cache.lookup');
    expect(child?.parentSpanContext?.spanId).toBe(parent?.spanContext().spanId);
    expect(child?.spanContext().traceId).toBe(parent?.spanContext().traceId);
    expect(parent?.resource.attributes).toMatchObject({ 'service.name': 'svc.policy', 'service.version': '0.1.0', 'service.instance.id': 'i-1' });
    expect(parent?.instrumentationScope).toMatchObject({ name: 'svc.policy', version: '0.1.0' });
    await telemetry.shutdown();
  });

  it('exports metrics through the configured reader', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const telemetry = createTelemetry({ service: 'svc.policy', metricReader: reader });
    const decisions = telemetry.meter.createCounter('bulwark.policy.decisions');
    decisions.add(2, { decision: 'Deny' });
    decisions.add(1, { decision: 'Allow' });
    await telemetry.flush();
    const [resourceMetrics] = exporter.getMetrics();
    expect(resourceMetrics?.resource.attributes['service.name']).toBe('svc.policy');
    const metric = resourceMetrics?.scopeMetrics[0]?.metrics.find((m) => m.descriptor.name === 'bulwark.policy.decisions');
    const byDecision = Object.fromEntries((metric?.dataPoints ?? []).map((p) => [String(p.attributes.decision), p.value]));
    expect(byDecision).toEqual({ Deny: 2, Allow: 1 });
    await telemetry.shutdown();
  });
});
