import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditLedger,
  formatVerifierKey,
  migrateLedger,
  signerKey,
  verifyConsistency,
  verifyInclusion,
  type LedgerDatabase,
} from '@bulwark/audit-ledger';
import { createCryptoProvider, fromHex } from '@bulwark/crypto';
import { newEventId, type AuditEvent } from '@bulwark/events';
import { closeDatabase, createDatabase, sql, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema, type TestSchema } from '@bulwark/testkit';
import type { CommandIO } from '../io.js';
import { run } from '../main.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const crypto = createCryptoProvider('node');
const ORIGIN = 'bulwark.test/cli-audit';
const signer = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
const VKEY = formatVerifierKey({ name: signer.name, keyId: signer.keyId, publicKey: signer.publicKey, type: signer.type });
const OLD = Date.UTC(2018, 3, 1);
const RECENT = Date.now() - 3 * 86_400_000;

interface TestLedger {
  readonly schema: TestSchema;
  readonly db: Kysely<LedgerDatabase>;
  readonly ledger: AuditLedger;
}

/** 25 events: 0..19 old PHI accesses (one without a user id, seq 4), 20..24 recent; checkpoints every 10. */
function makeEvents(): AuditEvent[] {
  return Array.from({ length: 25 }, (_, i): AuditEvent => {
    const details: AuditEvent['details'] =
      i === 4 ? { classification: 'phi', resource: `patient/${i}` } : { classification: 'phi', user_id: `u${i}`, resource: `patient/${i}`, purpose: 'treatment', decision: 'allow', minimum_necessary: true };
    return { eventId: newEventId(), timestamp: (i < 20 ? OLD : RECENT) + i, agentId: 'agent.clinic', eventType: 'data.accessed', details };
  });
}

async function openLedger(prefix: string, events: readonly AuditEvent[]): Promise<TestLedger> {
  const schema = withTestSchema(prefix);
  const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  const ledger = new AuditLedger(db, { crypto, origin: ORIGIN, signer, checkpointEvery: 10 });
  for (let at = 0; at < events.length; at += 5) await ledger.append(events.slice(at, at + 5).map((event) => ({ producer: event.agentId, event })));
  return { schema, db, ledger };
}

let dir: string;
let main: TestLedger;
const events = makeEvents();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-audit-'));
  main = await openLedger('cli_audit', events);
  // What the service does every T ms: a checkpoint of the head (25), beyond the automatic ones (10, 20).
  await main.ledger.checkpoint();
});

