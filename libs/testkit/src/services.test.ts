import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { isBulwarkError } from '@bulwark/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseAddress, databaseUrl, DEFAULT_DATABASE_URL, natsAddress, natsUrl } from './service-urls.js';
import { ensureServices } from './services.js';

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('service URLs', () => {
  it('read NATS_URL and DATABASE_URL, else the local defaults', () => {
    expect(natsUrl({})).toBe('nats://127.0.0.1:4222');
    expect(databaseUrl({ DATABASE_URL: '' })).toBe('postgres://postgres@127.0.0.1:5432/test');
    expect(natsUrl({ NATS_URL: 'nats://n:1' })).toBe('nats://n:1');
    expect(databaseUrl({ DATABASE_URL: 'postgres://d/x' })).toBe('postgres://d/x');
  });

  it('find host and port, with each protocol default port', () => {
    expect(natsAddress('nats://a:1,nats://b:2')).toEqual({ host: 'a', port: 1 });
    expect(natsAddress('localhost')).toEqual({ host: 'localhost', port: 4222 });
    expect(databaseAddress('postgres://u:p@[::1]/db')).toEqual({ host: '::1', port: 5432 });
    expect(databaseAddress('pglite:memory')).toBeUndefined();
  });
});

describe('ensureServices', () => {
  let fakeNats: Server;
  let fakeNatsPort: number;

  beforeAll(async () => {
    // A listening socket is all the probe asks for; the real NATS may be down here.
    fakeNats = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => fakeNats.listen(0, '127.0.0.1', resolve));
    fakeNatsPort = (fakeNats.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => fakeNats.close(() => resolve()));
  });

  it('returns the configured URLs when both services answer, starting nothing', async () => {
    const env = { NATS_URL: `nats://127.0.0.1:${fakeNatsPort}`, DATABASE_URL: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL };
    const services = await ensureServices({ env });
    expect(services).toMatchObject({ natsUrl: env.NATS_URL, databaseUrl: env.DATABASE_URL, started: [] });
    await services.stop();
  });

  it('accepts an embedded pglite: database without probing it', async () => {
    const services = await ensureServices({ env: { NATS_URL: `nats://127.0.0.1:${fakeNatsPort}`, DATABASE_URL: 'pglite:memory' } });
    expect(services.databaseUrl).toBe('pglite:memory');
  });

  it('names the unreachable service, its address and how to start it', async () => {
    const port = await unusedPort();
    const attempt = ensureServices({ env: { NATS_URL: `nats://127.0.0.1:${port}`, DATABASE_URL: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL } });
    await expect(attempt).rejects.toThrow(
      `nats is unreachable at 127.0.0.1:${port} (ECONNREFUSED): start one with \`nats-server -js\` or set NATS_URL; containers are only started when NATS_URL and DATABASE_URL are both unset`,
    );
    await expect(attempt).rejects.toMatchObject({ code: 'E_TEST_SERVICES', context: { unreachable: [`nats@127.0.0.1:${port}`] } });
  });

  it('names both services when neither answers', async () => {
    const natsPort = await unusedPort();
    const pgPort = await unusedPort();
    const error = await ensureServices({
      env: { NATS_URL: `nats://127.0.0.1:${natsPort}`, DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/test` },
    }).catch((e: unknown) => e);
    expect(isBulwarkError(error)).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`^nats is unreachable at 127\\.0\\.0\\.1:${natsPort} .*; postgres is unreachable at 127\\.0\\.0\\.1:${pgPort} \\(ECONNREFUSED\\): start PostgreSQL`));
  });

  it('says no Docker engine answers when the variables are unset and the defaults are down', async () => {
    const natsPort = await unusedPort();
    const attempt = ensureServices({
      env: { DOCKER_HOST: 'unix:///nonexistent/bulwark-docker.sock' },
      defaults: { natsUrl: `nats://127.0.0.1:${natsPort}` },
    });
    await expect(attempt).rejects.toThrow(
      `nats is unreachable at 127.0.0.1:${natsPort} (ECONNREFUSED): start one with \`nats-server -js\` or set NATS_URL; no Docker engine answers at /nonexistent/bulwark-docker.sock to start it in a container`,
    );
  });

  it('starts nothing when the variables are unset and the local defaults answer', async () => {
    const defaults = { natsUrl: `nats://127.0.0.1:${fakeNatsPort}`, databaseUrl: databaseUrl() };
    const services = await ensureServices({ env: {}, defaults });
    expect(services).toMatchObject({ ...defaults, started: [] });
  });
});
