// The key manager against the real NATS, with the ledger stand-in of world.ts: enrolment with
// a one-time join token, rotation, revocation, state rebuilt from the ledger after a restart.
import { randomUUID } from 'node:crypto';
import { Commands, publishDirectoryEntry, removeDirectoryBucket } from '@bulwark/bus';
import { decodeSignedDirectoryEntry } from '@bulwark/envelope';
import { newEvent } from '@bulwark/events';
import { createUser } from '@nats-io/nkeys';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileKeyStore, SoftwareKek } from '@bulwark/keystore';
import { afterEach, describe, expect, it } from 'vitest';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, proveKeyPossession } from '@bulwark/client';
import { ADMIN, harness, INCIDENT, provider, type Harness } from './world.js';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** What `bulwark keys enroll` does where the agent runs: new keys made here, proved, sent with the token over the bootstrap identity's session. */
async function enroll(h: Harness, join: string, tamper?: (body: Record<string, unknown>) => void) {
  const bundle = parseJoinBundle(join);
  const boot = { id: bundle.principal, x25519: { secretKey: bundle.x25519Secret, publicKey: provider.x25519.publicKey(bundle.x25519Secret) } };
  const own = { id: bundle.principal, ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair() };
  const natsUser = createUser().getPublicKey();
  const proof = proveKeyPossession(provider, bundle.principal, bundle.version, { ed25519: own.ed25519, x25519PublicKey: own.x25519.publicKey, natsUser });
  const body: Record<string, unknown> = { token: bundle.token, ed25519: b64(own.ed25519.publicKey), x25519: b64(own.x25519.publicKey), natsUser, proof: b64(proof) };
  tamper?.(body);
  const client = await h.client(boot);
  const reply = (await client.call(Commands.keys.enroll, body)) as { version: number; entry: string };
  // The new entry is published just after the reply (which travels in the bootstrap session it ends).
  const reader = await h.directory();
  await eventually(() => reader.lookup(bundle.principal)?.keyVersion === bundle.version);
  return { bundle, own, reply, natsUser };
}

