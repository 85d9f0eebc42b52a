// The bus half of revocation against a real nats-server 2.9.10 in operator mode with the
// configuration `bulwark init` writes (resolver: MEMORY): the account JWT re-signed with
// `revocations` and pushed through the system account closes the revoked user's connection
// and refuses it afterwards. Measured over 20 runs; p50/p99 printed.
import { randomUUID } from 'node:crypto';
import { connectBus } from '@bulwark/bus';
import { ensureNatsUser } from '@bulwark/nats-auth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrivateBulwark, type PrivateBulwark } from '../../../test/attack/private-bulwark.js';
import { NatsRevoker } from '../src/nats/revoker.js';

const RUNS = 20;
let pb: PrivateBulwark;
let revoker: NatsRevoker;

beforeAll(async () => {
  pb = await startPrivateBulwark();
  revoker = await NatsRevoker.open({ store: pb.store, provider: pb.provider, url: pb.url });
}, 60_000);

afterAll(async () => {
  await revoker?.close();
  await pb?.stop();
});

async function newAgentUser() {
  const id = `agent.${randomUUID()}`;
  const { credentials } = await ensureNatsUser(pb.store, pb.provider, { kind: 'principal', id }, pb.namespace);
  return { id, credentials };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

describe('NATS user revocation through the system account (resolver MEMORY)', () => {
  it(`closes the revoked user's connection within 1 s and refuses it after (${RUNS} runs, p99 printed)`, async () => {
    const revoked = new Map<string, number>();
    const latencies: number[] = [];
    // A bystander that is never revoked must stay connected through every push.
    const bystander = await newAgentUser();
    const other = await connectBus({ url: pb.url, name: bystander.id, namespace: pb.namespace, credentials: bystander.credentials, inboxPrefix: bystander.credentials.inboxPrefix });
    try {
      for (let i = 0; i < RUNS; i++) {
        const { id, credentials } = await newAgentUser();
        // No reconnect attempt (and no wait before one): closed() is the server dropping the connection.
        const bus = await connectBus({ url: pb.url, name: id, namespace: pb.namespace, credentials, inboxPrefix: credentials.inboxPrefix, maxReconnectAttempts: 0, reconnectTimeWaitMs: 1 });
        const closed = bus.closed().then(() => performance.now());
        const t0 = performance.now();
        revoked.set(credentials.publicKey, Date.now());
        await revoker.push(revoked);
        const t1 = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 2000))]);
        latencies.push(t1 - t0);
        await expect(connectBus({ url: pb.url, name: id, namespace: pb.namespace, credentials, inboxPrefix: credentials.inboxPrefix, maxReconnectAttempts: 0 })).rejects.toMatchObject({ code: 'E_BUS_AUTH' });
      }
      expect(other.isConnected()).toBe(true);
    } finally {
      await other.close();
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const p50 = quantile(sorted, 0.5);
    const p99 = quantile(sorted, 0.99);
    process.stdout.write(`${JSON.stringify({ bench: 'keys', figure: 'nats_revocation_to_disconnect', impl: 'bulwark', p50_ms: Number(p50.toFixed(2)), p99_ms: Number(p99.toFixed(2)), n: sorted.length })}\n`);
    expect(p99).toBeLessThan(1000);
  }, 120_000);

  it('a revocation pushed again after the list is unchanged is a no-op unless forced (a restarted server forgets it)', async () => {
    const { credentials } = await newAgentUser();
    const list = new Map([[credentials.publicKey, Date.now()]]);
    expect(await revoker.push(list)).toBe(true);
    expect(await revoker.push(list)).toBe(false);
    expect(await revoker.push(list, { force: true })).toBe(true);
  });
});
