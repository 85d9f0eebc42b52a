/**
 * Tampering with the stored ledger, against the real PostgreSQL: every edit runs in a
 * transaction, verify runs inside the same transaction, and the transaction is rolled
 * back, so each edit sees the pristine ledger. Verify must fail and name the right
 * first sequence number every time.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeEventHash } from '@bulwark/events';
import { ORIGIN, crypto, makeEvents, openTestLedger, produced, type LedgerFixture } from './ledger.fixture.js';
import { CompactRange } from './merkle/compact-range.js';
import { leafHash } from './merkle/hash.js';
import { signerKey } from './note/keys.js';
import { bytes, hashedFieldsOfRow, joinEdge } from './store/rows.js';
import type { LedgerDatabase } from './store/schema.js';
import { verifyLedger, type VerifyReport } from './verify.js';

const SIZE = 200;
const EDITS = 1000;
const SEED = Number(process.env['TAMPER_SEED'] ?? 20261126);
/** Concurrent transactions (the store's pool holds 5 connections). */
const LANES = 4;

type Trx = Transaction<LedgerDatabase>;

let fx: LedgerFixture;
let heldNote: string;

beforeAll(async () => {
  fx = await openTestLedger('tamper', { checkpointEvery: 50 });
  for (let i = 0; i < SIZE; i += 50) await fx.ledger.append(produced(makeEvents(50)));
  heldNote = (await fx.ledger.checkpoint()).note;
});
afterAll(async () => {
  await fx?.close();
});

const options = () => ({ crypto, origin: ORIGIN, logKey: fx.ledger.verifierKey });

class Rollback extends Error {
  constructor(readonly report: VerifyReport) {
    super('rollback');
  }
}

/** Applies `edit` and verifies inside one transaction, then rolls it back. */
async function verifyUnder(edit: (trx: Trx) => Promise<void>, held: readonly string[] = []): Promise<VerifyReport> {
  try {
    await fx.db.transaction().execute(async (trx) => {
      await edit(trx);
      throw new Rollback(await verifyLedger(trx, { ...options(), heldCheckpoints: held }));
    });
  } catch (err) {
    if (err instanceof Rollback) return err.report;
    throw err;
  }
  throw new Error('unreachable: the transaction always rolls back');
}

/**
 * Two lanes editing overlapping rows (a swap against a shift, say) can deadlock; PostgreSQL
 * then aborts one transaction (SQLSTATE 40P01), which is simply run again.
 */
async function retryOnDeadlock<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if ((err as { code?: unknown }).code !== '40P01' || attempt >= 5) throw err;
    }
  }
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with TAMPER_SEED. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

async function row(trx: Trx, seq: number) {
  return trx.selectFrom('events').selectAll().where('seq', '=', BigInt(seq)).executeTakeFirstOrThrow();
}

/** One character of `text` (at a fraction `where` of its length) replaced by a different printable ASCII character. */
function editChar(text: string, where: number, code: number): string {
  const at = Math.floor(where * text.length);
  let replacement = String.fromCharCode(0x21 + code);
  if (replacement === text[at]) replacement = replacement === 'A' ? 'B' : 'A';
  return text.slice(0, at) + replacement + text.slice(at + 1);
}

type Edit = { kind: string; expected: number; apply: (trx: Trx) => Promise<void> };

