// The key manager's own rotation where the bus authenticates (NATS operator mode, operator-world.ts):
// its NATS user would have to move with its keys (a new user JWT, Bus.switchUser, the host's
// renewal following), which is not implemented, so it refuses to rotate itself there rather than
// leave a NATS user recorded for no version (one a revocation could not reach). Nothing is committed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOperatorWorld, type OperatorWorld } from './operator-world.js';
import { ADMIN, KM } from './world.js';
import { Commands } from '@bulwark/bus';

let w: OperatorWorld;
beforeAll(async () => {
  w = await startOperatorWorld({ ownKeys: true });
}, 90_000);
afterAll(async () => {
  await w?.close();
});

describe('the key manager in NATS operator mode', () => {
  it('does not rotate its own identity (its NATS user would have to move too): refused, nothing committed, still serving', async () => {
    await expect(w.km.rotateOwnIdentity()).rejects.toMatchObject({ code: 'E_KEYS_SELF_ROTATION', message: expect.stringMatching(/the bus authenticates/) as unknown as string });
    expect(w.h.ledger.committed.filter((e) => e.agentId === KM)).toEqual([]);
    expect(w.km.ownVersion).toBe(1);
    const admin = await w.h.client(w.h.world.identity(ADMIN));
    expect(await admin.call(Commands.keys.list, {})).toMatchObject({ principals: [] });
  }, 60_000);
});
