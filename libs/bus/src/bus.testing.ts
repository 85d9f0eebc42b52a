// Helpers for this package's tests against the real NATS server (NATS_URL).
import { connectBus, type Bus, natsOf } from './connect.js';
import { uniqueNamespace, type Namespace } from './namespace.js';
import { removeNamespaceStreams } from './streams.js';

export const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';

export async function testBus(name: string, namespace: Namespace = uniqueNamespace()): Promise<Bus> {
  return connectBus({ url: NATS_URL, name, namespace });
}

/** Removes the namespace's streams and closes every bus given. */
export async function cleanUp(...buses: Bus[]): Promise<void> {
  const first = buses[0];
  if (first !== undefined && !natsOf(first).nc.isClosed()) await removeNamespaceStreams(first);
  await Promise.all(buses.map((b) => b.close()));
}

export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
