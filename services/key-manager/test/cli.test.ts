// `bulwark keys invite|enroll|get|rotate|list|revoke` in-process against the key manager of
// world.ts: an administrator's key store, and an agent's own (empty but for the root pin).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type CommandIO } from '@bulwark/cli';
import { FileKeyStore, loadIdentity, SoftwareKek, writeRootPin } from '@bulwark/keystore';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN, harness, INCIDENT, KM, NATS_URL, provider, type Harness } from './world.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function home(h: Harness, withIdentity?: string, namespace = nsName) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-keys-cli-'));
  dirs.push(dir);
  const kek = randomBytes(32);
  const keysDir = join(dir, 'keys');
  const store = await FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(provider, new Uint8Array(kek), 'SYMBIONT_KEK'), provider });
  if (withIdentity !== undefined) {
    const id = h.world.identity(withIdentity);
    await store.put({ principal: id.id, kind: 'ed25519', version: 1 }, id.ed25519.secretKey);
    await store.put({ principal: id.id, kind: 'x25519', version: 1 }, id.x25519.secretKey);
  }
  await writeRootPin(keysDir, h.world.root.publicKey);
  const env = { SYMBIONT_KEK: kek.toString('base64'), SYMBIONT_KEY_DIR: keysDir };
  return async (argv: readonly string[]) => {
    let stdout = '';
    let stderr = '';
    const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env, cwd: dir };
    const code = await run([...argv, '--nats', NATS_URL, '--namespace', namespace], io);
    return { code, stdout, stderr };
  };
}

const nsName = `K${randomBytes(5).toString('hex')}`;

