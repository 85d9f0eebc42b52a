import { context } from '@opentelemetry/api';
import { extractTraceContext, injectTraceContext, type HeaderCarrier } from '@bulwark/telemetry';

/** Writes the active trace context (W3C `traceparent`/`tracestate`) into outgoing headers. */
export function injectTrace(carrier: HeaderCarrier): void {
  injectTraceContext(carrier);
}

/** Runs `fn` with the trace context of incoming headers as its active context. */
export function runInExtractedTrace<T>(carrier: HeaderCarrier, fn: () => T): T {
  return context.with(extractTraceContext(carrier), fn);
}
