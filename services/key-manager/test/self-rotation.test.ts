// The key manager rotates its own identity while it serves (issue 12, "a service keeps running
// across its own rotation"), against the real NATS and the ledger stand-in of world.ts: its keys
// in its own store, `keys.rotated` for svc.key-manager committed like any holder's, the live
// identity switched in place, join tokens it signed earlier still good until they expire (and
// refused once the version that signed them is revoked), a restart back on the latest version.
import { randomUUID } from 'node:crypto';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, type BulwarkClient } from '@bulwark/client';
import { loadIdentity } from '@bulwark/keystore';
import { createUser } from '@nats-io/nkeys';
import { afterEach, describe, expect, it } from 'vitest';
import { parseJoinToken } from '../src/enroll/join-token.js';
import { ADMIN, harness, KM, provider, type Harness } from './world.js';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** The key manager's identity as the service host loads it: the latest complete version in its own store. */
async function ownIdentity(h: Harness) {
  const i = await loadIdentity(h.store, KM);
  return { id: i.id, version: i.version, ed25519: i.ed25519, x25519: i.x25519 };
}

/** A harness whose key manager holds its own (init) identity in its custody store, as `bulwark init` leaves it. */
async function ownKeysHarness(): Promise<Harness> {
  const h = await harness();
  const init = h.world.identity(KM);
  await h.store.put({ principal: KM, kind: 'ed25519', version: 1 }, init.ed25519.secretKey);
  await h.store.put({ principal: KM, kind: 'x25519', version: 1 }, init.x25519.secretKey);
  return h;
}

async function adminClient(h: Harness): Promise<BulwarkClient> {
  return createBulwarkClient({ bus: await h.connect(ADMIN), sessions: { provider, self: h.world.identity(ADMIN), directory: await h.directory() } });
}

