import { context, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectTrace, runInExtractedTrace } from './trace.js';

function mapCarrier(entries: Record<string, string> = {}) {
  const map = new Map(Object.entries(entries));
  return { map, get: (key: string) => map.get(key), set: (key: string, value: string) => void map.set(key, value) };
}

const spanContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED };

describe('trace context on requests', () => {
  const manager = new AsyncLocalStorageContextManager();
  beforeAll(() => void context.setGlobalContextManager(manager.enable()));
  afterAll(() => {
    manager.disable();
    context.disable();
  });

  it('writes no headers without an active span, and the span context with one', () => {
    const none = mapCarrier();
    injectTrace(none);
    expect(none.map.size).toBe(0);
    const traced = mapCarrier();
    context.with(trace.setSpanContext(ROOT_CONTEXT, spanContext), () => injectTrace(traced));
    expect(traced.map.get('traceparent')).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  });

  it('runs the handler in the extracted context, or in the current one when none came', () => {
    const inside = runInExtractedTrace(mapCarrier({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }), () => trace.getSpanContext(context.active()));
    expect(inside).toEqual({ ...spanContext, isRemote: true });
    expect(runInExtractedTrace(mapCarrier(), () => trace.getSpanContext(context.active()))).toBeUndefined();
  });
});