function randomEdit(pick: (n: number) => number): Edit {
  const i = pick(SIZE);
  const kinds = ['event_id', 'timestamp_ms', 'producer', 'agent_id', 'event_type', 'details', 'previous_hash', 'event_hash', 'signature', 'seq', 'delete', 'insert_end', 'insert_middle', 'swap'] as const;
  const kind = kinds[pick(kinds.length)]!;
  switch (kind) {
    case 'event_id':
      return { kind, expected: i, apply: async (trx) => void (await trx.updateTable('events').set({ event_id: randomUUID() }).where('seq', '=', BigInt(i)).execute()) };
    case 'timestamp_ms': {
      const delta = (1 + pick(1_000_000)) * (pick(2) === 0 ? 1 : -1);
      return { kind, expected: i, apply: async (trx) => void (await sql`update events set timestamp_ms = timestamp_ms + ${delta} where seq = ${i}`.execute(trx)) };
    }
    case 'producer':
    case 'agent_id':
    case 'event_type':
    case 'details': {
      // Every random choice is drawn when the edit is made, not when it runs, so lanes running in parallel replay the same edits.
      const where = pick(1_000_000) / 1_000_000;
      const code = pick(94);
      return {
        kind,
        expected: i,
        apply: async (trx) => {
          const before = (await row(trx, i))[kind];
          await trx.updateTable('events').set({ [kind]: editChar(before, where, code) }).where('seq', '=', BigInt(i)).execute();
        },
      };
    }
    case 'previous_hash':
    case 'event_hash':
    case 'signature': {
      const length = kind === 'signature' ? 64 : 32;
      const at = pick(length);
      const bit = 1 << pick(8);
      return {
        kind,
        expected: i,
        apply: async (trx) => void (await sql`update events set ${sql.ref(kind)} = set_byte(${sql.ref(kind)}, ${at}, get_byte(${sql.ref(kind)}, ${at}) # ${bit}) where seq = ${i}`.execute(trx)),
      };
    }
    case 'seq':
      return { kind, expected: i, apply: async (trx) => void (await sql`update events set seq = seq + 1000000 where seq = ${i}`.execute(trx)) };
    case 'delete':
      return { kind, expected: i, apply: async (trx) => void (await trx.deleteFrom('events').where('seq', '=', BigInt(i)).execute()) };
    case 'insert_end':
      // A well-formed event appended after the last one, hashed and linked correctly but signed by another key.
      return {
        kind,
        expected: SIZE,
        apply: async (trx) => {
          const model = await row(trx, i);
          const last = await row(trx, SIZE - 1);
          const forged = { ...model, seq: BigInt(SIZE), event_id: randomUUID(), previous_hash: bytes(last.event_hash) };
          const eventHash = computeEventHash(crypto, hashedFieldsOfRow(forged));
          const signature = crypto.ed25519.sign(signerKey(crypto, ORIGIN, crypto.randomBytes(32)).secretKey, eventHash);
          await trx.insertInto('events').values({ ...forged, event_hash: eventHash, signature }).execute();
        },
      };
    case 'insert_middle': {
      // Make room at seq i by shifting the rest up, then put a copy of another event there.
      const source = pick(SIZE);
      return {
        kind,
        expected: i,
        apply: async (trx) => {
          const model = await row(trx, source);
          await sql`update events set seq = seq + 1000000 where seq >= ${i}`.execute(trx);
          await sql`update events set seq = seq - 1000000 + 1 where seq >= 1000000`.execute(trx);
          await trx.insertInto('events').values({ ...model, seq: BigInt(i), event_id: randomUUID() }).execute();
        },
      };
    }
    case 'swap': {
      let j = pick(SIZE - 1);
      if (j >= i) j += 1;
      return {
        kind,
        expected: Math.min(i, j),
        apply: async (trx) => {
          const a = await row(trx, i);
          const b = await row(trx, j);
          await trx.deleteFrom('events').where('seq', 'in', [BigInt(i), BigInt(j)]).execute();
          await trx.insertInto('events').values([{ ...b, seq: BigInt(i) }, { ...a, seq: BigInt(j) }]).execute();
        },
      };
    }
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown edit ${String(unreachable)}`);
    }
  }
}

describe('tampering with stored events', () => {
  it('verifies the untouched ledger', async () => {
    expect(await verifyUnder(async () => undefined, [heldNote])).toMatchObject({ ok: true, size: SIZE, checkpointsChecked: 4 });
  });

  it(`names the right first seq for ${EDITS} random edits, deletions, insertions and swaps (seed ${SEED})`, async () => {
    const pick = prng(SEED);
    const edits = Array.from({ length: EDITS }, () => randomEdit(pick));
    const wrong: string[] = [];
    const counts = new Map<string, number>();
    // Lanes overlap database round trips; each edit still runs in its own transaction, rolled back.
    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        for (let n = lane; n < EDITS; n += LANES) {
          const edit = edits[n]!;
          counts.set(edit.kind, (counts.get(edit.kind) ?? 0) + 1);
          const report = await retryOnDeadlock(() => verifyUnder(edit.apply));
          if (report.ok || report.seq !== edit.expected) {
            wrong.push(`#${n} ${edit.kind} at ${edit.expected}: ${report.ok ? 'passed verify' : `${report.message} (seq ${report.seq})`}`);
          }
        }
      }),
    );
    expect(wrong).toEqual([]);
    expect(counts.size).toBe(14);
  }, 180_000);

  it('reports the messages an operator reads', async () => {
    const first = await verifyUnder(async (trx) => void (await sql`update events set details = details || ' ' where seq = 123`.execute(trx)));
    expect(first).toEqual({ ok: false, seq: 123, problem: 'event_hash mismatch', message: 'seq 123: event_hash mismatch' });
    const gap = await verifyUnder(async (trx) => void (await trx.deleteFrom('events').where('seq', '=', 77n).execute()));
    expect(gap).toEqual({ ok: false, seq: 77, problem: 'gap', message: 'gap: seq 77 missing' });
    const sig = await verifyUnder(async (trx) => void (await sql`update events set signature = set_byte(signature, 0, get_byte(signature, 0) # 1) where seq = 9`.execute(trx)));
    expect(sig).toMatchObject({ seq: 9, message: 'seq 9: signature invalid' });
  });

  it('finds a previous_hash that was re-linked to a re-signed but foreign event', async () => {
    // Row 9's link is replaced and its hash recomputed, so only the link check can catch it.
    const report = await verifyUnder(async (trx) => {
      const r = await row(trx, 9);
      const relinked = { ...r, previous_hash: crypto.sha256(Uint8Array.of(9)) };
      const eventHash = computeEventHash(crypto, hashedFieldsOfRow(relinked));
      await trx.updateTable('events').set({ previous_hash: relinked.previous_hash, event_hash: eventHash }).where('seq', '=', 9n).execute();
    });
    expect(report).toEqual({ ok: false, seq: 9, problem: 'previous_hash does not link', message: 'seq 9: previous_hash does not link to seq 8' });
  });
});

