// `bulwark.keys.request-rotation` against the real NATS with the ledger stand-in of world.ts: an
// administrator (or the principal itself) asks the holder to rotate; the request is a ledger
// fact that `keys.get` reports until a newer version is active, rebuilt after a restart; anyone
// else is refused and recorded as a security violation; on `compromise` the old version stops
// verifying once the holder rotated.
import { randomUUID } from 'node:crypto';
import { createUser } from '@nats-io/nkeys';
import { afterEach, describe, expect, it } from 'vitest';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, type BulwarkClient } from '@bulwark/client';
import { ADMIN, harness, INCIDENT, KM, provider, type Harness } from './world.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function clientOf(h: Harness, self: { id: string; x25519: { secretKey: Uint8Array; publicKey: Uint8Array } }): Promise<BulwarkClient> {
  return createBulwarkClient({ bus: await h.connect(self.id), sessions: { provider, self, directory: await h.directory() }, adminTimeoutMs: 6000 });
}

/** An agent enrolled through its join bundle (its own keys, version 2), with its client. */
async function enrolledAgent(h: Harness, admin: BulwarkClient): Promise<{ id: string; client: BulwarkClient }> {
  const id = `agent.${randomUUID()}`;
  const invitation = await admin.keys.invite(id, { ttlMs: 60_000 });
  const { identity } = await enrollWithJoinBundle({ bus: await h.connect(`boot-${id}`), provider, directory: await h.directory(), bundle: parseJoinBundle(invitation.join), natsUser: createUser().getPublicKey() });
  return { id, client: await clientOf(h, identity) };
}

/** The holder's own rotation (what its startKeyRotation does when keys.get says due). */
async function rotateOwn(agent: { id: string; client: BulwarkClient }, version: number): Promise<number> {
  const next = { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair(), natsUser: createUser().getPublicKey() };
  return (await agent.client.keys.rotate(agent.id, version, next, 'on_demand')).version;
}

