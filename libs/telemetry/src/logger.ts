import { hostname } from 'node:os';
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type LevelWithSilent, type Logger } from 'pino';

export type { Logger } from 'pino';
export type LogLevel = LevelWithSilent;

/** Key names whose values never reach a log line, wherever they sit in the first three levels. */
export const redactedKeys: readonly string[] = [
  'password',
  'passphrase',
  'secret',
  'secretKey',
  'privateKey',
  'seed',
  'token',
  'accessToken',
  'refreshToken',
  'apiKey',
  'kek',
  'dek',
  'authorization',
  'Authorization',
  'cookie',
];

// fast-redact paths: `k` at the top, `*.k` one level down (`user.password`), `*.*.k` two
// levels down (`req.headers.authorization`, `err.context.secretKey`).
const redactPaths = redactedKeys.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

export interface LoggerOptions {
  readonly service: string;
  readonly level?: LogLevel;
  /** Where lines go; stdout when absent. */
  readonly destination?: DestinationStream;
}

/** The trace and span of the active context, so a log line can be found from its trace. */
function traceFields(): Record<string, string> {
  const spanContext = trace.getSpanContext(context.active());
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/**
 * A pino JSON logger for one service: level names, ISO timestamps, the active trace and
 * span ids on every line, and secrets redacted by key name before serialisation.
 */
export function createLogger({ service, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { service, pid: process.pid, hostname: hostname() },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
      redact: { paths: redactPaths, censor: '[REDACTED]' },
    },
    destination,
  );
}