async function eventually(check: () => boolean, timeoutMs = 3000): Promise<number> {
  const t0 = performance.now();
  while (!check()) {
    if (performance.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

describe.each(['file', 'hsm'] as const)('key manager service (%s key store)', (keyStore) => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('enrolls an agent with a one-time join token: its own keys become version 2, the token cannot be used again', async () => {
    h = await harness({ keyStore });
    const km = await h.start();
    const admin = await h.client(h.world.identity(ADMIN));
    const agentId = `agent.${randomUUID()}`;
    const invited = (await admin.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })) as { join: string; tid: string };
    expect(invited.join.startsWith('bwjb1.')).toBe(true);
    const { own, reply } = await enroll(h, invited.join);
    expect(reply.version).toBe(2);
    const entry = decodeSignedDirectoryEntry(new Uint8Array(Buffer.from(reply.entry, 'base64'))).entry;
    expect(b64(entry.ed25519PublicKey)).toBe(b64(own.ed25519.publicKey));
    // The ledger holds the invite and the enrolment, produced by the key manager; never the token.
    const types = h.ledger.committed.map((e) => [e.eventType, e.producer]);
    expect(types).toEqual([
      ['keys.invited', 'svc.key-manager'],
      ['keys.enrolled', 'svc.key-manager'],
    ]);
    expect(JSON.stringify(h.ledger.committed.map((e) => e.details))).not.toContain(parseJoinBundle(invited.join).token.split('.')[2]!);
    // The agent now talks under its own keys; the same token a second time is refused and reported.
    const agent = await h.client({ id: agentId, x25519: own.x25519 });
    expect(await agent.call(Commands.keys.get, { principal: agentId })).toMatchObject({ activeVersion: 2, minVerifyVersion: 2 });
    await expect(agent.call(Commands.keys.enroll, { token: parseJoinBundle(invited.join).token })).rejects.toThrow(/already used/);
    await eventually(() => h!.ledger.committed.some((e) => e.eventType === 'security.violation' && e.details['kind'] === 'keys.join_token_refused'));
    await km.settled();
  });

  it('offers the same calls through @bulwark/client: invite, enrollWithJoinBundle, get, rotate, revoke', async () => {
    h = await harness({ keyStore });
    await h.start();
    const adminBus = await h.connect(ADMIN);
    const admin = createBulwarkClient({ bus: adminBus, sessions: { provider, self: h.world.identity(ADMIN), directory: await h.directory() } });
    const agentId = `agent.${randomUUID()}`;
    const invitation = await admin.keys.invite(agentId, { ttlMs: 60_000 });
    const { identity, certified } = await enrollWithJoinBundle({ bus: await h.connect('boot'), provider, directory: await h.directory(), bundle: parseJoinBundle(invitation.join), natsUser: createUser().getPublicKey() });
    expect(certified.version).toBe(2);
    const agent = createBulwarkClient({ bus: await h.connect(agentId), sessions: { provider, self: identity, directory: await h.directory() } });
    expect((await agent.keys.get(agentId)).activeVersion).toBe(2);
    const next = await agent.keys.rotate(agentId, 3, { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair(), natsUser: createUser().getPublicKey() });
    expect(next.version).toBe(3);
    expect((await admin.keys.list()).principals.map((p) => p.principal)).toContain(agentId);
    const revoked = await admin.keys.revoke(agentId, 'cessation_of_operation');
    expect(revoked.versions.map((v) => v.state)).toEqual(['revoked', 'verify_only', 'revoked']);
    expect(revoked.minVerifyVersion).toBe(4);
    expect(revoked.versions.map((v) => v.verifies)).toEqual([false, false, false]);
  });

  it('refuses a forged and an expired token, and a token for someone else, each as a security violation', async () => {
    h = await harness({ keyStore });
    await h.start();
    const admin = await h.client(h.world.identity(ADMIN));
    const agentId = `agent.${randomUUID()}`;
    const invited = (await admin.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })) as { join: string };
    const token = parseJoinBundle(invited.join).token;
    const [p, c] = token.split('.') as [string, string, string];
    const forged = `${p}.${c}.${b64(new Uint8Array(64)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')}`;
    await expect(enroll(h, invited.join, (b) => (b['token'] = forged))).rejects.toThrow(/not the key manager's/);
    // An expired token's bootstrap entry has expired with it (notAfter = the token's exp): the
    // session is refused before the key manager even reads the token (the token's own expiry
    // check, behind it, is in join-token.test.ts).
    const short = (await admin.call(Commands.keys.invite, { principal: `agent.${randomUUID()}`, ttlMs: 1 })) as { join: string };
    await new Promise((r) => setTimeout(r, 5));
    await expect(enroll(h, short.join)).rejects.toThrow();
    // Agent B holding A's token: the token names A.
    const other = (await admin.call(Commands.keys.invite, { principal: `agent.${randomUUID()}`, ttlMs: 60_000 })) as { join: string };
    await expect(enroll(h, other.join, (b) => (b['token'] = token))).rejects.toThrow(/is for/);
    await eventually(() => h!.ledger.committed.filter((e) => e.eventType === 'security.violation' && e.details['kind'] === 'keys.join_token_refused').length >= 2);
    // A proof of possession made with another key is refused too.
    await expect(enroll(h, invited.join, (b) => (b['proof'] = b64(new Uint8Array(64))))).rejects.toThrow(/proof of possession/);
  });

  it('rotates an agent key while old versions still verify, and revokes it: every reader drops the entry at once', async () => {
    h = await harness({ keyStore });
    const km = await h.start();
    const admin = await h.client(h.world.identity(ADMIN));
    const agentId = `agent.${randomUUID()}`;
    const invited = (await admin.call(Commands.keys.invite, { principal: agentId })) as { join: string };
    const { own } = await enroll(h, invited.join);
    const agent = await h.client({ id: agentId, x25519: own.x25519 });
    const v3 = { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair() };
    const natsUser = createUser().getPublicKey();
    const proof = proveKeyPossession(provider, agentId, 3, { ed25519: v3.ed25519, x25519PublicKey: v3.x25519.publicKey, natsUser });
    const rotated = (await agent.call(Commands.keys.rotate, { ed25519: b64(v3.ed25519.publicKey), x25519: b64(v3.x25519.publicKey), natsUser, proof: b64(proof) })) as { version: number };
    expect(rotated.version).toBe(3);
    await eventually(() => km.projection.book.active(agentId)?.version === 3);
    expect(km.projection.book.accepts(agentId, 2, b64(own.ed25519.publicKey), b64(own.x25519.publicKey))).toBe(true);
    // Another principal cannot rotate the agent's key.
    await expect(admin.call(Commands.keys.rotate, { principal: agentId })).rejects.toThrow(/only its own key/);
    const reader = await h.directory();
    await km.settled();
    await eventually(() => reader.lookup(agentId)?.keyVersion === 3);
    // Incident response revokes on a compromise; the reader refuses the principal within 1 s.
    const incident = await h.client(h.world.identity(INCIDENT));
    const t0 = performance.now();
    const view = (await incident.call(Commands.keys.revoke, { principal: agentId, reason: 'key_compromise' })) as { minVerifyVersion: number };
    expect(view.minVerifyVersion).toBe(4);
    await eventually(() => reader.lookup(agentId) === undefined, 1000);
    expect(performance.now() - t0).toBeLessThan(1000);
    // An agent may not revoke.
    // Its next call is refused (no valid directory entry: the handshake is not answered).
    const agent3 = await h.client({ id: agentId, x25519: v3.x25519 });
    await expect(agent3.call(Commands.keys.get, { principal: agentId })).rejects.toThrow();
  });

  it.skipIf(keyStore === 'hsm')('refuses to start with a wrong KEK or a corrupted root key file, and changes nothing (fail secure; the HSM cases: hsm-custody.test.ts)', async () => {
    h = await harness({ keyStore });
    const before = readdirSync(h.store.dir).map((f) => [f, readFileSync(join(h!.store.dir, f), 'utf8')]);
    const wrongKek = await FileKeyStore.open({ dir: h.store.dir, wrapper: new SoftwareKek(provider, provider.randomBytes(32), 'SYMBIONT_KEK'), provider });
    await expect(h.start({ store: wrongKek })).rejects.toMatchObject({ code: 'E_KEY_UNWRAP' });
    const rootFile = join(h.store.dir, 'root.ed25519.v1.json');
    const text = readFileSync(rootFile, 'utf8');
    writeFileSync(rootFile, text.replace(/("ciphertext"\s*:\s*")(.)/, (_m, p: string, c: string) => `${p}${c === 'A' ? 'B' : 'A'}`));
    expect(readFileSync(rootFile, 'utf8')).not.toBe(text);
    await expect(h.start()).rejects.toMatchObject({ code: expect.stringMatching(/^E_KEY_(FILE|UNWRAP)$/) as unknown as string });
    writeFileSync(rootFile, text);
    expect(readdirSync(h.store.dir).map((f) => [f, readFileSync(join(h!.store.dir, f), 'utf8')])).toEqual(before);
    // Nothing reached the ledger either.
    expect(h.ledger.committed).toEqual([]);
  });

  it('rebuilds its state from the ledger after a restart, and puts a revoked entry back over an old one put back by hand', async () => {
    h = await harness({ keyStore });
    const km = await h.start();
    const admin = await h.client(h.world.identity(ADMIN));
    const agentId = `agent.${randomUUID()}`;
    const invited = (await admin.call(Commands.keys.invite, { principal: agentId })) as { join: string };
    const { reply } = await enroll(h, invited.join);
    await admin.call(Commands.keys.revoke, { principal: agentId, reason: 'privilege_withdrawn' });
    await km.settled();
    await km.stop();
    // While the key manager is down the operator removes the bucket (its history with it) and puts
    // the old, unrevoked (root-signed) entry back: a reader starting now has nothing to compare it with.
    const oldEntry = decodeSignedDirectoryEntry(new Uint8Array(Buffer.from(reply.entry, 'base64')));
    await removeDirectoryBucket(h.bus);
    for (const id of [ADMIN, INCIDENT, 'svc.key-manager', 'svc.audit-ledger']) await publishDirectoryEntry(h.bus, h.entryOf(id));
    expect((await publishDirectoryEntry(h.bus, oldEntry)).outcome).toBe('created');
    const before = await h.directory();
    expect(before.lookup(agentId)?.keyVersion).toBe(2);
    // The key manager rebuilds from the ledger and puts the revoked entry back over it at start.
    const restarted = await h.start();
    expect(restarted.projection.book.key(agentId)?.versions.map((v) => v.state)).toEqual(['revoked', 'revoked']);
    await restarted.settled();
    await eventually(() => before.lookup(agentId) === undefined, 2000);
    const fresh = await h.directory();
    expect(fresh.lookup(agentId)).toBeUndefined();
    expect(restarted.projection.book.accepts(agentId, 2, b64(oldEntry.entry.ed25519PublicKey), b64(oldEntry.entry.x25519PublicKey))).toBe(false);
  });
});

describe('key manager: external keys', () => {
  it("records SchemaPin provider keys from svc.schemapin's committed pins, revoked ones too, and lists them to administrators", async () => {
    const h = await harness();
    try {
      const km = await h.start();
      const fp = `sha256:${'c'.repeat(64)}`;
      await h.ledger.commit(newEvent({ agentId: 'svc.schemapin', eventType: 'tools.pinned', details: { tool_id: 'search', domain: 'tools.example', fingerprint: fp, reason: 'first_use', by: 'svc.schemapin' } }), 'svc.schemapin');
      await eventually(() => km.projection.providers.providerKeys().length === 1);
      const admin = createBulwarkClient({ bus: await h.connect(ADMIN), sessions: { provider, self: h.world.identity(ADMIN), directory: await h.directory() } });
      expect((await admin.keys.list()).providerKeys).toEqual([{ fingerprint: fp, tools: ['search@tools.example'], revoked: false }]);
      await h.ledger.commit(newEvent({ agentId: 'svc.schemapin', eventType: 'tools.revoked', details: { fingerprint: fp, reason: 'key_compromise', by: 'analyst.admin' } }), 'svc.schemapin');
      await eventually(() => km.projection.providers.providerKeys()[0]?.revoked === true);
      expect((await admin.keys.list()).providerKeys).toEqual([{ fingerprint: fp, tools: [], revoked: true }]);
    } finally {
      await h.close();
    }
  });
});

describe('key manager: re-enrolment after revocation (incident recovery)', () => {
  it('invites a principal again only once every version is revoked; the responder may do only that; the new keys enrol as the next versions, the old stay revoked', async () => {
    const h = await harness();
    try {
      await h.start();
      const admin = await h.client(h.world.identity(ADMIN));
      const responder = await h.client(h.world.identity(INCIDENT));
      const agentId = `agent.${randomUUID()}`;
      // The responder invites no one new.
      await expect(responder.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })).rejects.toThrow(/may invite only a principal whose every key version is revoked/);
      const first = await enroll(h, ((await admin.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })) as { join: string }).join);
      expect(first.reply.version).toBe(2);
      // While a version is usable, nobody invites it again.
      await expect(admin.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })).rejects.toThrow(/still has a usable key version/);
      await expect(responder.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })).rejects.toThrow(/may invite only/);
      await responder.call(Commands.keys.revoke, { principal: agentId, reason: 'key_compromise' });
      await expect(responder.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000, admin: true })).rejects.toThrow(/not as an administrator/);
      const again = (await responder.call(Commands.keys.invite, { principal: agentId, ttlMs: 60_000 })) as { join: string };
      expect(parseJoinBundle(again.join).version).toBe(4);
      const second = await enroll(h, again.join);
      expect(second.reply.version).toBe(4);
      const agent = await h.client({ id: agentId, x25519: second.own.x25519 });
      const view = (await agent.call(Commands.keys.get, { principal: agentId })) as { activeVersion: number; minVerifyVersion: number; versions: { state: string; verifies: boolean }[] };
      expect(view).toMatchObject({ activeVersion: 4, minVerifyVersion: 4 });
      expect(view.versions.map((v) => [v.state, v.verifies])).toEqual([
        ['revoked', false],
        ['revoked', false],
        ['revoked', false],
        ['active', true],
      ]);
      // The first enrolment's keys stay refused.
      const old = await h.client({ id: agentId, x25519: first.own.x25519 });
      await expect(old.call(Commands.keys.get, { principal: agentId })).rejects.toThrow();
    } finally {
      await h.close();
    }
  }, 60_000);
});
