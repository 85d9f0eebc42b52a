// The key manager's own rotation where the bus authenticates (NATS operator mode, operator-world.ts):
// its NATS user moves with its keys. The new user's JWT it signs itself with the account key, the
// nkey is stored with the version, `keys.rotated` records it, and the connection switches to it
// (Bus.switchUser). Proved on the bus: revoking the user it started as, then the user of a version
// it rotated away from, cuts off neither it nor the commands it serves.
import { Commands } from '@bulwark/bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOperatorWorld, type OperatorWorld } from './operator-world.js';
import { ADMIN, KM } from './world.js';

let w: OperatorWorld;
beforeAll(async () => {
  w = await startOperatorWorld({ ownKeys: true });
}, 90_000);
afterAll(async () => {
  await w?.close();
});

describe('the key manager rotates its own identity in NATS operator mode', () => {
  it('moves its connection to the new NATS user of each version: revoking the users it left cuts nothing off', async () => {
    const admin = await w.h.client(w.h.world.identity(ADMIN));
    expect(await w.km.rotateOwnIdentity()).toBe(2);
    const u2 = w.km.projection.book.natsUser(KM, 2);
    expect(u2).toMatch(/^U[A-Z2-7]{55}$/);
    expect(u2).not.toBe(w.kmNatsUser);
    // The user it started as, revoked on the bus: a connection still on it would be closed and refused.
    await w.revoker.push(new Map([[w.kmNatsUser, Date.now()]]), { force: true });
    await new Promise((r) => setTimeout(r, 500));
    expect(await admin.call(Commands.keys.list, {})).toMatchObject({ principals: [{ principal: KM, activeVersion: 2 }] });
    expect(await w.km.rotateOwnIdentity()).toBe(3);
    const u3 = w.km.projection.book.natsUser(KM, 3);
    expect(u3).not.toBe(u2);
    // Its version 2 revoked by an administrator: the key manager pushes the revocation of u2 itself.
    await admin.call(Commands.keys.revoke, { principal: KM, reason: 'superseded', version: 2 });
    await w.km.settled();
    await new Promise((r) => setTimeout(r, 500));
    expect(await admin.call(Commands.keys.get, { principal: KM })).toMatchObject({ activeVersion: 3, versions: [{ state: 'verify_only' }, { state: 'revoked' }, { state: 'active' }] });
    expect(h().ledger.committed.filter((e) => e.eventType === 'keys.rotated' && e.agentId === KM).map((e) => e.details['natsUser'])).toEqual([u2, u3]);
  }, 60_000);
});

const h = () => w.h;
