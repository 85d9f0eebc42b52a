import type { StartedTestContainer } from 'testcontainers';
import type { TestService } from './services.js';

/**
 * Starts the given services in Docker. Loaded only when no local service answers and
 * a Docker engine does, so testcontainers never loads on a host that has the services.
 * Untested on the development host, which has no Docker engine.
 */
export async function startContainers(
  services: readonly TestService[],
): Promise<{ urls: Partial<Record<TestService, string>>; stop: () => Promise<void> }> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const running: StartedTestContainer[] = [];
  const urls: Partial<Record<TestService, string>> = {};
  const stop = async (): Promise<void> => {
    await Promise.all(running.map((container) => container.stop()));
  };
  try {
    for (const service of services) {
      switch (service) {
        case 'nats': {
          const nats = await new GenericContainer('nats:2.10')
            .withCommand(['-js'])
            .withExposedPorts(4222)
            .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
            .start();
          running.push(nats);
          urls.nats = `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`;
          break;
        }
        case 'postgres': {
          const postgres = await new GenericContainer('postgres:15')
            .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' })
            .withExposedPorts(5432)
            // The entrypoint starts the server twice (init, then for real).
            .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
            .start();
          running.push(postgres);
          urls.postgres = `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/test`;
          break;
        }
        default: {
          const unknown: never = service;
          throw new Error(`unknown test service ${String(unknown)}`);
        }
      }
    }
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { urls, stop };
}
