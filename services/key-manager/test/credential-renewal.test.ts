// Short-lived NATS credentials renewed at half-life (issue 12), in NATS operator mode: the key
// manager issues user JWTs that live 8 s here (24 h by default); an agent renews its own over its
// own connection with `startCredentialRenewal` and keeps calling across 2.5 lifetimes, so the
// server expires the JWT it connected with and the client reconnects with the renewed one. The
// attacks: without renewal the same agent is cut off at expiry; a renewal for another nkey or
// after a revocation is refused.
import { CommandClient, Commands } from '@bulwark/bus';
import { createKeyCalls, startCredentialRenewal } from '@bulwark/client';
import { createUser } from '@nats-io/nkeys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOperatorWorld, type EnrolledAgent, type OperatorWorld } from './operator-world.js';
import { ADMIN, provider, silentReporter } from './world.js';

// Long enough that a renewal at half-life completes on a loaded machine before the expiry.
const LIFETIME_MS = 8000;
let w: OperatorWorld;

beforeAll(async () => {
  w = await startOperatorWorld({ km: { credentialLifetimeMs: LIFETIME_MS } });
}, 90_000);
afterAll(async () => {
  await w?.close();
});

const expOf = (jwt: string): number => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp * 1000;

async function keyCallsOf(agent: EnrolledAgent) {
  const client = new CommandClient(agent.bus, { sessions: { provider, self: agent.identity, directory: await w.h.directory() }, rejections: silentReporter(agent.id) });
  return createKeyCalls(provider, async (subject, body) => JSON.parse(new TextDecoder().decode(await client.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 3000 }))) as unknown);
}

/** Calls keys.get every 100 ms for `ms`; how many succeeded and failed, and when the last success was. */
async function keepCalling(agent: EnrolledAgent, calls: Awaited<ReturnType<typeof keyCallsOf>>, ms: number) {
  let ok = 0;
  let failed = 0;
  let lastOk = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      await calls.get(agent.id);
      ok++;
      lastOk = Date.now();
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ok, failed, lastOk };
}

describe('NATS credentials renewed at half-life (operator mode)', () => {
  it('issues short-lived JWTs and renews them: the connection survives the expiry of its first JWT', async () => {
    const admin = await w.h.client(w.h.world.identity(ADMIN));
    const reader = await w.h.directory();
    const agent = await w.enrollAgent(admin, reader);
    const firstExp = expOf(agent.credentials.jwt);
    expect(firstExp - Date.now()).toBeLessThanOrEqual(LIFETIME_MS + 1000);
    const calls = await keyCallsOf(agent);
    let closed = false;
    void agent.bus.closed().then(() => (closed = true));
    const renewed: number[] = [];
    const renewal = startCredentialRenewal({ bus: agent.bus, credentials: agent.credentials, renew: (u) => calls.renew(u), onRenewed: (e) => renewed.push(e), minRetryMs: 200 });
    try {
      const run = await keepCalling(agent, calls, 2.5 * LIFETIME_MS);
      process.stdout.write(`${JSON.stringify({ figure: 'renewal_calls', ok: run.ok, failed: run.failed, renewals: renewal.renewals })}\n`);
      expect(closed).toBe(false);
      expect(renewal.renewals).toBeGreaterThanOrEqual(2);
      // Renewed at about half-life, each JWT later than the last.
      expect(renewed[0]!).toBeGreaterThan(firstExp);
      // Well past the first JWT's expiry (and the second's), the same connection still answers.
      expect(run.lastOk).toBeGreaterThan(firstExp + LIFETIME_MS);
      await expect(calls.get(agent.id)).resolves.toMatchObject({ activeVersion: 2 });
      expect(agent.bus.isConnected()).toBe(true);
    } finally {
      renewal.stop();
      await agent.bus.close();
    }
  }, 90_000);

  it('without renewal the same agent is cut off when its JWT expires (what renewal prevents)', async () => {
    const admin = await w.h.client(w.h.world.identity(ADMIN));
    const reader = await w.h.directory();
    const agent = await w.enrollAgent(admin, reader, { maxReconnectAttempts: 3 });
    const calls = await keyCallsOf(agent);
    await expect(calls.get(agent.id)).resolves.toMatchObject({ activeVersion: 2 });
    const firstExp = expOf(agent.credentials.jwt);
    const closedAt = await Promise.race([agent.bus.closed().then(() => Date.now()), new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), LIFETIME_MS + 6000))]);
    expect(closedAt).toBeGreaterThanOrEqual(firstExp - 1000);
    expect(closedAt).toBeLessThan(firstExp + 5000);
  }, 30_000);

  it("refuses to renew another nkey, and refuses a revoked agent's renewal", async () => {
    const admin = await w.h.client(w.h.world.identity(ADMIN));
    const reader = await w.h.directory();
    const agent = await w.enrollAgent(admin, reader);
    const calls = await keyCallsOf(agent);
    await expect(calls.renew(createUser().getPublicKey())).rejects.toThrow(/not its active version's/);
    const real = (JSON.parse(Buffer.from(agent.credentials.jwt.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string }).sub;
    await expect(calls.renew(real)).resolves.toMatchObject({ principal: agent.id });
    // Revoked: the key manager closes its connection; even a session on another connection gets nothing.
    await admin.call(Commands.keys.revoke, { principal: agent.id, reason: 'key_compromise' });
    const other = await w.h.client(agent.identity);
    await expect(other.call(Commands.keys.renew, { natsUser: real })).rejects.toThrow();
    await agent.bus.close().catch(() => undefined);
  }, 30_000);
});