describe('bulwark keys', () => {
  it('keys rotate svc.key-manager: the key manager rotates itself; keys revoke svc.key-manager --version 1 revokes its replaced version', async () => {
    const h = await harness({ nsName: `${nsName}S` });
    try {
      const init = h.world.identity(KM);
      await h.store.put({ principal: KM, kind: 'ed25519', version: 1 }, init.ed25519.secretKey);
      await h.store.put({ principal: KM, kind: 'x25519', version: 1 }, init.x25519.secretKey);
      const own = await loadIdentity(h.store, KM);
      const km = await h.start({ identity: { id: own.id, version: own.version, ed25519: own.ed25519, x25519: own.x25519 } });
      const admin = await home(h, ADMIN, `${nsName}S`);
      const requested = await admin(['keys', 'rotate', KM, '--as', ADMIN, '--json']);
      expect(requested.code, requested.stderr).toBe(0);
      await expect.poll(() => km.ownVersion, { timeout: 8000 }).toBe(2);
      const revoked = await admin(['keys', 'revoke', KM, '--reason', 'superseded', '--version', '1', '--as', ADMIN, '--json']);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(JSON.parse(revoked.stdout)).toMatchObject({ activeVersion: 2, versions: [{ version: 1, state: 'revoked' }, { version: 2, state: 'active' }] });
    } finally {
      await h.close();
    }
  });

  it('invites, enrolls (keys made where the agent runs), gets, rotates, lists and revokes', async () => {
    const h = await harness({ nsName });
    try {
      await h.start();
      const admin = await home(h, ADMIN);
      const agent = await home(h);
      const agentId = `agent.${randomUUID()}`;
      const invited = await admin(['keys', 'invite', agentId, '--ttl', '10m', '--as', ADMIN, '--json']);
      expect(invited.code, invited.stderr).toBe(0);
      const { join: bundle } = JSON.parse(invited.stdout) as { join: string };
      const enrolled = await agent(['keys', 'enroll', '--join', bundle, '--json']);
      expect(enrolled.code, enrolled.stderr).toBe(0);
      expect(JSON.parse(enrolled.stdout)).toMatchObject({ principal: agentId, version: 2 });
      const got = await agent(['keys', 'get', agentId, '--as', agentId, '--json']);
      expect(got.code, got.stderr).toBe(0);
      expect(JSON.parse(got.stdout)).toMatchObject({ activeVersion: 2 });
      const rotated = await agent(['keys', 'rotate', '--as', agentId, '--json']);
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(JSON.parse(rotated.stdout)).toMatchObject({ version: 3 });
      // The rotated key is the one the agent's store now serves: the next call goes under v3.
      expect((await agent(['keys', 'get', agentId, '--as', agentId])).stdout).toContain('active v3');
      const listed = await admin(['keys', 'list', '--as', ADMIN]);
      expect(listed.stdout).toContain(`${agentId}  active v3`);
      // An administrator asks the agent's holder to rotate (readable, then --json); the agent's own rotation answers it.
      const asked = await admin(['keys', 'rotate', agentId, '--as', ADMIN]);
      expect(asked.code, asked.stderr).toBe(0);
      expect(asked.stdout).toMatch(new RegExp(`^rotation of ${agentId} v3 requested \\(on_demand\\) by ${ADMIN} at \\S+; its holder rotates at its next check\n${agentId}  active v3  min verify v2  rotation requested \\(on_demand\\) by ${ADMIN} at `));
      expect((await admin(['keys', 'get', agentId, '--as', ADMIN])).stdout).toContain(`rotation requested (on_demand) by ${ADMIN} at `);
      const escalated = await admin(['keys', 'rotate', agentId, '--reason', 'compromise', '--as', ADMIN, '--json']);
      expect(escalated.code, escalated.stderr).toBe(0);
      expect(JSON.parse(escalated.stdout)).toMatchObject({ principal: agentId, rotationDue: true, rotationRequested: { reason: 'compromise', by: ADMIN } });
      for (const argv of [['keys', 'rotate', agentId, '--reason', 'bored'], ['keys', 'rotate', '--reason', 'compromise'], ['keys', 'rotate', agentId, '--creds-out', 'x.creds']]) {
        const r = await admin([...argv, '--as', ADMIN]);
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.stderr, argv.join(' ')).toMatch(/--reason|--creds-out/);
      }
      expect((await agent(['keys', 'rotate', '--as', agentId, '--json'])).code).toBe(0);
      expect(JSON.parse((await agent(['keys', 'get', agentId, '--as', agentId, '--json'])).stdout)).toMatchObject({ activeVersion: 4, rotationRequested: null });
      const bad = await admin(['keys', 'revoke', agentId, '--reason', 'bored', '--as', ADMIN]);
      expect(bad.code).toBe(2);
      const revoked = await admin(['keys', 'revoke', agentId, '--reason', 'key_compromise', '--as', ADMIN, '--json']);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(JSON.parse(revoked.stdout)).toMatchObject({ activeVersion: null, minVerifyVersion: 5 });
      // Its next call is refused.
      const after = await agent(['keys', 'get', agentId, '--as', agentId]);
      expect(after.code).not.toBe(0);
      // The same join bundle a second time is refused (its bootstrap identity is revoked).
      expect((await agent(['keys', 'enroll', '--join', bundle])).code).not.toBe(0);
    } finally {
      await h.close();
    }
  }, 60_000);

  it('creates a channel, revokes a subscriber (a new epoch), lists it; refuses a non-administrator and bad usage', async () => {
    const h = await harness({ nsName });
    try {
      await h.start();
      const admin = await home(h, ADMIN);
      const channel = `soc.cli${randomBytes(3).toString('hex')}`;
      const created = await admin(['keys', 'channel', 'create', channel, INCIDENT, ADMIN, '--as', ADMIN, '--json']);
      expect(created.code, created.stderr).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ channel, epoch: 1, subscribers: expect.arrayContaining([expect.objectContaining({ id: ADMIN })]) });
      const revoked = await admin(['keys', 'channel', 'revoke', channel, ADMIN, '--as', ADMIN]);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(revoked.stdout).toContain(`${channel}  epoch 2  subscriber_revoked ${ADMIN}`);
      expect(revoked.stdout).not.toContain(`  ${ADMIN}  v`);
      const listed = await admin(['keys', 'channel', 'list', '--as', ADMIN, '--json']);
      expect((JSON.parse(listed.stdout) as { channels: { channel: string; epoch: number }[] }).channels).toContainEqual(expect.objectContaining({ channel, epoch: 2 }));
      // The incident service may read the channel's state, not change it.
      const incident = await home(h, INCIDENT);
      expect((await incident(['keys', 'channel', 'get', channel, '--as', INCIDENT])).stdout).toContain(`${channel}  epoch 2`);
      const refused = await incident(['keys', 'channel', 'rotate', channel, '--as', INCIDENT]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/not a key administrator/);
      for (const argv of [['keys', 'channel', 'drop', channel], ['keys', 'channel', 'add', channel], ['keys', 'channel', 'create', channel], ['keys', 'channel', 'list', channel]]) {
        const r = await admin([...argv, '--as', ADMIN]);
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.stderr).toMatch(/keys channel/);
      }
    } finally {
      await h.close();
    }
  }, 60_000);
});
