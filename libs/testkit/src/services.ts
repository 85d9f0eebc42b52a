import { BulwarkError } from '@bulwark/errors';
import { describeEndpoint, dockerAnswers, dockerEndpoint, probeTcp } from './probe.js';
import { databaseAddress, databaseUrl, natsAddress, natsUrl } from './service-urls.js';
import type { HostPort } from './service-urls.js';

export type TestService = 'nats' | 'postgres';

export interface TestServices {
  readonly natsUrl: string;
  readonly databaseUrl: string;
  /** Services this call started in containers (empty when the local ones answered). */
  readonly started: readonly TestService[];
  /** Stops the containers this call started; a no-op otherwise. */
  stop(): Promise<void>;
}

export interface EnsureServicesOptions {
  /** Where NATS_URL, DATABASE_URL and DOCKER_HOST are read (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** How long each TCP probe waits, in ms (default 500). */
  readonly probeTimeoutMs?: number;
  /** The addresses used when the variables are unset (default: the local services); testkit's own tests move them. */
  readonly defaults?: { readonly natsUrl?: string; readonly databaseUrl?: string };
}

const HOW_TO_START: Record<TestService, string> = {
  nats: 'start one with `nats-server -js` or set NATS_URL',
  postgres: 'start PostgreSQL (trust auth, database "test") or set DATABASE_URL',
};

/**
 * Makes sure NATS and PostgreSQL answer before a suite runs. The configured (or local
 * default) addresses are probed; only when NATS_URL and DATABASE_URL are both unset,
 * a default service is down and a Docker engine answers are `nats:2.10 -js` and
 * `postgres:15` started with testcontainers. Otherwise an unreachable service is an
 * error naming it, its address and how to start it.
 */
export async function ensureServices(options: EnsureServicesOptions = {}): Promise<TestServices> {
  const env = options.env ?? process.env;
  const timeoutMs = options.probeTimeoutMs ?? 500;
  const urls: Record<TestService, string> = {
    nats: natsUrl({ NATS_URL: options.defaults?.natsUrl, ...definedOnly(env, 'NATS_URL') }),
    postgres: databaseUrl({ DATABASE_URL: options.defaults?.databaseUrl, ...definedOnly(env, 'DATABASE_URL') }),
  };
  const addresses: Record<TestService, HostPort | undefined> = { nats: natsAddress(urls.nats), postgres: databaseAddress(urls.postgres) };

  const down: { service: TestService; address: HostPort; reason: string }[] = [];
  for (const service of ['nats', 'postgres'] as const) {
    const address = addresses[service];
    if (address === undefined) continue;
    const reason = await probeTcp(address.host, address.port, timeoutMs);
    if (reason !== undefined) down.push({ service, address, reason });
  }
  if (down.length === 0) return { natsUrl: urls.nats, databaseUrl: urls.postgres, started: [], stop: async () => undefined };

  const configured = Boolean(env.NATS_URL?.trim() || env.DATABASE_URL?.trim());
  const docker = dockerEndpoint(env);
  const dockerUp = !configured && (await dockerAnswers(env, timeoutMs * 2));
  if (!dockerUp) {
    const why = configured
      ? 'containers are only started when NATS_URL and DATABASE_URL are both unset'
      : `no Docker engine answers at ${describeEndpoint(docker)} to start it in a container`;
    const parts = down.map(({ service, address, reason }) => `${service} is unreachable at ${address.host}:${address.port} (${reason}): ${HOW_TO_START[service]}`);
    throw new BulwarkError('E_TEST_SERVICES', `${parts.join('; ')}; ${why}`, {
      unreachable: down.map(({ service, address }) => `${service}@${address.host}:${address.port}`),
    });
  }
  const { startContainers } = await import('./containers.js');
  const started = await startContainers(down.map((d) => d.service));
  return {
    natsUrl: started.urls.nats ?? urls.nats,
    databaseUrl: started.urls.postgres ?? urls.postgres,
    started: down.map((d) => d.service),
    stop: started.stop,
  };
}

function definedOnly(env: NodeJS.ProcessEnv, name: string): NodeJS.ProcessEnv {
  const value = env[name]?.trim();
  return value ? { [name]: value } : {};
}
