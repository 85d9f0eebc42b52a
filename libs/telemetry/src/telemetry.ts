import { context, metrics, trace, type Meter, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, type MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface TelemetryOptions {
  readonly service: string;
  readonly version?: string;
  /** Distinguishes instances of one service in a queue group. */
  readonly instanceId?: string;
  /** Where finished spans go (batched). Without one, spans are still created and propagated. */
  readonly spanExporter?: SpanExporter;
  /** What collects metrics (e.g. a PeriodicExportingMetricReader). Without one, instruments record nothing. */
  readonly metricReader?: MetricReader;
  /** More readers (e.g. Prometheus and OTLP side by side). */
  readonly metricReaders?: readonly MetricReader[];
  /**
   * Also register the providers as OpenTelemetry's global ones, so that libraries that take
   * their tracer and meter from the API (the bus's command spans and counters) report into
   * this service's exporters. One service per process.
   */
  readonly global?: boolean;
}

export interface Telemetry {
  readonly tracer: Tracer;
  readonly meter: Meter;
  /** Exports every finished span and collected metric now. */
  flush(): Promise<void>;
  /** Flushes, then stops both providers; call once on service shutdown. */
  shutdown(): Promise<void>;
}

let contextManagerInstalled = false;

/**
 * `startActiveSpan` and the logger's trace ids need the active context to follow async
 * calls; the context manager is process-wide, so it is installed once.
 */
function installContextManager(): void {
  if (contextManagerInstalled) return;
  const manager = new AsyncLocalStorageContextManager().enable();
  // Another SDK in the process may have installed one already; that one keeps working.
  if (!context.setGlobalContextManager(manager)) manager.disable();
  contextManagerInstalled = true;
}

/** A tracer and a meter for one service, under one OpenTelemetry resource. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  installContextManager();
  const resource = resourceFromAttributes({
    'service.name': options.service,
    ...(options.version === undefined ? {} : { 'service.version': options.version }),
    ...(options.instanceId === undefined ? {} : { 'service.instance.id': options.instanceId }),
  });
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: options.spanExporter === undefined ? [] : [new BatchSpanProcessor(options.spanExporter)],
  });
  const readers = [...(options.metricReader === undefined ? [] : [options.metricReader]), ...(options.metricReaders ?? [])];
  const meterProvider = new MeterProvider({ resource, readers });
  if (options.global === true) {
    trace.setGlobalTracerProvider(tracerProvider);
    metrics.setGlobalMeterProvider(meterProvider);
  }
  return {
    tracer: tracerProvider.getTracer(options.service, options.version),
    meter: meterProvider.getMeter(options.service, options.version),
    async flush() {
      await Promise.all([tracerProvider.forceFlush(), meterProvider.forceFlush()]);
    },
    async shutdown() {
      await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}