async function enroll(h: Harness, join: string) {
  return enrollWithJoinBundle({ bus: await h.connect(`boot-${randomUUID()}`), provider, directory: await h.directory(), bundle: parseJoinBundle(join), natsUser: createUser().getPublicKey() });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the key manager rotates its own identity', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('rotates twice while an agent enrols, rotates and revokes through it: no command lost, every fact in the ledger, a restart back on the latest version', async () => {
    h = await ownKeysHarness();
    const km = await h.start({ identity: await ownIdentity(h) });
    const admin = await adminClient(h);
    const agentId = `agent.${randomUUID()}`;
    const invitation = await admin.keys.invite(agentId, { ttlMs: 60_000 });
    expect(parseJoinToken(parseJoinBundle(invitation.join).token).claims.kv).toBe(1);

    let rotating = true;
    const selfRotations = (async () => {
      try {
        expect(await km.rotateOwnIdentity()).toBe(2);
        expect(await km.rotateOwnIdentity()).toBe(3);
      } finally {
        rotating = false;
      }
    })();
    // Commands all along: every one answered (a lost reply would reject here).
    let answered = 0;
    const load = (async () => {
      while (rotating) {
        await admin.keys.list();
        answered++;
        await pause(20);
      }
    })();
    const agentFlow = (async () => {
      await pause(300);
      const { identity, certified } = await enroll(h!, invitation.join);
      expect(certified.version).toBe(2);
      const agent = createBulwarkClient({ bus: await h!.connect(agentId), sessions: { provider, self: identity, directory: await h!.directory() } });
      await pause(900);
      expect((await agent.keys.rotate(agentId, 3, { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair(), natsUser: createUser().getPublicKey() })).version).toBe(3);
      await pause(500);
      const revoked = await admin.keys.revoke(agentId, 'cessation_of_operation');
      expect(revoked.versions.map((v) => v.state)).toEqual(['revoked', 'verify_only', 'revoked']);
    })();
    await Promise.all([selfRotations, load, agentFlow]);
    expect(answered).toBeGreaterThan(10);

    // Switched in place: it signs as version 3 now (a new token says so) and its entry is version 3, with its stored keys.
    expect(km.ownVersion).toBe(3);
    const later = await admin.keys.invite(`agent.${randomUUID()}`, { ttlMs: 60_000 });
    expect(parseJoinToken(parseJoinBundle(later.join).token).claims.kv).toBe(3);
    const stored = await loadIdentity(h.store, KM);
    expect(stored.version).toBe(3);
    const reader = await h.directory();
    await expect.poll(() => reader.lookup(KM)?.keyVersion).toBe(3);
    expect(b64(reader.lookup(KM)!.x25519PublicKey)).toBe(b64(stored.x25519.publicKey));
    expect((await admin.keys.get(KM)).versions.map((v) => [v.version, v.state, v.ed25519])).toEqual([
      [1, 'verify_only', b64(h.world.identity(KM).ed25519.publicKey)],
      [2, 'verify_only', b64((await loadIdentity(h.store, KM, 2)).ed25519.publicKey)],
      [3, 'active', b64(stored.ed25519.publicKey)],
    ]);

    // Every fact in the ledger, produced by the key manager; its own rotation as any holder's.
    const facts = h.ledger.committed.filter((e) => e.eventType.startsWith('keys.')).map((e) => [e.eventType, e.agentId, e.producer]);
    for (const want of [
      ['keys.generated', KM],
      ['keys.invited', agentId],
      ['keys.enrolled', agentId],
      ['keys.rotated', agentId],
      ['keys.revoked', agentId],
    ]) {
      expect(facts).toContainEqual([...want, KM]);
    }
    expect(h.ledger.committed.filter((e) => e.eventType === 'keys.rotated' && e.agentId === KM).map((e) => [e.details['version'], e.details['trigger'], e.producer])).toEqual([
      [2, 'on_demand', KM],
      [3, 'on_demand', KM],
    ]);

    // A restart comes back on version 3 and serves.
    await km.stop();
    const restarted = await h.start({ identity: await ownIdentity(h) });
    expect(restarted.ownVersion).toBe(3);
    const admin2 = await adminClient(h);
    expect((await admin2.keys.get(KM)).activeVersion).toBe(3);
  });

  it('enrols with a join token issued before its rotation; once the version that signed it is revoked, its tokens are refused', async () => {
    h = await ownKeysHarness();
    const km = await h.start({ identity: await ownIdentity(h) });
    const admin = await adminClient(h);
    const first = await admin.keys.invite(`agent.${randomUUID()}`, { ttlMs: 60_000 });
    const second = await admin.keys.invite(`agent.${randomUUID()}`, { ttlMs: 60_000 });
    expect(await km.rotateOwnIdentity()).toBe(2);
    // Signed by version 1, presented to a key manager on version 2.
    expect((await enroll(h, first.join)).certified.version).toBe(2);
    // The key manager's version 1 revoked: what it signed is no longer the key manager's.
    const view = await admin.keys.revoke(KM, 'superseded', 1);
    expect(view.versions.map((v) => v.state)).toEqual(['revoked', 'active']);
    await expect(enroll(h, second.join)).rejects.toThrow(/not the key manager's/);
    await expect.poll(() => h!.ledger.committed.some((e) => e.eventType === 'security.violation' && e.details['kind'] === 'keys.join_token_refused' && e.details['code'] === 'E_TOKEN_FORGED')).toBe(true);
    // Its current version's tokens enrol.
    const third = await admin.keys.invite(`agent.${randomUUID()}`, { ttlMs: 60_000 });
    expect((await enroll(h, third.join)).certified.version).toBe(2);
  });

  it('is asked to rotate (`bulwark keys rotate svc.key-manager`): the request enters it in the book and it rotates at once', async () => {
    h = await ownKeysHarness();
    const km = await h.start({ identity: await ownIdentity(h) });
    const admin = await adminClient(h);
    const view = await admin.keys.requestRotation(KM);
    expect(view.rotationRequested).toMatchObject({ reason: 'on_demand', by: ADMIN });
    await expect.poll(() => km.ownVersion, { timeout: 8000 }).toBe(2);
    await expect.poll(async () => (await admin.keys.get(KM)).rotationRequested, { timeout: 5000 }).toBeNull();
    expect(h.ledger.committed.filter((e) => e.agentId === KM).map((e) => e.eventType)).toEqual(['keys.generated', 'keys.rotation_requested', 'keys.rotated']);
  });

  it('rotates on the interval, with trigger interval (first its init version, then the version that rotation made)', async () => {
    h = await ownKeysHarness();
    await pause(1000);
    const km = await h.start({ identity: await ownIdentity(h), rotationIntervalMs: 1000, selfRotationCheckMs: 200 });
    await expect.poll(() => km.ownVersion, { timeout: 8000 }).toBeGreaterThanOrEqual(3);
    const rotated = h.ledger.committed.filter((e) => e.eventType === 'keys.rotated' && e.agentId === KM);
    expect(rotated.slice(0, 2).map((e) => [e.details['version'], e.details['trigger']])).toEqual([
      [2, 'interval'],
      [3, 'interval'],
    ]);
  });

  it('never runs on a version the ledger did not commit: keys staged before a crash are set aside at start, and the next rotation commits them', async () => {
    h = await ownKeysHarness();
    // A crash after staging version 2 and before its commit leaves it in the store; the host loads the latest.
    const staged = { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair() };
    await h.store.put({ principal: KM, kind: 'ed25519', version: 2 }, staged.ed25519.secretKey);
    await h.store.put({ principal: KM, kind: 'x25519', version: 2 }, staged.x25519.secretKey);
    const loaded = await ownIdentity(h);
    expect(loaded.version).toBe(2);
    const km = await h.start({ identity: loaded });
    expect(km.ownVersion).toBe(1);
    expect(b64(loaded.ed25519.publicKey)).toBe(b64(h.world.identity(KM).ed25519.publicKey));
    const admin = await adminClient(h);
    await admin.keys.list();
    expect(await km.rotateOwnIdentity()).toBe(2);
    const view = await admin.keys.get(KM);
    expect(view.versions[1]).toMatchObject({ version: 2, ed25519: b64(staged.ed25519.publicKey), x25519: b64(staged.x25519.publicKey) });
  });

  it('refuses to start on keys that are not the ones the ledger certified for its version', async () => {
    h = await ownKeysHarness();
    const km = await h.start({ identity: await ownIdentity(h) });
    expect(await km.rotateOwnIdentity()).toBe(2);
    await km.stop();
    // Version 2 claimed with version 1's keys (a store put back from before the rotation, relabelled).
    const v1 = await loadIdentity(h.store, KM, 1);
    await expect(h.start({ identity: { id: KM, version: 2, ed25519: v1.ed25519, x25519: v1.x25519 } })).rejects.toMatchObject({ code: 'E_KEYS_SELF_VERSION' });
  });

  it('does not rotate itself when its identity is not in its own store (it could not keep a new version)', async () => {
    h = await harness();
    const km = await h.start();
    await expect(km.rotateOwnIdentity()).rejects.toMatchObject({ code: 'E_KEYS_SELF_ROTATION' });
    expect(h.ledger.committed.filter((e) => e.agentId === KM)).toEqual([]);
  });
});
