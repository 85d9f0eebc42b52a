import { createServer, type Server } from 'node:http';
import { InputError } from '@bulwark/errors';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { PeriodicExportingMetricReader, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { createTelemetry, type Telemetry } from './telemetry.js';

/** The variable that names the service's local metrics and health port (`bulwark up` sets it). */
export const METRICS_PORT_ENV = 'BULWARK_METRICS_PORT';

/** What `/health` answers: 200 when `ready`, else 503. */
export interface HealthReport {
  readonly ready: boolean;
  readonly reason: string;
}

export interface ServiceTelemetryOptions {
  /** e.g. `audit-ledger` (OpenTelemetry `service.name` becomes `bulwark-<service>`). */
  readonly service: string;
  readonly version?: string;
  readonly instanceId?: string;
  /** Default `process.env`: `OTEL_*` and `BULWARK_METRICS_PORT`. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface ServiceTelemetry extends Telemetry {
  /** `http://127.0.0.1:<port>/metrics`, when a port was given. */
  readonly metricsUrl: string | undefined;
  /** Whether traces and metrics go to an OTLP endpoint. */
  readonly otlp: boolean;
  /** What `/health` reports (until set: not ready, "starting"). */
  setHealth(check: () => Promise<HealthReport>): void;
  /** Stops the HTTP server, flushes and stops the providers. */
  close(): Promise<void>;
}

function otlpWanted(env: NodeJS.ProcessEnv, signal: 'TRACES' | 'METRICS'): boolean {
  if (env['OTEL_SDK_DISABLED'] === 'true') return false;
  const exporter = env[`OTEL_${signal}_EXPORTER`];
  if (exporter !== undefined && exporter !== '' && exporter !== 'otlp') return false;
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]);
}

function metricsPort(env: NodeJS.ProcessEnv): number | undefined {
  const text = env[METRICS_PORT_ENV];
  if (text === undefined || text === '') return undefined;
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) throw new InputError('E_CONFIG', `${METRICS_PORT_ENV}=${JSON.stringify(text)} is not a port (1-65535)`, {});
  return port;
}

async function listen(server: Server, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new InputError('E_CONFIG', `${METRICS_PORT_ENV}=${port}: port ${port} on 127.0.0.1 is already in use`, { port }) : error),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

/**
 * A service's telemetry as an operator plugs it in (DESIGN §9):
 * - OTLP over HTTP with the official exporters when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the
 *   per-signal `..._TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`) is set; the exporters read the
 *   other `OTEL_*` variables (headers, timeouts) themselves;
 * - Prometheus text on `http://127.0.0.1:$BULWARK_METRICS_PORT/metrics`, and the service's
 *   readiness as JSON on `/health` of the same port;
 * - the providers registered globally, so the bus's spans and counters report here.
 */
export async function startServiceTelemetry(options: ServiceTelemetryOptions): Promise<ServiceTelemetry> {
  const env = options.env ?? process.env;
  const port = metricsPort(env);
  const prometheus = port === undefined ? undefined : new PrometheusExporter({ preventServerStart: true });
  // The exporters pin their own copy of sdk-metrics (same minor): structurally one MetricReader.
  const readers: MetricReader[] = prometheus === undefined ? [] : [prometheus as unknown as MetricReader];
  const otlpMetrics = otlpWanted(env, 'METRICS');
  if (otlpMetrics) {
    const interval = Number(env['OTEL_METRIC_EXPORT_INTERVAL'] ?? 60_000);
    readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() as unknown as PushMetricExporter, exportIntervalMillis: Number.isFinite(interval) && interval > 0 ? interval : 60_000 }));
  }
  const otlpTraces = otlpWanted(env, 'TRACES');
  const telemetry = createTelemetry({
    service: `bulwark-${options.service}`,
    ...(options.version === undefined ? {} : { version: options.version }),
    ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }),
    ...(otlpTraces ? { spanExporter: new OTLPTraceExporter() } : {}),
    metricReaders: readers,
    global: true,
  });
  let health: () => Promise<HealthReport> = async () => ({ ready: false, reason: 'starting' });
  let server: Server | undefined;
  if (port !== undefined && prometheus !== undefined) {
    server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET') {
        response.writeHead(405).end();
      } else if (path === '/metrics') {
        prometheus.getMetricsRequestHandler(request, response);
      } else if (path === '/health') {
        health().then(
          (report) => response.writeHead(report.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(report)),
          (error: unknown) =>
            response.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: false, reason: error instanceof Error ? error.message : String(error) })),
        );
      } else {
        response.writeHead(404).end();
      }
    });
    try {
      await listen(server, port);
    } catch (error) {
      await telemetry.shutdown().catch(() => undefined);
      throw error;
    }
  }
  return {
    ...telemetry,
    metricsUrl: port === undefined ? undefined : `http://127.0.0.1:${port}/metrics`,
    otlp: otlpTraces || otlpMetrics,
    setHealth(check) {
      health = check;
    },
    async close() {
      if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
      await telemetry.shutdown();
    },
  };
}