describe('tampering with values far out of range', () => {
  it('reports them as findings, never as a crash', async () => {
    const seq = await verifyUnder(async (trx) => void (await sql`update events set seq = 9000000000000000000 where seq = 42`.execute(trx)));
    expect(seq).toEqual({ ok: false, seq: 42, problem: 'gap', message: 'gap: seq 42 missing' });
    const ts = await verifyUnder(async (trx) => void (await sql`update events set timestamp_ms = -9000000000000000000 where seq = 43`.execute(trx)));
    expect(ts).toMatchObject({ ok: false, seq: 43, problem: 'event_hash mismatch' });
    const cp = await verifyUnder(async (trx) => void (await sql`update checkpoints set tree_size = 9000000000000000000 where tree_size = 100`.execute(trx)));
    expect(cp).toMatchObject({ ok: false, problem: 'checkpoint invalid' });
    const head = await verifyUnder(async (trx) => void (await sql`update ledger_head set size = 9000000000000000000`.execute(trx)));
    expect(head).toMatchObject({ ok: false, problem: 'head mismatch' });
  });
});

describe('tampering with the tree, checkpoints and head', () => {
  it('finds a changed tree node', async () => {
    const report = await verifyUnder(async (trx) => void (await sql`update tree_nodes set hash = set_byte(hash, 5, get_byte(hash, 5) # 16) where level = 3 and idx = 4`.execute(trx)));
    expect(report).toMatchObject({ ok: false, problem: 'tree node mismatch', message: 'tree node level 3 index 4 (seq 32..39): hash mismatch' });
  });

  it('finds a missing tree node', async () => {
    const report = await verifyUnder(async (trx) => void (await trx.deleteFrom('tree_nodes').where('level', '=', 0).where('idx', '=', 60n).execute()));
    expect(report).toMatchObject({ ok: false, problem: 'tree node mismatch', message: 'tree node level 0 index 60 (seq 60..60): missing' });
  });

  it('finds a stored checkpoint whose root or note was changed', async () => {
    const root = await verifyUnder(async (trx) => void (await sql`update checkpoints set root_hash = set_byte(root_hash, 0, get_byte(root_hash, 0) # 1) where tree_size = 100`.execute(trx)));
    expect(root).toMatchObject({ ok: false, problem: 'checkpoint invalid', message: 'stored checkpoint 100: its columns disagree with its signed note' });
    const note = await verifyUnder(async (trx) => void (await sql`update checkpoints set note = replace(note, ${`\n100\n`}, ${`\n101\n`}) where tree_size = 100`.execute(trx)));
    expect(note).toMatchObject({ ok: false, problem: 'checkpoint invalid' });
  });

  it('finds a head that does not match the events', async () => {
    const report = await verifyUnder(async (trx) => void (await sql`update ledger_head set head_hash = set_byte(head_hash, 0, get_byte(head_hash, 0) # 1)`.execute(trx)));
    expect(report).toMatchObject({ ok: false, problem: 'head mismatch' });
    const shorter = await verifyUnder(async (trx) => void (await sql`update ledger_head set size = size - 1`.execute(trx)));
    expect(shorter).toMatchObject({ ok: false, seq: SIZE - 1, problem: 'beyond head' });
  });
});