afterAll(async () => {
  await closeDatabase(main.db);
  await main.schema.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function bulwark(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env, cwd: dir };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

const on = (schema: TestSchema): string[] => ['--database', databaseUrl(), '--schema', schema.name, '--public-key', VKEY];

describe('bulwark audit verify', () => {
  it('exits 0 on a clean ledger, as text and as JSON', async () => {
    const text = await bulwark(['audit', 'verify', ...on(main.schema)]);
    expect(text).toMatchObject({ code: 0, stderr: '' });
    expect(text.stdout).toMatch(/^ok: 25 events verified in schema t_cli_audit_\w+ at postgres:\/\/\S+: hashes, links, signatures, tree nodes, 3 stored and 0 held checkpoints; root \S+\n$/);
    const json = await bulwark(['audit', 'verify', '--json', ...on(main.schema)]);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, size: 25, checkpoints_checked: 3 });
  });

  it('takes the key from a file, BULWARK_AUDIT_PUBLIC_KEY or a raw public key with the origin, and DATABASE_URL', async () => {
    writeFileSync(join(dir, 'ledger.vkey'), `${VKEY}\n`);
    const fromFile = await bulwark(['audit', 'verify', '--schema', main.schema.name, '--public-key', 'ledger.vkey'], { DATABASE_URL: databaseUrl() });
    expect(fromFile.code).toBe(0);
    const fromEnv = await bulwark(['audit', 'verify'], { DATABASE_URL: databaseUrl(), SYMBIONT_LEDGER_SCHEMA: main.schema.name, BULWARK_AUDIT_PUBLIC_KEY: VKEY });
    expect(fromEnv.code).toBe(0);
    // The service identity's raw public key, named by the origin (hex or base64).
    const raw = ['audit', 'verify', '--database', databaseUrl(), '--schema', main.schema.name, '--public-key'];
    expect(await bulwark([...raw, Buffer.from(signer.publicKey).toString('hex'), '--origin', ORIGIN])).toMatchObject({ stderr: '', code: 0 });
    expect(await bulwark([...raw, Buffer.from(signer.publicKey).toString('base64')], { SYMBIONT_LEDGER_ORIGIN: ORIGIN })).toMatchObject({ stderr: '', code: 0 });
    const wrongOrigin = await bulwark([...raw, Buffer.from(signer.publicKey).toString('hex')]);
    expect(wrongOrigin.code).toBe(1);
    expect(wrongOrigin.stderr).toMatch(/^bulwark: audit verify: stored checkpoint 10: /);
  });

  it('exits 1 naming the first bad seq of a tampered row', async () => {
    const original = await main.db.selectFrom('events').select('details').where('seq', '=', 7n).executeTakeFirstOrThrow();
    await main.db.updateTable('events').set({ details: '{"classification":"phi","user_id":"mallory"}' }).where('seq', '=', 7n).execute();
    try {
      const result = await bulwark(['audit', 'verify', ...on(main.schema)]);
      expect(result).toEqual({ code: 1, stdout: '', stderr: 'bulwark: audit verify: seq 7: event_hash mismatch\n' });
      const json = await bulwark(['audit', 'verify', '--json', ...on(main.schema)]);
      expect(JSON.parse(json.stdout)).toEqual({ ok: false, seq: 7, problem: 'event_hash mismatch', message: 'seq 7: event_hash mismatch' });
    } finally {
      await main.db.updateTable('events').set({ details: original.details }).where('seq', '=', 7n).execute();
    }
  });

  it('exits 1 when the ledger is truncated behind a checkpoint the user kept', async () => {
    const held = await bulwark(['audit', 'checkpoint', ...on(main.schema)]);
    expect(held.code).toBe(0);
    expect(held.stdout).toMatch(new RegExp(`^${ORIGIN}\n25\n`));
    writeFileSync(join(dir, 'held-25.txt'), held.stdout);
    // The same key and events, cut consistently after 20: nodes, head and checkpoints all agree.
    const cut = await openLedger('cli_audit_cut', events.slice(0, 20));
    try {
      expect((await bulwark(['audit', 'verify', ...on(cut.schema)])).code).toBe(0);
      const result = await bulwark(['audit', 'verify', '--checkpoint', 'held-25.txt', ...on(cut.schema)]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('bulwark: audit verify: truncated: seq 20 missing: the ledger ends after 20 events but held checkpoint 1 (size 25) covers 25\n');
      expect((await bulwark(['audit', 'verify', '--checkpoint', 'held-25.txt', ...on(main.schema)])).stdout).toContain('3 stored and 1 held checkpoints');
    } finally {
      await closeDatabase(cut.db);
      await cut.schema.drop();
    }
  });

  it('rejects bad arguments with exit 2 and one line', async () => {
    const cases: [string[], RegExp][] = [
      [['audit', 'verify', '--schema', main.schema.name], /^bulwark: no ledger public key: pass --public-key/],
      [['audit', 'verify', ...on(main.schema), '--public-key', 'nope+zz'], /^bulwark: --public-key: "nope\+zz" is neither a verifier key/],
      [['audit', 'verify', '--database', 'mysql://x/y', '--schema', 's', '--public-key', VKEY], /^bulwark: --database \/ --schema: /],
      [['audit', 'verify', '--database', databaseUrl(), '--schema', 'no_ledger_here', '--public-key', VKEY], /^bulwark: schema no_ledger_here at .*: no audit ledger there/],
      [['audit', 'verify', ...on(main.schema), '--checkpoint', 'missing.txt'], /^bulwark: --checkpoint missing.txt: cannot be read \(ENOENT\)/],
      [['audit', 'proof', ...on(main.schema), '--seq', 'x1'], /^bulwark: --seq "x1": not a sequence number/],
      [['audit', 'report', ...on(main.schema), '--framework', 'hipaa', '--from', '2026-13-01', '--to', '2027-01-01'], /^bulwark: --from: "2026-13-01" is not a date/],
      [['audit', 'report', ...on(main.schema), '--framework', 'iso27001', '--from', '2026-01-01', '--to', '2027-01-01'], /^bulwark: framework "iso27001": not one of hipaa, gdpr, sox/],
      [['audit', 'export', ...on(main.schema), '--format', 'csv'], /^bulwark: --format "csv": the only export format is jsonl/],
    ];
    for (const [argv, message] of cases) {
      const result = await bulwark(argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    const held = join(dir, 'bad-held.txt');
    writeFileSync(held, 'not a checkpoint\n');
    const bad = await bulwark(['audit', 'verify', ...on(main.schema), '--checkpoint', held]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^bulwark: held checkpoint 1 does not verify/);
    expect((await bulwark(['audit', 'verify', '--bogus'])).code).toBe(2);
  });
});

describe('bulwark audit export, proof, checkpoint', () => {
  it('exports every event up to the latest checkpoint, and the file verifies offline (and tampering is named)', async () => {
    const exported = await bulwark(['audit', 'export', '--format', 'jsonl', '--out', 'ledger.jsonl', ...on(main.schema)]);
    expect(exported).toMatchObject({ code: 0, stdout: '' });
    expect(exported.stderr).toBe('exported seq 0..24 (25 events) up to the signed checkpoint of size 25 to ledger.jsonl\n');
    const lines = readFileSync(join(dir, 'ledger.jsonl'), 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(27);
    const stdout = await bulwark(['audit', 'export', ...on(main.schema)]);
    expect(stdout.stdout.trimEnd().split('\n')).toEqual(lines);

    const ok = await bulwark(['audit', 'verify', '--file', 'ledger.jsonl', '--public-key', VKEY]);
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(/^ok: ledger.jsonl: 25 events \(seq 0\.\.24\) verified against the signed checkpoint of size 25/);

    const record = JSON.parse(lines[10]!) as { seq: number; agent_id: string };
    expect(record.seq).toBe(9);
    lines[10] = JSON.stringify({ ...record, agent_id: 'agent.mallory' });
    writeFileSync(join(dir, 'tampered.jsonl'), `${lines.join('\n')}\n`);
    const bad = await bulwark(['audit', 'verify', '--file', 'tampered.jsonl', '--public-key', VKEY, '--json']);
    expect(bad.code).toBe(1);
    // The same `problem` field as the online form.
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, seq: 9, problem: 'event_hash mismatch', message: 'seq 9: event_hash mismatch' });
    expect(bad.stderr).toBe('bulwark: audit verify: tampered.jsonl: seq 9: event_hash mismatch\n');

    const otherKey = formatVerifierKey(signerKey(crypto, ORIGIN, crypto.randomBytes(32)));
    expect((await bulwark(['audit', 'verify', '--file', 'ledger.jsonl', '--public-key', otherKey])).code).toBe(1);
  });

  it('prints an inclusion proof that verifies against the printed checkpoint root', async () => {
    const result = await bulwark(['audit', 'proof', '--seq', '13', ...on(main.schema)]);
    expect(result.code).toBe(0);
    const proof = JSON.parse(result.stdout) as { seq: number; tree_size: number; leaf_hash: string; root_hash: string; proof: string[]; checkpoint: string };
    expect(proof).toMatchObject({ seq: 13, tree_size: 25 });
    expect(proof.checkpoint).toContain(`${ORIGIN}\n25\n${proof.root_hash}\n`);
    expect(() => verifyInclusion(crypto, 13, 25, fromHex(proof.leaf_hash), proof.proof.map((p) => fromHex(p)), Buffer.from(proof.root_hash, 'base64'))).not.toThrow();
    const beyond = await bulwark(['audit', 'proof', '--seq', '25', ...on(main.schema)]);
    expect(beyond.code).toBe(1);
    expect(beyond.stderr).toBe('bulwark: inclusion proof: seq 25 is not covered by the latest checkpoint (size 25); wait for the next one\n');
  });

  it('exports the canonical text that was hashed: sha-256 of an event line\'s fields rebuilds its event_hash', async () => {
    const out = await bulwark(['audit', 'export', ...on(main.schema)]);
    const record = JSON.parse(out.stdout.split('\n')[1]!) as { details: unknown; details_jcs: string };
    expect(JSON.parse(record.details_jcs)).toEqual(record.details);
    const stored = await main.db.selectFrom('events').select('details').where('seq', '=', 0n).executeTakeFirstOrThrow();
    expect(record.details_jcs).toBe(stored.details);
  });

  it('names the seq of a row whose details are not JSON, exits 1, and leaves no file behind', async () => {
    const original = await main.db.selectFrom('events').select('details').where('seq', '=', 12n).executeTakeFirstOrThrow();
    await main.db.updateTable('events').set({ details: '{"a":1}x' }).where('seq', '=', 12n).execute();
    try {
      const result = await bulwark(['audit', 'export', '--out', 'broken.jsonl', ...on(main.schema)]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^bulwark: seq 12: stored details are not JSON \(.*\): the row was altered outside the ledger; run bulwark audit verify\n$/);
      expect(readdirSync(dir).filter((f) => f.startsWith('broken.jsonl'))).toEqual([]);
    } finally {
      await main.db.updateTable('events').set({ details: original.details }).where('seq', '=', 12n).execute();
    }
  });

  it('prints an inclusion proof at a given checkpoint size, and consistency proofs between two sizes', async () => {
    const at = await bulwark(['audit', 'proof', '--seq', '3', '--size', '10', ...on(main.schema)]);
    expect(at.code, at.stderr).toBe(0);
    const inclusion = JSON.parse(at.stdout) as { tree_size: number; leaf_hash: string; root_hash: string; proof: string[] };
    expect(inclusion.tree_size).toBe(10);
    expect(() => verifyInclusion(crypto, 3, 10, fromHex(inclusion.leaf_hash), inclusion.proof.map((p) => fromHex(p)), Buffer.from(inclusion.root_hash, 'base64'))).not.toThrow();

    const c = await bulwark(['audit', 'proof', '--from', '10', '--to', '20', ...on(main.schema)]);
    expect(c.code, c.stderr).toBe(0);
    const consistency = JSON.parse(c.stdout) as { size1: number; size2: number; root_hash1: string; root_hash2: string; proof: string[]; checkpoint2: string };
    expect(consistency).toMatchObject({ size1: 10, size2: 20 });
    const roots = [Buffer.from(consistency.root_hash1, 'base64'), Buffer.from(consistency.root_hash2, 'base64')] as const;
    expect(() => verifyConsistency(crypto, 10, 20, consistency.proof.map((p) => fromHex(p)), roots[0], roots[1])).not.toThrow();
    const latest = JSON.parse((await bulwark(['audit', 'proof', '--from', '10', ...on(main.schema)])).stdout) as { size2: number };
    expect(latest.size2).toBe(25);

    const none = await bulwark(['audit', 'proof', '--from', '7', ...on(main.schema)]);
    expect(none).toMatchObject({ code: 1, stderr: 'bulwark: no signed checkpoint of size 7 is stored (bulwark audit checkpoint shows the latest)\n' });
    expect((await bulwark(['audit', 'proof', '--seq', '1', '--from', '10', ...on(main.schema)])).code).toBe(2);
  });

  it('prints the latest checkpoint as JSON', async () => {
    const result = await bulwark(['audit', 'checkpoint', '--json', ...on(main.schema)]);
    expect(JSON.parse(result.stdout)).toMatchObject({ tree_size: 25 });
  });
});

describe('bulwark audit report', () => {
  const period = ['--from', '2018-04-01', '--to', '2018-04-02'];

  it('exits 1 for a non-compliant period, naming the offending seqs (markdown and JSON)', async () => {
    const md = await bulwark(['audit', 'report', '--framework', 'hipaa', ...period, ...on(main.schema)]);
    expect(md.code).toBe(1);
    expect(md.stdout).toContain('# HIPAA compliance report');
    expect(md.stdout).toContain('data.accessed events without details.user_id; seq 4');
    expect(md.stdout).toContain('| data.accessed | 20 |');
    expect(md.stderr).toBe('bulwark: audit report: HIPAA: non-compliant, 4 findings\n');
    const json = await bulwark(['audit', 'report', '--framework', 'hipaa', '--format', 'json', ...period, ...on(main.schema)]);
    const report = JSON.parse(json.stdout) as { compliant: boolean; chain: { ok: boolean }; findings: { requirement: string; seqs: number[] }[] };
    expect(report.compliant).toBe(false);
    expect(report.chain.ok).toBe(true);
    expect(report.findings.filter((f) => f.seqs.includes(4)).map((f) => f.requirement).sort()).toEqual(['phi-access-authorised', 'phi-access-logging', 'phi-access-logging', 'phi-minimum-necessary']);
  });

  it('exits 0 for a compliant period under a custom framework file, and rejects a bad file with file:key', async () => {
    writeFileSync(
      join(dir, 'clinic.toml'),
      'id = "clinic"\nname = "Clinic"\nretention_days = 365\n[[requirements]]\nid = "reads"\ndescription = "reads name a resource"\nevent_types = ["data.accessed"]\nrequired_details = ["resource"]\nmin_events = 20\n',
    );
    const ok = await bulwark(['audit', 'report', '--framework', 'clinic.toml', '--format', 'json', ...period, ...on(main.schema)]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ compliant: true, totalEvents: 20 });
    writeFileSync(join(dir, 'broken.toml'), 'id = "b"\nname = "B"\nretention_days = 365\n[[requirements]]\nid = "r"\ndescription = "d"\nevent_types = ["data.read"]\n');
    const bad = await bulwark(['audit', 'report', '--framework', 'broken.toml', ...period, ...on(main.schema)]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^bulwark: \/.*broken\.toml: requirements\[0\]\.event_types\[0\]: "data\.read" is not a known event type/);
  });
});

describe('bulwark audit archive', () => {
  it('refuses inside the retention period, archives older events, and the rest still verifies (and tampering is still caught)', async () => {
    const archiveLedger = await openLedger('cli_audit_archive', makeEvents());
    const args = on(archiveLedger.schema);
    try {
      const refused = await bulwark(['audit', 'archive', '--before', new Date(RECENT).toISOString().slice(0, 10), '--out', 'refused.jsonl', ...args]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^bulwark: archive refused: \S+ is inside the 2190-day retention period; only events before \S+ may be archived\n$/);
      const sox = await bulwark(['audit', 'archive', '--before', '2020-01-01', '--framework', 'sox', '--out', 'refused.jsonl', ...args]);
      expect(sox.stderr).toMatch(/inside the 2555-day retention period/);
      const viaEnv = await bulwark(['audit', 'archive', '--before', '2023-01-01', '--out', 'refused.jsonl', ...args], { SYMBIONT_AUDIT_RETENTION_DAYS: '36500' });
      expect(viaEnv.stderr).toMatch(/inside the 36500-day retention period/);

      const done = await bulwark(['audit', 'archive', '--before', '2019-01-01', '--out', 'archive-2018.jsonl', ...args]);
      expect(done).toMatchObject({ code: 0, stderr: '' });
      expect(done.stdout).toBe('archived seq 0..19 (20 events) to archive-2018.jsonl, verified, and pruned; the ledger now starts at seq 20, anchored by checkpoint 20 (retention 2190 days)\n');
      const verified = await bulwark(['audit', 'verify', ...args]);
      expect(verified.code).toBe(0);
      expect(verified.stdout).toContain('5 events (seq 20..24; 0..19 archived, anchored by checkpoint 20) verified');
      expect((await bulwark(['audit', 'verify', '--file', 'archive-2018.jsonl', '--public-key', VKEY])).code).toBe(0);
      const again = await bulwark(['audit', 'archive', '--before', '2019-01-01', '--out', 'again.jsonl', ...args]);
      expect(again.stdout).toMatch(/^nothing to archive: /);

      await sql`update events set agent_id = 'agent.mallory' where seq = 23`.execute(archiveLedger.db);
      const tampered = await bulwark(['audit', 'verify', ...args]);
      expect(tampered).toMatchObject({ code: 1, stderr: 'bulwark: audit verify: seq 23: event_hash mismatch\n' });
    } finally {
      await closeDatabase(archiveLedger.db);
      await archiveLedger.schema.drop();
    }
  });
});

describe('bulwark audit (real process)', () => {
  const bin = join(repoRoot, 'libs/cli/dist/bin.js');

  beforeAll(() => {
    execFileSync('npx', ['tsc', '-b', 'libs/cli'], { cwd: repoRoot, stdio: 'pipe' });
  }, 180_000);

  it('verify exits 0 on the clean ledger and 1 naming the seq after tampering', async () => {
    const spawn = (): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, [bin, 'audit', 'verify', ...on(main.schema)], { cwd: dir, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' });
    const clean = spawn();
    expect(clean.stderr).toBe('');
    expect(clean.status).toBe(0);
    expect(clean.stdout).toMatch(/^ok: 25 events verified/);
    await sql`update events set signature = ${new Uint8Array(64)} where seq = 16`.execute(main.db);
    try {
      const bad = spawn();
      expect(bad.status).toBe(1);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toBe('bulwark: audit verify: seq 16: signature invalid\n');
    } finally {
      // The test holds the ledger key, so it can put the row's real signature back.
      const row = await main.db.selectFrom('events').select('event_hash').where('seq', '=', 16n).executeTakeFirstOrThrow();
      await main.db.updateTable('events').set({ signature: crypto.ed25519.sign(signer.secretKey, new Uint8Array(row.event_hash)) }).where('seq', '=', 16n).execute();
    }
    expect(spawn().status).toBe(0);
  }, 60_000);
});
