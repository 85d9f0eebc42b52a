// Backup and recovery onto a fresh machine (issue 12, done-when "Backup on one database, restore on
// an empty one, `bulwark audit verify` passes there"). The source system: `bulwark init` (root
// namespace) with nats-server in operator mode and the real ledger service on its own PostgreSQL
// schema, events appended by the policy service's identity. `bulwark keys backup --holders 2-of-3`
// there, its hash anchored in the ledger (a keys.exported event of svc.key-manager). The fresh
// machine: an empty home and an empty database. There the ledger's data comes with PostgreSQL's
// own dump of its schema (Bulwark has `audit export`, a verifiable JSONL copy, but no import: the
// database's dump is the restore path, and `audit verify` is what makes it trustworthy), and the
// key store with `bulwark keys restore` (its anchor checked in the ledger by default) from two of the three holders. Then
// `bulwark audit verify` passes there with the restored keys (the verifier key file the store
// holds, and the ledger's public key read from the restored, KEK-wrapped identity), and fails
// naming the row once one ledger row is altered. The refusals: one share, a tampered share, a
// wrong holder key, a backup whose hash the ledger does not anchor, an anchor in a ledger that
// does not verify, the wrong KEK or none: each says so, and the empty home stays empty. Only
// `--no-anchor-check` restores the unanchored backup, warning that it did not check it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService } from '@bulwark/audit-ledger';
import { createEventPublisher, Events, LEDGER_PRINCIPAL, ServicePrincipals } from '@bulwark/bus';
import { run, type CommandIO } from '@bulwark/cli';
import { SealedSender } from '@bulwark/envelope';
import { encodeEventBatch, newEvent, newEventId } from '@bulwark/events';
import { FileKeyStore, loadIdentity, SoftwareKek } from '@bulwark/keystore';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const EVENTS = 40;
const schema = withTestSchema('keys_backup');
const work = mkdtempSync(join(tmpdir(), 'bulwark-backup-e2e-'));
// The fresh machine's database: empty, its own (dropped at the end).
const freshDb = `t_backup_fresh_${randomBytes(5).toString('hex')}`;
const freshUrl = (() => {
  const u = new URL(databaseUrl());
  u.pathname = `/${freshDb}`;
  return u.toString();
})();

let b: PrivateBulwark;
let db: Kysely<LedgerDatabase> | undefined;
let ledger: LedgerService | undefined;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl() });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** `bulwark <argv>` in-process where the source system's key store is, with its root pin and NATS. */
async function onSource(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    env: { ...b.env, SYMBIONT_KEY_DIR: b.keysDir, SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('base64'), NATS_URL: b.url },
    cwd: work,
  };
  return { code: await run(argv, io), stdout, stderr };
}

/** `bulwark <argv>` in-process on the fresh machine: its home, its database, the KEK the operator brought. */
async function onFresh(argv: string[], home: string, kek = b.env['SYMBIONT_KEK']!): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    env: { SYMBIONT_KEK: kek, SYMBIONT_KEY_DIR: join(home, 'keys'), DATABASE_URL: freshUrl, SYMBIONT_LEDGER_SCHEMA: schema.name },
    cwd: work,
  };
  return { code: await run(argv, io), stdout, stderr };
}

beforeAll(async () => {
  b = await startPrivateBulwark({ namespace: false });
  db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  ledger = await startLedgerOn(b, db, { schema: schema.name, checkpointMs: 200, checkpointEvents: 10 });
}, 120_000);

afterAll(async () => {
  await ledger?.stop();
  if (db !== undefined) await closeDatabase(db);
  await schema.drop();
  await admin(`drop database if exists ${freshDb}`);
  await b?.stop();
  rmSync(work, { recursive: true, force: true });
}, 30_000);

