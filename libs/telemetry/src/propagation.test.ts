import { ROOT_CONTEXT, trace, TraceFlags, type SpanContext } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { createTelemetry, extractTraceContext, injectTraceContext, type HeaderCarrier } from './index.js';

/** A Map-backed carrier; `missing` is what `get` answers for an absent key (NATS answers ''). */
function mapCarrier(entries: Record<string, string> = {}, missing: string | undefined = undefined): HeaderCarrier & { map: Map<string, string> } {
  const map = new Map(Object.entries(entries));
  return { map, get: (key) => map.get(key) ?? missing, set: (key, value) => void map.set(key, value) };
}

const spanContext: SpanContext = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
};

describe('W3C trace context in message headers', () => {
  it('extracts the span context it injected', () => {
    const carrier = mapCarrier();
    injectTraceContext(carrier, trace.setSpanContext(ROOT_CONTEXT, spanContext));
    expect(carrier.map.get('traceparent')).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    const extracted = trace.getSpanContext(extractTraceContext(carrier, ROOT_CONTEXT));
    expect(extracted).toEqual({ ...spanContext, isRemote: true });
  });

  it('carries tracestate and an unsampled flag', () => {
    const carrier = mapCarrier({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', tracestate: 'vendor=abc' });
    const extracted = trace.getSpanContext(extractTraceContext(carrier, ROOT_CONTEXT));
    expect(extracted?.traceFlags).toBe(TraceFlags.NONE);
    expect(extracted?.traceState?.get('vendor')).toBe('abc');
  });

  it.each([
    'garbage',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    `00-${'a'.repeat(4096)}`,
    '\u0000\n',
  ])('ignores the malformed traceparent %j', (traceparent) => {
    const carrier = mapCarrier({ traceparent, tracestate: 'x=1' });
    const context = extractTraceContext(carrier, ROOT_CONTEXT);
    expect(context).toBe(ROOT_CONTEXT);
    expect(trace.getSpanContext(context)).toBeUndefined();
  });

  it('ignores absent headers, whether the carrier answers undefined or an empty string', () => {
    expect(extractTraceContext(mapCarrier({}, undefined), ROOT_CONTEXT)).toBe(ROOT_CONTEXT);
    expect(extractTraceContext(mapCarrier({}, ''), ROOT_CONTEXT)).toBe(ROOT_CONTEXT);
  });

  it('writes nothing when there is no span', () => {
    const carrier = mapCarrier();
    injectTraceContext(carrier, ROOT_CONTEXT);
    expect(carrier.map.size).toBe(0);
  });

  it('links a span in one service to its parent in another through the headers', async () => {
    const exporterA = new InMemorySpanExporter();
    const exporterB = new InMemorySpanExporter();
    const a = createTelemetry({ service: 'svc.a', spanExporter: exporterA });
    const b = createTelemetry({ service: 'svc.b', spanExporter: exporterB });
    const headers = mapCarrier();
    a.tracer.startActiveSpan('request', (span) => {
      injectTraceContext(headers);
      span.end();
    });
    const parent = extractTraceContext(headers, ROOT_CONTEXT);
    b.tracer.startSpan('handle', {}, parent).end();
    await Promise.all([a.flush(), b.flush()]);
    const [request] = exporterA.getFinishedSpans();
    const [handle] = exporterB.getFinishedSpans();
    expect(handle?.spanContext().traceId).toBe(request?.spanContext().traceId);
    expect(handle?.parentSpanContext?.spanId).toBe(request?.spanContext().spanId);
    expect(handle?.resource.attributes['service.name']).toBe('svc.b');
    await Promise.all([a.shutdown(), b.shutdown()]);
  });
});
