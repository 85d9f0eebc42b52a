import { metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * What a command server reports through OpenTelemetry's global API (a service's
 * `startServiceTelemetry` registers the providers; without them every call here is a no-op):
 * a SERVER span per request, child of the caller's span when a `traceparent` arrived, the
 * handler's latency by subject and outcome. (Envelope rejections are counted by the
 * RejectionReporter every refused frame goes through: `bulwark.bus.rejected_frames`.)
 */
export interface CommandObserver {
  handle<T>(subject: string, fn: () => Promise<T>): Promise<T>;
}

export function commandObserver(service: string): CommandObserver {
  // Instruments come from the meter provider registered when the server starts.
  const meter = metrics.getMeter('@bulwark/bus');
  const duration = meter.createHistogram('bulwark.rpc.server.duration', { description: 'command handling time, by subject and outcome', unit: 'ms' });
  const tracer = trace.getTracer('@bulwark/bus');
  return {
    handle(subject, fn) {
      return tracer.startActiveSpan(subject, { kind: SpanKind.SERVER, attributes: { 'bulwark.service': service, 'messaging.destination.name': subject } }, async (span) => {
        const started = performance.now();
        let outcome = 'ok';
        try {
          return await fn();
        } catch (error) {
          outcome = 'error';
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
          throw error;
        } finally {
          duration.record(performance.now() - started, { subject, outcome });
          span.end();
        }
      });
    },
  };
}
