import { context, trace } from '@opentelemetry/api';
import { extractTraceContext, injectTraceContext, type HeaderCarrier } from '@bulwark/telemetry';

/**
 * Writes the active trace context (W3C `traceparent`/`tracestate`) into outgoing headers,
 * when there is one: without an active span there is nothing to continue, and the
 * propagator's work would be spent on every request for nothing.
 */
export function injectTrace(carrier: HeaderCarrier): void {
  if (!hasActiveTrace()) return;
  injectTraceContext(carrier);
}

/** Whether a span is active: only then is there a trace context to send. */
export function hasActiveTrace(): boolean {
  return trace.getSpan(context.active()) !== undefined;
}

/** Runs `fn` with the trace context of incoming headers as its active context (as is, when they carry none). */
export function runInExtractedTrace<T>(carrier: HeaderCarrier | undefined, fn: () => T): T {
  if (carrier === undefined || carrier.get('traceparent') === undefined) return fn();
  return context.with(extractTraceContext(carrier), fn);
}
