export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** The NATS server tests use: `NATS_URL`, or the local default. */
export function natsUrl(env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(env.NATS_URL) ?? DEFAULT_NATS_URL;
}

/** The PostgreSQL database tests use: `DATABASE_URL`, or the local default. */
export function databaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(env.DATABASE_URL) ?? DEFAULT_DATABASE_URL;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Host and port of a `nats://` URL (the first of a comma-separated list), default port 4222. */
export function natsAddress(url: string): HostPort {
  const first = url.split(',')[0]?.trim() ?? '';
  return hostPort(first.includes('://') ? first : `nats://${first}`, 4222);
}

/** Host and port of a `postgres://` URL, default port 5432; undefined for an embedded `pglite:` URL. */
export function databaseAddress(url: string): HostPort | undefined {
  if (url.startsWith('pglite:')) return undefined;
  return hostPort(url, 5432);
}

function hostPort(url: string, defaultPort: number): HostPort {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  return { host, port: parsed.port === '' ? defaultPort : Number(parsed.port) };
}
