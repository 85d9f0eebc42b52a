import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newEventId, type AuditEvent } from '@bulwark/events';
import { ArchiveError, DAY_MS, archiveBefore } from './archive.js';
import { LedgerReader } from './archive-reader.js';
import { verifyExport } from './export.js';
import { signCheckpoint } from './note/checkpoint.js';
import { ORIGIN, crypto, openTestLedger, produced, type LedgerFixture } from './ledger.fixture.js';
import { verifyLedger } from './verify.js';

const OLD = Date.UTC(2018, 0, 1);
const NEW = Date.UTC(2025, 0, 1);
const NOW = new Date(Date.UTC(2032, 0, 1));

function events(n: number, timestamp: number): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => ({ eventId: newEventId(), timestamp: timestamp + i, agentId: 'agent.a', eventType: 'data.accessed', details: { i } }));
}

describe('archive', () => {
  let fx: LedgerFixture;
  let dir: string;
  const keys = (): { crypto: typeof crypto; origin: string; logKey: LedgerFixture['ledger']['verifierKey'] } => ({ crypto, origin: ORIGIN, logKey: fx.ledger.verifierKey });

  beforeAll(async () => {
    fx = await openTestLedger('archive', { checkpointEvery: 10 });
    dir = await mkdtemp(join(tmpdir(), 'bulwark-archive-'));
    // Batches of 5 with a checkpoint every 10: checkpoints at 10, 20 and 30; events 0..24 old, 25..34 new.
    for (let batch = 0; batch < 7; batch++) await fx.ledger.append(produced(events(5, batch < 5 ? OLD + batch * 5 : NEW + batch * 5)));
  });
  afterAll(async () => {
    await fx.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses to delete anything inside the retention period, and writes nothing', async () => {
    const out = join(dir, 'refused.jsonl');
    const attempt = archiveBefore(fx.db, { ...keys(), before: new Date(NOW.getTime() - DAY_MS), retentionDays: 2190, out, now: NOW });
    await expect(attempt).rejects.toThrow(ArchiveError);
    await expect(attempt).rejects.toThrow(/inside the 2190-day retention period/);
    await expect(stat(out)).rejects.toThrow();
    expect((await fx.ledger.events(0, 1))[0]!.seq).toBe(0);
  });

  it('archives to the last checkpoint before the date, prunes, and the rest still verifies', async () => {
    const held = (await fx.ledger.checkpointAt(10))!.note;
    const out = join(dir, 'a1.jsonl');
    const result = await archiveBefore(fx.db, { ...keys(), before: new Date(NEW), retentionDays: 2190, out, now: NOW });
    expect(result).toMatchObject({ archived: 20, fromSeq: 0, toSeq: 20, file: out });
    expect((await fx.ledger.events(0, 1))[0]!.seq).toBe(20);

    const report = await verifyLedger(fx.db, { ...keys(), heldCheckpoints: [held] });
    expect(report).toMatchObject({ ok: true, size: 35 });

    // The archive verifies offline, from the file alone.
    const offline = await verifyExport(createInterface({ input: createReadStream(out), crlfDelay: Infinity }), keys());
    expect(offline).toMatchObject({ ok: true, fromSeq: 0, size: 20, events: 20 });
    expect((await readFile(out, 'utf8')).trim().split('\n')).toHaveLength(22);

    // The ledger reader still serves proofs and exports from the anchor.
    const reader = new LedgerReader(fx.db, keys());
    const cp = (await reader.latestCheckpoint())!;
    expect(cp.size).toBe(30);
    await expect(reader.inclusionProof(25)).resolves.toMatchObject({ seq: 25, treeSize: 30 });
    await expect(reader.inclusionProof(3)).rejects.toThrow(/archived/);
    const tail = await verifyExport(await collect(reader.exportLines(cp, 20)), keys());
    expect(tail).toMatchObject({ ok: true, fromSeq: 20, size: 30, events: 10 });
  });

  it('a second archive has nothing more to prune before the date, and never overwrites a file', async () => {
    const again = await archiveBefore(fx.db, { ...keys(), before: new Date(NEW), retentionDays: 2190, out: join(dir, 'a2.jsonl'), now: NOW });
    expect(again.archived).toBe(0);
    await expect(archiveBefore(fx.db, { ...keys(), before: new Date(NEW), retentionDays: 2190, out: join(dir, 'a1.jsonl'), now: NOW })).rejects.toThrow(/already exists/);
  });

  it('still detects tampering of the remaining chain and of the anchor', async () => {
    const expectFailure = async (edit: string, seq: number | undefined, message: RegExp): Promise<void> => {
      await fx.db.transaction().execute(async (trx) => {
        await sqlRaw(trx, edit);
        const report = await verifyLedger(trx, keys());
        expect(report.ok).toBe(false);
        if (!report.ok) {
          expect(report.seq).toBe(seq);
          expect(report.message).toMatch(message);
        }
        throw new Rollback();
      }).catch((err: unknown) => {
        if (!(err instanceof Rollback)) throw err;
      });
    };
    await expectFailure(`update events set details = '{"i":99}' where seq = 22`, 22, /seq 22: event_hash mismatch/);
    // A checkpoint from before the boundary still pins the archived history: a forked one is caught by consistency.
    const fork = signCheckpoint(crypto, { origin: ORIGIN, size: 10, rootHash: crypto.randomBytes(32), extensions: [] }, [fx.signer]);
    const forked = await verifyLedger(fx.db, { ...keys(), heldCheckpoints: [fork] });
    expect(forked).toMatchObject({ ok: false, problem: 'checkpoint mismatch' });
    expect(!forked.ok && forked.message).toMatch(/^held checkpoint 1 \(size 10\): not consistent with the archive anchor at 20/);
    await expectFailure(`update tree_nodes set hash = sha256(hash) where level = 2 and idx = 4`, undefined, /archive anchor at 20: the stored tree nodes do not rebuild/);
    await expectFailure(`delete from events where seq < 25`, 0, /gap: seq 0..24 missing and no stored checkpoint/);
    await expectFailure(`delete from events where seq = 20`, 0, /gap: seq 0\.\.20 missing/);
  });
});

class Rollback extends Error {}

async function sqlRaw(trx: { executeQuery: LedgerFixture['db']['executeQuery'] }, text: string): Promise<void> {
  const { sql } = await import('kysely');
  await trx.executeQuery(sql.raw(text).compile(trx as never));
}

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

describe('archive anchor on a tampered first seq', () => {
  it('reports a first seq moved beyond 2^53 as a gap, not a crash', async () => {
    const fx = await openTestLedger('anchor_far', { checkpointEvery: 2 });
    try {
      await fx.ledger.append(produced(events(1, OLD)));
      await fx.db.updateTable('events').set({ seq: 2n ** 60n }).where('seq', '=', 0n).execute();
      const report = await verifyLedger(fx.db, { crypto, origin: ORIGIN, logKey: fx.ledger.verifierKey });
      expect(report).toMatchObject({ ok: false, problem: 'gap', seq: 0, message: 'gap: seq 0 missing' });
    } finally {
      await fx.close();
    }
  });
});
