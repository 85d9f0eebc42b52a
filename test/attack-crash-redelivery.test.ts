// A JetStream redelivery after a crash before the ack is processed exactly once.
//
// A consumer process (test/attack-child.ts `consumer`, the ledger's pattern: side effect and
// unique event id in one PostgreSQL transaction, ack after commit) SIGKILLs itself right after
// the transaction for one event commits and before the bus acknowledges it. A second consumer
// process on the same durable gets the redelivery (its replay window is empty: a new process),
// runs its handler, and the event id makes it a no-op. Every event's side effect happens once.
// (libs/bus's consumer.test.ts covers the in-process half: a hung handler, redelivery to a new
// consumer; test/ledger-crash.test.ts kills the real ledger at random moments.)
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SealedSender } from '@bulwark/envelope';
import { connectBus, consumerBacklog, createEventPublisher, ensureStreams, Events, LEDGER_PRINCIPAL, removeNamespaceStreams, ServicePrincipals, uniqueNamespace, type Bus } from '@bulwark/bus';
import { killChild, provider, sharedWorld, spawnChild, type RunningChild } from './attack-children.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const DATABASE_URL = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function until(check: () => Promise<boolean>, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('JetStream redelivery after a SIGKILL between side effect and ack', () => {
  const ns = uniqueNamespace('crash');
  const schema = `atk_${randomBytes(6).toString('hex')}`;
  const db = new pg.Client({ connectionString: DATABASE_URL });
  const children: RunningChild[] = [];
  let bus: Bus;

  beforeAll(async () => {
    await db.connect();
    await db.query(`create schema ${schema}`);
    await db.query(`create table ${schema}.processed (event_id text primary key, pid int not null)`);
    await db.query(`create table ${schema}.effects (total int not null)`);
    await db.query(`insert into ${schema}.effects values (0)`);
    await db.query(`create table ${schema}.deliveries (seq serial primary key, event_id text not null, pid int not null, delivery_count int not null, outcome text not null)`);
    bus = await connectBus({ url: NATS_URL, name: 'publisher', namespace: ns });
    await ensureStreams(bus);
  });

  afterAll(async () => {
    for (const c of children) await killChild(c);
    await removeNamespaceStreams(bus).catch(() => undefined);
    await bus.close();
    await db.query(`drop schema if exists ${schema} cascade`);
    await db.end();
  });

  it('processes every event once: the redelivered one is deduped by its event id', { timeout: 60_000 }, async () => {
    const w = sharedWorld([ServicePrincipals.policy, LEDGER_PRINCIPAL]);
    const events = createEventPublisher(bus, new SealedSender({ provider, self: w.identity(ServicePrincipals.policy), directory: w.directory, recipientId: LEDGER_PRINCIPAL }));
    const ids = Array.from({ length: 10 }, (_, i) => `e-${i}`);
    for (const eventId of ids) await events.publish({ subject: Events.policy.decision, eventId, payload: new TextEncoder().encode(eventId) });

    const config = { natsUrl: NATS_URL, namespace: ns, databaseUrl: DATABASE_URL, schema, durable: 'crash-ledger', ...w.childKeys(LEDGER_PRINCIPAL) };
    const first = await spawnChild('consumer', { ...config, killAfter: 'e-4' });
    children.push(first);
    expect(await first.exited).toBe('SIGKILL');
    // It died holding e-4 committed but unacknowledged.
    const afterCrash = await db.query<{ event_id: string }>(`select event_id from ${schema}.processed order by event_id`);
    expect(afterCrash.rows.map((r) => r.event_id)).toEqual(ids.slice(0, 5));

    const second = await spawnChild('consumer', config);
    children.push(second);
    const count = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0]!.n);
    await until(async () => (await count(`select count(*) as n from ${schema}.deliveries`)) >= 11, 20_000, 'the redelivery and the rest of the stream');
    await until(async () => {
      const b = await consumerBacklog(bus, 'events', 'crash-ledger');
      return b.pending === 0 && b.ackPending === 0;
    }, 10_000, 'every message acknowledged');

    const processed = await db.query<{ event_id: string; pid: number }>(`select event_id, pid from ${schema}.processed order by event_id`);
    expect(processed.rows.map((r) => r.event_id)).toEqual(ids);
    expect(processed.rows.filter((r) => r.pid === first.process.pid).map((r) => r.event_id)).toEqual(ids.slice(0, 5));
    expect(processed.rows.filter((r) => r.pid === second.process.pid).map((r) => r.event_id)).toEqual(ids.slice(5));
    expect(await count(`select total as n from ${schema}.effects`)).toBe(ids.length);

    const deliveries = await db.query<{ event_id: string; pid: number; delivery_count: number; outcome: string }>(`select event_id, pid, delivery_count, outcome from ${schema}.deliveries order by seq`);
    expect(deliveries.rows.filter((r) => r.outcome === 'processed')).toHaveLength(ids.length);
    // JetStream may count a redelivery to the dead process's still-open pull request before the
    // new process takes it: the second handler run sees a delivery count of 2 or more.
    const e4 = deliveries.rows.filter((r) => r.event_id === 'e-4');
    expect(e4).toEqual([
      { event_id: 'e-4', pid: first.process.pid, delivery_count: 1, outcome: 'processed' },
      { event_id: 'e-4', pid: second.process.pid, delivery_count: e4[1]?.delivery_count, outcome: 'deduped' },
    ]);
    expect(e4[1]!.delivery_count).toBeGreaterThanOrEqual(2);
    expect(deliveries.rows.filter((r) => r.outcome === 'deduped')).toHaveLength(1);
  });
});
