// Reconnect and JetStream checks against a private nats-server this test starts (and
// stops) on a free loopback port, so the shared server is never disturbed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBus, type Bus } from './connect.js';
import { BusConnectError } from './errors.js';
import { uniqueNamespace } from './namespace.js';
import { DEFAULT_STREAMS, ensureStream } from './streams.js';
import { eventually } from './bus.testing.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

describe('connection lifecycle on a private server', () => {
  const started: ChildProcess[] = [];
  const dirs: string[] = [];
  const buses: Bus[] = [];

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
    for (const p of started.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function startServer(port: number, jetstream: boolean, storeDir?: string): Promise<ChildProcess> {
    const args = ['-a', '127.0.0.1', '-p', String(port)];
    if (jetstream) args.push('-js', '-sd', storeDir ?? '');
    const proc = spawn('nats-server', args, { stdio: 'ignore' });
    started.push(proc);
    await eventually(
      () =>
        new Promise<boolean>((resolve) => {
          const s = createServer();
          s.once('error', () => resolve(true)); // port taken: the server is listening
          s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
        }),
      5000,
      `nats-server on port ${port}`,
    );
    return proc;
  }

  async function stop(proc: ChildProcess): Promise<void> {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }

  it('reconnects after the server restarts and keeps working', async () => {
    const port = await freePort();
    const store = mkdtempSync(join(tmpdir(), 'bus-js-'));
    dirs.push(store);
    const first = await startServer(port, true, store);
    const bus = await connectBus({ url: `nats://127.0.0.1:${port}`, name: 'reconnect', namespace: uniqueNamespace(), reconnectTimeWaitMs: 100 });
    buses.push(bus);
    expect(bus.isConnected()).toBe(true);

    await stop(first);
    await eventually(() => !bus.isConnected(), 5000, 'disconnect noticed');
    await startServer(port, true, store);
    await eventually(() => bus.isConnected(), 10_000, 'reconnected');
    expect(await ensureStream(bus, DEFAULT_STREAMS.events)).toBe('created');
  });

  it('names the URL when the server has no JetStream', async () => {
    const port = await freePort();
    await startServer(port, false);
    const url = `nats://127.0.0.1:${port}`;
    const err = await connectBus({ url, name: 'no-js' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusConnectError);
    expect((err as BusConnectError).code).toBe('E_BUS_JETSTREAM');
    expect((err as Error).message).toContain(url);
  });
});
