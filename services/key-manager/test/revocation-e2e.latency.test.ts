// Revocation end to end in NATS operator mode (the configuration `bulwark init` writes,
// resolver MEMORY): the key manager runs under its own NATS user (svc.key-manager's permission
// table) with custody of the account and operator keys; agents enrol with a join bundle (its
// bootstrap user may only call keys.enroll) and then connect as themselves. After `keys.revoke`,
// measured over 20 runs: the directory entry is refused by a reader (every service's KvDirectory)
// and the agent's NATS connection is closed by the server, each within 1 s (p50/p99 printed).
import { randomUUID } from 'node:crypto';
import { Commands, connectBus, type Bus } from '@bulwark/bus';
import { enrollWithJoinBundle, parseJoinBundle } from '@bulwark/client';
import { generateKey } from '@bulwark/keystore';
import { encodeNkeySeed, inboxPrefixFor, issueUserJwt, nkeyPair, permissionsFor } from '@bulwark/nats-auth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrivateBulwark, type PrivateBulwark } from '../../../test/attack/private-bulwark.js';
import { NatsRevoker } from '../src/index.js';
import { ADMIN, harness, KM, provider, type Harness } from './world.js';

const RUNS = 20;
let pb: PrivateBulwark;
let h: Harness;
let revoker: NatsRevoker;

async function rootSeed(kind: 'nats-account' | 'nats-operator' | 'nats-system-account'): Promise<Uint8Array> {
  return (await pb.store.get({ principal: 'root', kind, version: 1 })).secretKey;
}

/** A user of the account signed with the account key: the key manager's with its own permission table; the test's own (harness, ledger stand-in, readers) with every subject. */
async function userFor(name: string): Promise<{ credentials: { jwt: string; seed: Uint8Array }; inboxPrefix?: string }> {
  const account = nkeyPair('nats-account', await rootSeed('nats-account'));
  const raw = generateKey(provider, 'nats-user');
  const user = nkeyPair('nats-user', raw);
  const permissions = name === 'key-manager' ? permissionsFor({ kind: 'principal', id: KM }, pb.namespace) : { publish: ['>'], subscribe: ['>'], respond: true };
  const jwt = await issueUserJwt(name === 'key-manager' ? KM : `test-${name}`, user, account, permissions, Date.now() + 3_600_000);
  const seed = encodeNkeySeed('nats-user', raw);
  account.clear();
  user.clear();
  return name === 'key-manager' ? { credentials: { jwt, seed }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id: KM }) } : { credentials: { jwt, seed } };
}

beforeAll(async () => {
  pb = await startPrivateBulwark();
  h = await harness({
    ns: pb.namespace,
    url: pb.url,
    credentialsFor: (name) => userFor(name),
    prepareStore: async (store) => {
      for (const kind of ['nats-account', 'nats-operator', 'nats-system-account'] as const) await store.put({ principal: 'root', kind, version: 1 }, await rootSeed(kind));
    },
  });
  revoker = await NatsRevoker.open({ store: h.store, provider, url: pb.url });
  await h.start({ revoker });
}, 90_000);

afterAll(async () => {
  await h?.close();
  await revoker?.close();
  await pb?.stop();
});

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  while (!check()) {
    if (performance.now() - t0 > timeoutMs) return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('revocation end to end (operator mode)', () => {
  it(`refuses the revoked agent's entry and closes its NATS connection within 1 s (${RUNS} runs)`, async () => {
    const admin = await h.client(h.world.identity(ADMIN));
    const reader = await h.directory();
    const toRefusal: number[] = [];
    const toDisconnect: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const agentId = `agent.${randomUUID()}`;
      const invitation = (await admin.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })) as { join: string };
      const bundle = parseJoinBundle(invitation.join);
      expect(bundle.natsJwt).not.toBeNull();
      const boot = await connectBus({ url: pb.url, name: `${agentId}#boot`, namespace: pb.namespace, credentials: { jwt: bundle.natsJwt!, seed: bundle.natsSeed! }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id: agentId }) });
      const raw = generateKey(provider, 'nats-user');
      const pair = nkeyPair('nats-user', raw);
      let agentBus: Bus;
      try {
        const { certified } = await enrollWithJoinBundle({ bus: boot, provider, directory: reader, bundle, natsUser: pair.getPublicKey() });
        expect(certified.natsJwt).not.toBeNull();
        agentBus = await connectBus({ url: pb.url, name: agentId, namespace: pb.namespace, credentials: { jwt: certified.natsJwt!, seed: encodeNkeySeed('nats-user', raw) }, inboxPrefix: inboxPrefixFor({ kind: 'principal', id: agentId }), maxReconnectAttempts: 0, reconnectTimeWaitMs: 1 });
      } finally {
        pair.clear();
        await boot.close();
      }
      await until(() => reader.lookup(agentId)?.keyVersion === 2, 2000);
      expect(reader.lookup(agentId)?.keyVersion).toBe(2);
      const closed = agentBus.closed().then(() => performance.now());
      const t0 = performance.now();
      await admin.call(Commands.keys.revoke, { principal: agentId, reason: 'key_compromise' });
      await until(() => reader.lookup(agentId) === undefined, 2000);
      toRefusal.push(performance.now() - t0);
      toDisconnect.push((await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 2000))])) - t0);
      // Its credentials are refused from then on.
      await expect(connectBus({ url: pb.url, name: agentId, namespace: pb.namespace, credentials: { jwt: 'x', seed: new Uint8Array(0) }, maxReconnectAttempts: 0 })).rejects.toThrow();
    }
    const line = (figure: string, xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      process.stdout.write(`${JSON.stringify({ bench: 'keys', figure, impl: 'bulwark', p50_ms: Number(quantile(s, 0.5).toFixed(2)), p99_ms: Number(quantile(s, 0.99).toFixed(2)), n: s.length })}\n`);
      return quantile(s, 0.99);
    };
    expect(line('revoke_to_directory_refusal', toRefusal)).toBeLessThan(1000);
    expect(line('revoke_to_nats_disconnect', toDisconnect)).toBeLessThan(1000);
  }, 180_000);
});
