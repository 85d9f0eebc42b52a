import { describe, expect, it } from 'vitest';
import { createLogger, createTelemetry, type LogLevel } from './index.js';

function capture(level: LogLevel = 'info') {
  const lines: string[] = [];
  const logger = createLogger({ service: 'svc.test', level, destination: { write: (line: string) => void lines.push(line) } });
  return { logger, lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('writes one JSON line per record with the service, level name and time', () => {
    const { logger, records } = capture();
    logger.info({ agent_id: 'agent.1' }, 'evaluated');
    const [record] = records();
    expect(record).toMatchObject({ service: 'svc.test', level: 'info', agent_id: 'agent.1', msg: 'evaluated', pid: process.pid });
    expect(typeof record?.time).toBe('string');
    expect(Number.isNaN(Date.parse(String(record?.time)))).toBe(false);
  });

  it('drops records below its level', () => {
    const { logger, lines } = capture('warn');
    logger.info('quiet');
    logger.debug('quieter');
    logger.warn('loud');
    expect(lines).toHaveLength(1);
  });

  it('never writes a secret logged under a secret key name, up to two levels deep', () => {
    const { logger, lines, records } = capture('trace');
    const secrets = ['pw-top-1', 'tok-1', 'sk-nested-1', 'pk-nested-2', 'kek-3', 'bearer-4', 'secret-5', 'ctx-6'];
    logger.info({ password: 'pw-top-1', token: 'tok-1' }, 'top level');
    logger.info({ key: { id: 'k1', secretKey: 'sk-nested-1', privateKey: 'pk-nested-2' }, wrap: { kek: 'kek-3' } }, 'one level');
    logger.info({ req: { headers: { authorization: 'bearer-4', host: 'h' } }, a: { b: { secret: 'secret-5' } } }, 'two levels');
    const err = Object.assign(new Error('sign failed'), { context: { secretKey: 'ctx-6', keyId: 'k9' } });
    logger.error({ err }, 'error with context');
    const output = lines.join('');
    for (const secret of secrets) expect(output).not.toContain(secret);
    const [top, one, two, withErr] = records();
    expect(top).toMatchObject({ password: '[REDACTED]', token: '[REDACTED]' });
    expect(one).toMatchObject({ key: { id: 'k1', secretKey: '[REDACTED]', privateKey: '[REDACTED]' }, wrap: { kek: '[REDACTED]' } });
    expect(two).toMatchObject({ req: { headers: { authorization: '[REDACTED]', host: 'h' } }, a: { b: { secret: '[REDACTED]' } } });
    expect(withErr).toMatchObject({ err: { message: 'sign failed', context: { secretKey: '[REDACTED]', keyId: 'k9' } } });
  });

  it('does not alter the object that was logged', () => {
    const { logger } = capture();
    const fields = { user: { password: 'hunter2' } };
    logger.info(fields, 'login');
    expect(fields.user.password).toBe('hunter2');
  });

  it('adds the active trace and span ids', async () => {
    const telemetry = createTelemetry({ service: 'svc.test' });
    const { logger, records } = capture();
    logger.info('outside');
    await telemetry.tracer.startActiveSpan('work', async (span) => {
      await Promise.resolve();
      logger.info('inside');
      span.end();
      const [outside, inside] = records();
      expect(outside?.trace_id).toBeUndefined();
      expect(inside).toMatchObject({ trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
    });
    await telemetry.shutdown();
  });
});