async function eventually<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in time (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('keys.request-rotation', () => {
  it('an administrator asks it of any principal: a ledger fact, due in keys.get (to the holder too) until the holder rotated', async () => {
    h = await harness();
    await h.start();
    const admin = await clientOf(h, h.world.identity(ADMIN));
    const agent = await enrolledAgent(h, admin);
    const before = await agent.client.keys.get(agent.id);
    expect(before).toMatchObject({ rotationDue: false, rotationRequested: null, activeVersion: 2 });
    const view = await admin.keys.requestRotation(agent.id, 'on_demand');
    expect(view).toMatchObject({ principal: agent.id, activeVersion: 2, rotationDue: true, rotationRequested: { reason: 'on_demand', by: ADMIN } });
    const fact = h.ledger.committed.find((e) => e.eventType === 'keys.rotation_requested');
    expect(fact).toMatchObject({ producer: KM, agentId: agent.id, details: { principal: agent.id, by: ADMIN, version: 2, reason: 'on_demand' } });
    // The holder sees it in its own keys.get (what its rotation check reads).
    expect(await agent.client.keys.get(agent.id)).toMatchObject({ rotationDue: true, rotationRequested: { by: ADMIN } });
    // Asked again: nothing new is recorded.
    await admin.keys.requestRotation(agent.id, 'on_demand');
    expect(h.ledger.committed.filter((e) => e.eventType === 'keys.rotation_requested')).toHaveLength(1);
    expect(await rotateOwn(agent, 3)).toBe(3);
    const after = await eventually(() => admin.keys.get(agent.id), (v) => v.activeVersion === 3);
    expect(after).toMatchObject({ rotationDue: false, rotationRequested: null, minVerifyVersion: 2 });
    // on_demand: the old version still verifies (a routine rotation).
    expect(after.versions.find((v) => v.version === 2)).toMatchObject({ state: 'verify_only', verifies: true });
  });

  it('a principal asks it of itself', async () => {
    h = await harness();
    await h.start();
    const admin = await clientOf(h, h.world.identity(ADMIN));
    const agent = await enrolledAgent(h, admin);
    expect(await agent.client.keys.requestRotation(agent.id)).toMatchObject({ rotationDue: true, rotationRequested: { reason: 'on_demand', by: agent.id } });
  });

  it('refuses another agent (and a service that is no administrator), each recorded as a security.violation; nothing is requested', async () => {
    h = await harness();
    await h.start();
    const admin = await clientOf(h, h.world.identity(ADMIN));
    const victim = await enrolledAgent(h, admin);
    const other = await enrolledAgent(h, admin);
    await expect(other.client.keys.requestRotation(victim.id, 'compromise')).rejects.toThrow(/may request a rotation only of its own key/);
    const incident = await clientOf(h, h.world.identity(INCIDENT));
    await expect(incident.keys.requestRotation(victim.id, 'compromise')).rejects.toMatchObject({ context: { remoteCode: 'E_KEYS_FORBIDDEN' } });
    const violations = await eventually(
      () => h!.ledger.committed.filter((e) => e.eventType === 'security.violation' && e.details['kind'] === 'keys.rotation_request_refused'),
      (v) => v.length === 2,
    );
    expect(violations.map((e) => [e.producer, e.agentId, e.details['principal'], e.details['reason']])).toEqual([
      [KM, other.id, victim.id, 'compromise'],
      [KM, INCIDENT, victim.id, 'compromise'],
    ]);
    expect(h.ledger.committed.some((e) => e.eventType === 'keys.rotation_requested')).toBe(false);
    expect(await admin.keys.get(victim.id)).toMatchObject({ rotationDue: false, rotationRequested: null });
  });

  it('refuses an unknown principal (E_KEY_UNKNOWN, saying why) and a bad reason', async () => {
    h = await harness();
    await h.start();
    const admin = await clientOf(h, h.world.identity(ADMIN));
    const nobody = `agent.${randomUUID()}`;
    await expect(admin.keys.requestRotation(nobody)).rejects.toMatchObject({ context: { remoteCode: 'E_KEY_UNKNOWN' } });
    await expect(admin.keys.requestRotation(nobody)).rejects.toThrow(new RegExp(`${nobody} has no key in the key book`));
    const agent = await enrolledAgent(h, admin);
    await expect(admin.keys.requestRotation(agent.id, 'whim' as 'on_demand')).rejects.toThrow(/"reason" must be one of on_demand, compromise/);
  });

  it('on compromise: once the holder rotated, the minimum verify version passes the old version (a ledger fact), so it stops verifying', async () => {
    h = await harness();
    const km = await h.start({ compromiseRaiseDelayMs: 300 });
    const admin = await clientOf(h, h.world.identity(ADMIN));
    const agent = await enrolledAgent(h, admin);
    await admin.keys.requestRotation(agent.id, 'on_demand');
    // Escalated: a compromise request after an on_demand one is recorded.
    expect((await admin.keys.requestRotation(agent.id, 'compromise')).rotationRequested?.reason).toBe('compromise');
    // Not before the holder rotated: its only version must still work for it to rotate.
    await new Promise((r) => setTimeout(r, 500));
    expect((await admin.keys.get(agent.id)).minVerifyVersion).toBe(2);
    expect(await rotateOwn(agent, 3)).toBe(3);
    const raised = await eventually(() => admin.keys.get(agent.id), (v) => v.minVerifyVersion === 3);
    expect(raised.versions.find((v) => v.version === 2)).toMatchObject({ verifies: false });
    expect(raised.rotationRequested).toBeNull();
    const min = h.ledger.committed.filter((e) => e.eventType === 'keys.min_version_raised');
    expect(min.map((e) => [e.producer, e.details['by'], e.details['min']])).toEqual([[KM, KM, 3]]);
    // Every reader refuses version 2 now.
    const v2 = raised.versions.find((v) => v.version === 2)!;
    expect(km.projection.book.accepts(agent.id, 2, v2.ed25519, v2.x25519)).toBe(false);
  });

  it('is rebuilt from the ledger after a restart (the request still outstanding, the compromise raise still done)', async () => {
    h = await harness();
    const km = await h.start({ compromiseRaiseDelayMs: 60_000 });
    const admin = await clientOf(h, h.world.identity(ADMIN));
    const agent = await enrolledAgent(h, admin);
    const asked = await admin.keys.requestRotation(agent.id, 'compromise');
    await km.settled();
    await km.stop();
    const restarted = await h.start({ compromiseRaiseDelayMs: 300 });
    expect(restarted.projection.book.rotationRequest(agent.id)).toMatchObject({ version: 2, reason: 'compromise', by: ADMIN });
    const admin2 = await clientOf(h, h.world.identity(ADMIN));
    expect((await admin2.keys.get(agent.id)).rotationRequested).toEqual(asked.rotationRequested);
    // The holder rotates; the restarted instance raises the minimum.
    expect(await rotateOwn(agent, 3)).toBe(3);
    await eventually(() => admin2.keys.get(agent.id), (v) => v.minVerifyVersion === 3);
  });
});
