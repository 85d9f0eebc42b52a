// The reply to a service's `keys.rotate` is lost after the key manager committed the rotation
// (issue 12): `bulwark init`, nats-server in operator mode, PostgreSQL and the real ledger, the key
// manager in this process with a rotation interval of ROTATE_MS, and the real `bulwark-policy` main
// as a child process that reaches NATS through a relay (nats-reply-dropper.ts) which swallows the
// one reply to its first `keys.rotate`. The key manager commits version 2 and publishes its entry;
// the service never hears. It had staged the new keys in its key store's pending slot before the
// call, so when the call times out it settles with the key manager (the directory serves version 2
// with exactly the staged keys): adopts them, asks `keys.renew` for its new NATS user's JWT, stores
// the version and switches, with no restart, while an agent keeps asking it for decisions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIdentity, pendingRotationSlot } from '@bulwark/keystore';
import { startReplyDropper, type ReplyDropper } from './nats-reply-dropper.js';
import { rotatedTo, SERVICE, usePolicyWorld, type PolicyMain } from './service-world.js';

const ROTATE_MS = 5000;
const world = usePolicyWorld({ schema: 'rotation_lost_reply', keyManager: { rotationIntervalMs: ROTATE_MS } });
let relay: ReplyDropper | undefined;
let crashRelay: ReplyDropper | undefined;
let policy: PolicyMain | undefined;

beforeAll(async () => {
  // The service's one lost reply: the first `keys.rotate` it sends to a key manager instance.
  relay = await startReplyDropper(world().b.url, /^bulwark\.direct\.[^.]+\.keys\.rotate$/);
});

afterAll(async () => {
  if (policy !== undefined) await world().stop(policy);
  await relay?.close();
  await crashRelay?.close();
});

describe("a service whose keys.rotate reply is lost after the key manager committed", () => {
  it('settles with the key manager and adopts the committed version: it keeps answering under it, never restarted', async () => {
    const { admin, agent, directory, startPolicy, serving, decide, serviceStore } = world();
    policy = await startPolicy({ NATS_URL: relay!.url, SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    const { proc, output } = policy;
    const pid = proc.pid;
    await serving(policy);
    await admin.policyAdmin.register('policy vault {\n    allow: read(vault)\n}\n', 'vault.policy');

    // Decisions every 100 ms until the service rotated past the lost reply (version 2) and once more;
    // every fifth on a fresh session: a handshake is made to the key the directory serves, which
    // the service opens only if it holds it.
    let answered = 0;
    let n = 0;
    const lost: string[] = [];
    const until = Date.now() + 45_000;
    while (rotatedTo(output()).length < 2 && Date.now() < until && proc.exitCode === null) {
      if (++n % 5 === 0) agent.reset();
      const { failure } = await decide();
      if (failure === undefined) answered++;
      else lost.push(failure);
      await new Promise((r) => setTimeout(r, 100));
    }
    const versions = rotatedTo(output());
    process.stdout.write(`${JSON.stringify({ figure: 'rotation_lost_reply', dropped: relay!.dropped.length, versions, answered, lost: lost.length, why: lost.slice(0, 5) })}\n`);
    // The reply was lost, and the key manager had committed version 2 all the same.
    expect(relay!.dropped).toEqual([expect.stringMatching(/\.keys\.rotate$/)]);
    expect((await admin.keys.get(SERVICE)).versions.length).toBeGreaterThanOrEqual(2);
    // The service settled: it adopted version 2, with no restart, and went on rotating.
    expect(output()).toMatch(/key rotation to version 2 settled with the key manager: adopt/);
    expect(versions.slice(0, 2), output()).toEqual([2, 3]);
    expect(proc.exitCode).toBeNull();
    expect(proc.pid).toBe(pid);
    expect(lost, output()).toEqual([]);
    // It answers under the version the key manager holds active; what a restart loads is that one.
    const active = (await admin.keys.get(SERVICE)).activeVersion!;
    await expect.poll(() => directory.lookup(SERVICE)?.keyVersion, { timeout: 5000 }).toBe(active);
    expect((await decide()).failure).toBeUndefined();
    const store = await serviceStore();
    await expect.poll(async () => (await loadIdentity(store, SERVICE)).version, { timeout: 10_000 }).toBeGreaterThanOrEqual(versions.at(-1)!);
    // Nothing left staged once stored (a rotation in progress may have staged the next one).
    const staged = await pendingRotationSlot(store, SERVICE).load();
    expect(staged === undefined || staged.version > versions.at(-1)!).toBe(true);
  }, 90_000);

  it('settles at the next start a rotation the key manager committed when the process died before it stored the keys', async () => {
    const { b, admin, agent, startPolicy, serving, decide, stop, serviceStore } = world();
    if (policy !== undefined) await stop(policy);
    const store = await serviceStore();
    const before = (await loadIdentity(store, SERVICE)).version;
    // Its next rotation's reply is lost, and the process is killed while it waits for it.
    crashRelay = await startReplyDropper(b.url, /^bulwark\.direct\.[^.]+\.keys\.rotate$/);
    policy = await startPolicy({ NATS_URL: crashRelay.url, SYMBIONT_KEY_ROTATION_INTERVAL_MS: String(ROTATE_MS) });
    await expect.poll(() => crashRelay!.dropped.length, { timeout: 30_000, interval: 20 }).toBe(1);
    await stop(policy, 'SIGKILL');
    const committed = (await admin.keys.get(SERVICE)).activeVersion!;
    expect(committed).toBe(before + 1);
    expect((await loadIdentity(store, SERVICE)).version).toBe(before);
    expect((await pendingRotationSlot(store, SERVICE).load())?.version).toBe(committed);
    // Started again (not due for 90 days: no new rotation), straight to NATS.
    policy = await startPolicy({});
    const { output } = policy;
    await serving(policy);
    await expect.poll(() => rotatedTo(output()), { timeout: 20_000 }).toEqual([committed]);
    expect(output()).toMatch(new RegExp(`key rotation to version ${committed} settled with the key manager: adopt`));
    let answered = 0;
    const lost: string[] = [];
    for (let i = 0; i < 10; i++) {
      agent.reset();
      const { failure } = await decide();
      if (failure === undefined) answered++;
      else lost.push(failure);
    }
    process.stdout.write(`${JSON.stringify({ figure: 'rotation_crash_settled_at_start', before, committed, answered, lost: lost.length, why: lost.slice(0, 3) })}\n`);
    expect(lost, output()).toEqual([]);
    await expect.poll(async () => (await loadIdentity(store, SERVICE)).version, { timeout: 5000 }).toBe(committed);
    expect(await pendingRotationSlot(store, SERVICE).load()).toBeUndefined();
  }, 90_000);
});