describe('key store backup restored on a fresh machine with the ledger', () => {
  it('restores from 2 of 3 holders into an empty home, and `audit verify` passes on the restored database; refusals write nothing', async () => {
    // The source system: events through the real ledger, signed and checkpointed.
    const producer = await loadIdentity(b.store, ServicePrincipals.policy);
    const events = createEventPublisher(await b.connect(ServicePrincipals.policy, 'producer'), new SealedSender({ provider: b.provider, self: producer, directory: await b.directory(), recipientId: LEDGER_PRINCIPAL }));
    const batch = Array.from({ length: EVENTS }, (_, i) => newEvent({ agentId: `agent.a${i % 3}`, eventType: 'policy.decision', details: { i } }));
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch(batch) });
    await expect.poll(async () => (await db!.selectFrom('events').select('seq').where('event_type', '=', 'policy.decision').execute()).length, { timeout: 20_000 }).toBe(EVENTS);
    await expect.poll(async () => (await db!.selectFrom('events').select('seq').where('event_type', '=', 'audit.checkpoint').execute()).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    // The backup, 2 of 3, where the key store is; its hash anchored in the ledger as a
    // keys.exported event of svc.key-manager. A second one made offline (--no-anchor) is not.
    const holders = ['analyst.a', 'analyst.b', 'analyst.c'].map((id) => {
      const k = b.provider.x25519.generateKeyPair();
      const file = join(work, `${id}.key`);
      writeFileSync(file, Buffer.from(k.secretKey).toString('base64'), { mode: 0o600 });
      return { id, pub: Buffer.from(k.publicKey).toString('base64'), file };
    });
    const backup = (file: string, ...extra: string[]) => onSource(['keys', 'backup', '--holders', '2-of-3', ...holders.flatMap((h) => ['--holder', `${h.id}=${h.pub}`]), '--out', file, ...extra, '--json']);
    const out = join(work, 'backup.json');
    const made = await backup(out);
    expect(made.code, made.stderr).toBe(0);
    const { hash, anchorEventId } = JSON.parse(made.stdout) as { hash: string; anchorEventId: string };
    const unanchored = join(work, 'offline-backup.json');
    const offline = await backup(unanchored, '--no-anchor');
    expect(offline.code, offline.stderr).toBe(0);
    await expect.poll(async () => (await db!.selectFrom('events').select(['producer', 'details']).where('event_id', '=', anchorEventId).execute()).map((r) => [r.producer, (JSON.parse(r.details) as { sha256: string }).sha256]), { timeout: 20_000 }).toEqual([
      [ServicePrincipals.keys, hash],
    ]);
    // Checkpointed past the anchor, then the source system stops.
    const anchorSeq = Number((await db!.selectFrom('events').select('seq').where('event_id', '=', anchorEventId).executeTakeFirstOrThrow()).seq);
    await expect.poll(async () => Number((await db!.selectFrom('checkpoints').select((eb) => eb.fn.max('tree_size').as('n')).executeTakeFirst())?.n ?? 0), { timeout: 20_000 }).toBeGreaterThan(anchorSeq);
    await ledger!.stop();
    ledger = undefined;
    const source = await b.bulwark(['audit', 'verify', '--database', databaseUrl(), '--schema', schema.name, '--json', '--no-progress']);
    expect(source.code, source.stdout + source.stderr).toBe(0);

    // The fresh machine: an empty home, an empty database, the ledger's schema from its dump.
    const home = mkdtempSync(join(tmpdir(), 'bulwark-fresh-home-'));
    try {
      await admin(`create database ${freshDb}`);
      const dump = execFileSync('pg_dump', ['--no-owner', '--no-privileges', '--schema', schema.name, databaseUrl()], { maxBuffer: 64 * 1024 * 1024 });
      execFileSync('psql', ['--quiet', '--set', 'ON_ERROR_STOP=1', freshUrl], { input: dump, stdio: ['pipe', 'ignore', 'pipe'] });
      const pin = Buffer.from(b.rootPublicKey).toString('base64');
      const restore = (who: { id: string; file: string }[], file = out, kek?: string, into = home, extra: string[] = []) =>
        onFresh(['keys', 'restore', '--in', file, ...who.flatMap((h) => ['--holder-key', `${h.id}=${h.file}`]), '--to', join(into, 'keys'), '--root-public-key', pin, ...extra, '--json'], into, kek);

      // Refusals: each says what is wrong, and the home stays empty.
      const one = await restore([holders[0]!]);
      expect(one.code).not.toBe(0);
      expect(one.stderr).toMatch(/needs 2 shares, 1 given/);
      expect(readdirSync(home)).toEqual([]);
      const wrongKey = await restore([holders[0]!, { id: 'analyst.b', file: holders[2]!.file }]);
      expect(wrongKey.code).not.toBe(0);
      expect(wrongKey.stderr).toMatch(/share 1 \(holder analyst\.b\) does not open: the wrong holder key/);
      expect(readdirSync(home)).toEqual([]);
      // A share altered in the backup file: the root's signature over the manifest no longer holds.
      const manifest = JSON.parse(readFileSync(out, 'utf8')) as { shares: { sealed: string }[] };
      const sealed = Buffer.from(manifest.shares[1]!.sealed, 'base64');
      sealed[5]! ^= 1;
      manifest.shares[1]!.sealed = sealed.toString('base64');
      const tamperedFile = join(work, 'tampered.json');
      writeFileSync(tamperedFile, JSON.stringify(manifest));
      const tampered = await restore([holders[0]!, holders[1]!], tamperedFile);
      expect(tampered.code).not.toBe(0);
      expect(tampered.stderr).toMatch(/not signed by the pinned root key/);
      expect(readdirSync(home)).toEqual([]);
      // The operator brought another KEK, or none: the restored store would not open.
      const wrongKek = await restore([holders[0]!, holders[1]!], out, randomBytes(32).toString('base64'));
      expect(wrongKek.code).not.toBe(0);
      expect(wrongKek.stderr).toMatch(/the restored root key does not open under SYMBIONT_KEK .*the wrong KEK for this backup; nothing restored/);
      expect(readdirSync(home)).toEqual([]);
      const noKek = await restore([holders[0]!, holders[1]!], out, '');
      expect(noKek.stderr).toMatch(/no key-encryption key/);
      expect(readdirSync(home)).toEqual([]);
      // A genuine backup whose hash the restored ledger does not hold: refused by default.
      const notAnchored = await restore([holders[0]!, holders[1]!], unanchored);
      expect(notAnchored.code).not.toBe(0);
      expect(notAnchored.stderr).toMatch(/is not anchored in the ledger: no keys\.exported event of svc\.key-manager records it; nothing restored/);
      expect(readdirSync(home)).toEqual([]);
      // Only --no-anchor-check restores it (elsewhere), warning which backup went unchecked.
      const offlineHome = mkdtempSync(join(tmpdir(), 'bulwark-fresh-home-'));
      try {
        const { backupId: offlineId, hash: offlineHash } = JSON.parse(offline.stdout) as { backupId: string; hash: string };
        const unchecked = await restore([holders[0]!, holders[1]!], unanchored, undefined, offlineHome, ['--no-anchor-check']);
        expect(unchecked.code, unchecked.stderr).toBe(0);
        expect(unchecked.stderr).toContain(`warning: --no-anchor-check: backup ${offlineId} (sha256 ${offlineHash}) is restored WITHOUT checking the ledger`);
        expect(JSON.parse(unchecked.stdout)).toMatchObject({ backupId: offlineId, anchorChecked: false, anchoredAtSeq: null });
      } finally {
        rmSync(offlineHome, { recursive: true, force: true });
      }

      // Two of three holders: the store comes back, and the ledger verifies with its keys.
      const restored = await restore([holders[2]!, holders[0]!]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.stderr).toBe('');
      expect(JSON.parse(restored.stdout)).toMatchObject({ anchorChecked: true, anchoredAtSeq: anchorSeq, sha256: hash });
      const verify = await onFresh(['audit', 'verify', '--json', '--no-progress'], home);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
      // The ledger's public key from the restored identity (opened under the KEK), not only the .vkey file.
      const store = await FileKeyStore.open({ dir: join(home, 'keys'), wrapper: new SoftwareKek(b.provider, new Uint8Array(Buffer.from(b.env['SYMBIONT_KEK']!, 'base64')), 'SYMBIONT_KEK'), provider: b.provider });
      const ledgerKey = Buffer.from((await loadIdentity(store, LEDGER_PRINCIPAL)).ed25519.publicKey).toString('base64');
      const byIdentity = await onFresh(['audit', 'verify', '--public-key', ledgerKey, '--json', '--no-progress'], home);
      expect(byIdentity.code, byIdentity.stdout + byIdentity.stderr).toBe(0);

      // One row altered on the restored database: verify fails and names it.
      const fresh = new pg.Client({ connectionString: freshUrl });
      await fresh.connect();
      try {
        const row = await fresh.query<{ seq: string }>(`update ${schema.name}.events set agent_id = 'agent.mallory' where seq = (select min(seq) from ${schema.name}.events where event_type = 'policy.decision') returning seq`);
        expect(row.rowCount).toBe(1);
        const bad = await onFresh(['audit', 'verify', '--json', '--no-progress'], home);
        expect(bad.code, bad.stdout + bad.stderr).toBe(1);
        expect(bad.stdout).toContain(`"seq":${Number(row.rows[0]!.seq)}`);
        // The anchor is checked in a ledger that verifies (under the backup's own verifier key): not in this one.
        const other = mkdtempSync(join(tmpdir(), 'bulwark-fresh-home-'));
        try {
          const untrusted = await restore([holders[0]!, holders[1]!], out, undefined, other);
          expect(untrusted.code).not.toBe(0);
          expect(untrusted.stderr).toMatch(/the ledger in .* does not verify .*its anchors cannot be trusted; nothing restored/);
          expect(readdirSync(other)).toEqual([]);
        } finally {
          rmSync(other, { recursive: true, force: true });
        }
      } finally {
        await fresh.end();
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 120_000);
});
