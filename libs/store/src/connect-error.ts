import { StoreError } from './errors.js';
import type { DatabaseTarget } from './url.js';

/** One phrase saying why a connection failed, from a pg, PGlite or socket error. */
export function connectFailureReason(error: unknown): string {
  const err = firstCause(error);
  const code = typeof err.code === 'string' ? err.code : undefined;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED): is PostgreSQL running there?';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name does not resolve (${code})`;
    case 'ETIMEDOUT':
      return 'connection timed out (ETIMEDOUT)';
    case 'ECONNRESET':
      return 'connection reset by the server (ECONNRESET)';
    case '28P01':
    case '28000':
      return `authentication failed (${code}): ${err.message}`;
    case '3D000':
      return `database does not exist (3D000): ${err.message}`;
    case '57P03':
      return `the server is starting up or shutting down (57P03)`;
    default:
      if (/timeout/i.test(err.message ?? '')) return `connection timed out: ${err.message}`;
      return err.message || String(error);
  }
}

export function connectError(target: DatabaseTarget, error: unknown): StoreError {
  const reason = connectFailureReason(error);
  const backend = target.backend;
  switch (backend) {
    case 'postgres':
      return new StoreError('E_DB_CONNECT', `cannot connect to PostgreSQL at ${target.host}:${target.port}/${target.database}: ${reason}`, {
        host: target.host,
        port: target.port,
        database: target.database,
        url: target.display,
        reason,
      }, { cause: error });
    case 'pglite':
      return new StoreError('E_DB_CONNECT', `cannot open embedded PGlite database ${target.display}: ${reason}`, {
        url: target.display,
        reason,
      }, { cause: error });
    default: {
      const unreachable: never = backend;
      throw new Error(`unknown backend ${String(unreachable)}`);
    }
  }
}

interface ErrorLike {
  code?: unknown;
  message?: string;
}

// Node reports a refused connection to a host with several addresses (localhost:
// ::1 and 127.0.0.1) as an AggregateError with an empty message.
function firstCause(error: unknown): ErrorLike {
  if (error instanceof AggregateError && error.errors.length > 0 && (error as ErrorLike).code === undefined) {
    return firstCause(error.errors[0]);
  }
  if (typeof error === 'object' && error !== null) return error as ErrorLike;
  return { message: String(error) };
}
