export { createLogger, redactedKeys, type Logger, type LoggerOptions, type LogLevel } from './logger.js';
export { createTelemetry, type Telemetry, type TelemetryOptions } from './telemetry.js';
export { injectTraceContext, extractTraceContext, type HeaderCarrier } from './propagation.js';
export { METRICS_PORT_ENV, startServiceTelemetry, type HealthReport, type ServiceTelemetry, type ServiceTelemetryOptions } from './service-telemetry.js';