describe('truncating the tail', () => {
  /** Cuts the ledger back to `keep` events and makes every table consistent with the cut, as a careful attacker would. */
  async function truncateConsistently(trx: Trx, keep: number): Promise<void> {
    const kept = await trx.selectFrom('events').select('event_hash').where('seq', '<', BigInt(keep)).orderBy('seq').execute();
    const range = new CompactRange(crypto);
    for (const r of kept) range.append(leafHash(crypto, bytes(r.event_hash)));
    await trx.deleteFrom('events').where('seq', '>=', BigInt(keep)).execute();
    await sql`delete from tree_nodes where (idx + 1) * (1::bigint << level) > ${keep}`.execute(trx);
    await trx.deleteFrom('checkpoints').where('tree_size', '>', BigInt(keep)).execute();
    await trx.updateTable('ledger_head').set({ size: keep, head_hash: bytes(kept.at(-1)!.event_hash), edge: joinEdge(range.edge) }).execute();
  }

  it('goes unnoticed by the database alone when done consistently, and is caught by a held checkpoint', async () => {
    const alone = await verifyUnder((trx) => truncateConsistently(trx, 150));
    expect(alone).toMatchObject({ ok: true, size: 150 });
    const held = await verifyUnder((trx) => truncateConsistently(trx, 150), [heldNote]);
    expect(held).toMatchObject({ ok: false, seq: 150, problem: 'truncated' });
    if (!held.ok) expect(held.message).toBe(`truncated: seq 150 missing: the ledger ends after 150 events but held checkpoint 1 (size ${SIZE}) covers ${SIZE}`);
  });

  it('is caught by a stored checkpoint beyond the cut when only events are deleted', async () => {
    const report = await verifyUnder(async (trx) => void (await trx.deleteFrom('events').where('seq', '>=', 120n).execute()));
    expect(report).toMatchObject({ ok: false, seq: 120, problem: 'truncated' });
  });

  it('refuses a held checkpoint that does not verify', async () => {
    await expect(verifyUnder(async () => undefined, [heldNote.replace(`\n${SIZE}\n`, `\n${SIZE + 1}\n`)])).rejects.toThrow('held checkpoint 1 does not verify');
  });

  it('finds a held checkpoint from a different history (a fork)', async () => {
    // Rewrite event 10 and re-seal everything after it with the real key: the stored data is then
    // self-consistent, only checkpoints signed before the rewrite can tell.
    const report = await verifyUnder(async (trx) => {
      await trx.deleteFrom('checkpoints').execute();
      const rows = await trx.selectFrom('events').selectAll().where('seq', '>=', 10n).orderBy('seq').execute();
      const before = await row(trx, 9);
      let previous = bytes(before.event_hash);
      await trx.deleteFrom('events').where('seq', '>=', 10n).execute();
      await trx.deleteFrom('tree_nodes').execute();
      const range = new CompactRange(crypto);
      const earlier = await trx.selectFrom('events').select('event_hash').where('seq', '<', 10n).orderBy('seq').execute();
      const nodes = earlier.flatMap((r) => range.append(leafHash(crypto, bytes(r.event_hash))));
      for (const r of rows) {
        const rewritten = { ...r, agent_id: r.seq === 10n ? 'agent.rewritten' : r.agent_id, previous_hash: previous };
        const eventHash = computeEventHash(crypto, hashedFieldsOfRow(rewritten));
        await trx.insertInto('events').values({ ...rewritten, event_hash: eventHash, signature: crypto.ed25519.sign(fx.signer.secretKey, eventHash) }).execute();
        nodes.push(...range.append(leafHash(crypto, eventHash)));
        previous = eventHash;
      }
      await trx.insertInto('tree_nodes').values(nodes.map((n) => ({ level: n.level, idx: n.index, hash: n.hash }))).execute();
      await trx.updateTable('ledger_head').set({ head_hash: previous, edge: joinEdge(range.edge) }).execute();
    }, [heldNote]);
    expect(report).toMatchObject({ ok: false, problem: 'checkpoint mismatch' });
    if (!report.ok) expect(report.message).toContain(`held checkpoint 1 (size ${SIZE}): root hash does not match the events`);
  });
});

describe('an event its producer may not produce', () => {
  it('is named by verify even when hashed and signed with the ledger key (the ingest check bypassed)', async () => {
    // The last event rewritten as a policy.updated delivered by an agent, re-hashed and re-signed
    // by the real key: hash, link and signature all check; only the producer table refuses it.
    const last = SIZE - 1;
    const report = await verifyUnder(async (trx) => {
      const r = await row(trx, last);
      const forged = { ...r, producer: 'agent.intruder', agent_id: 'agent.intruder', event_type: 'policy.updated' };
      const eventHash = computeEventHash(crypto, hashedFieldsOfRow(forged));
      await trx.updateTable('events').set({ producer: forged.producer, agent_id: forged.agent_id, event_type: forged.event_type, event_hash: eventHash, signature: crypto.ed25519.sign(fx.signer.secretKey, eventHash) }).where('seq', '=', BigInt(last)).execute();
    });
    expect(report).toMatchObject({ ok: false, seq: last, problem: 'forbidden producer' });
    if (!report.ok) expect(report.message).toBe(`seq ${last}: forbidden producer: policy.updated may be produced only by svc.policy, not by agent.intruder`);
  });
});
