// AuditLedger.appendPipelined (hash and sign the next batch while the previous commits): the
// same ledger as appending in turn, whatever happens to the batch it was sealed on.
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from '@bulwark/store';
// The fixture is the package's own test support (source, not dist): take the ledger from the same place.
import { AuditLedger, prepareEvent, type AppendResult, type PreparedEvent } from '../services/audit-ledger/src/ledger.js';
import { ORIGIN, crypto, makeEvents, openTestLedger, rightfulProducer, type LedgerFixture } from '../services/audit-ledger/src/ledger.fixture.js';
import { verifyLedger } from '../services/audit-ledger/src/verify.js';

const prepared = (n: number): PreparedEvent[] => makeEvents(n).map((e) => prepareEvent(e, rightfulProducer(e)));

describe('pipelined appends', () => {
  let fx: LedgerFixture | undefined;
  afterEach(async () => {
    await fx?.close();
    fx = undefined;
  });

  async function expectSound(f: LedgerFixture, ids: readonly string[]): Promise<void> {
    const rows = await f.db.selectFrom('events').select(['event_id', 'seq']).orderBy('seq').execute();
    expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i));
    expect(new Set(rows.map((r) => r.event_id))).toEqual(new Set(ids));
    expect(await verifyLedger(f.db, { crypto, origin: ORIGIN, logKey: f.ledger.verifierKey })).toMatchObject({ ok: true, size: ids.length });
  }

  it('appends overlapping batches in call order, deduplicating ids of the batch still committing', async () => {
    fx = await openTestLedger('pipe_order', { checkpointEvery: 100 });
    const batches: PreparedEvent[][] = [];
    for (let i = 0; i < 12; i++) {
      const fresh = prepared(40);
      // Each batch repeats a few events of the one before it (a redelivery while that one commits).
      batches.push(i === 0 ? fresh : [...batches[i - 1]!.slice(0, 3), ...fresh, fresh[0]!]);
    }
    const results = await Promise.all(batches.map((b) => fx!.ledger.appendPipelined(b)));
    let size = 0;
    for (const [i, r] of results.entries()) {
      expect(r.appended.map((e) => e.seq)).toEqual(Array.from({ length: 40 }, (_, k) => size + k));
      expect(r.duplicates).toHaveLength(i === 0 ? 0 : 4);
      size += 40;
    }
    await expectSound(fx, [...new Set(batches.flat().map((e) => e.eventId))]);
    expect(await fx.db.selectFrom('checkpoints').select('tree_size').execute()).toHaveLength(4);
  });

  it('recomputes when another instance appended in between', async () => {
    fx = await openTestLedger('pipe_other');
    const other = new AuditLedger(fx.db, { crypto, origin: ORIGIN, signer: fx.signer, checkpointEvery: 0 });
    const mine = Array.from({ length: 6 }, () => prepared(25));
    const theirs = Array.from({ length: 6 }, () => prepared(10));
    const pending: Promise<AppendResult>[] = [];
    for (let i = 0; i < 6; i++) {
      pending.push(fx.ledger.appendPipelined(mine[i]!));
      pending.push(other.appendPrepared(theirs[i]!));
    }
    await Promise.all(pending);
    await expectSound(fx, [...mine.flat(), ...theirs.flat()].map((e) => e.eventId));
  });

  it('loses nothing when the batch it was sealed on fails to commit', async () => {
    fx = await openTestLedger('pipe_fail');
    // A batch holding an event of agent.fail fails in the database (as a lost connection would).
    await sql`create function refuse() returns trigger language plpgsql as $$ begin if new.agent_id = 'agent.fail' then raise exception 'refused'; end if; return new; end $$`.execute(fx.db);
    await sql`create trigger refuse before insert on events for each row execute function refuse()`.execute(fx.db);
    const first = prepared(20);
    const doomedEvents = [...prepared(10), prepareEvent({ ...makeEvents(1)[0]!, agentId: 'agent.fail', eventType: 'agent.started' }, 'agent.fail')];
    // The batch after the doomed one repeats its first five events: they must be appended, not taken as committed.
    const after = [...doomedEvents.slice(0, 5), ...prepared(15)];
    const last = prepared(5);
    const settled = await Promise.allSettled([first, doomedEvents, after, last].map((batch) => fx!.ledger.appendPipelined(batch)));
    expect(settled.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(settled[2]).toMatchObject({ status: 'fulfilled', value: { duplicates: [] } });
    await expectSound(fx, [...first, ...after, ...last].map((e) => e.eventId));
  });
});
