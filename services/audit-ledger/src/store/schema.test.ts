import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, createDatabase, migrateToLatest, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { migrateLedger } from '../ledger.js';
import { LEDGER_MIGRATIONS, type LedgerDatabase } from './schema.js';

/** The migrations before producer-bound events (event hash v1). */
const BEFORE_PRODUCER = { '0001_ledger': LEDGER_MIGRATIONS['0001_ledger']!, '0002_service': LEDGER_MIGRATIONS['0002_service']! };

describe('migration 0003_producer', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  async function oldLedger(prefix: string): Promise<Kysely<LedgerDatabase>> {
    const schema = withTestSchema(prefix);
    const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
    cleanup = async () => {
      await closeDatabase(db);
      await schema.drop();
    };
    await migrateToLatest(db, BEFORE_PRODUCER);
    return db;
  }

  it('refuses a ledger that holds v1 events (no producer) with a clear error, and changes nothing', async () => {
    const db = await oldLedger('mig_v1');
    await sql`insert into events (seq, event_id, timestamp_ms, agent_id, event_type, details, previous_hash, event_hash, signature)
              values (0, '0192f5a0-1c00-7abc-8def-0123456789ab', 1, 'agent.a', 'agent.started', '{}', ${new Uint8Array(32)}, ${new Uint8Array(32)}, ${new Uint8Array(64)})`.execute(db);
    await expect(migrateLedger(db)).rejects.toThrow(/this ledger holds 1 events hashed with event hash v1 \(no producer\).*start a new ledger/);
    const columns = await sql<{ column_name: string }>`select column_name from information_schema.columns where table_schema = current_schema() and table_name = 'events'`.execute(db);
    expect(columns.rows.map((c) => c.column_name)).not.toContain('producer');
  });

  it('adds events.producer (not null) to an empty ledger', async () => {
    const db = await oldLedger('mig_empty');
    expect((await migrateLedger(db)).applied).toEqual(['0003_producer']);
    await expect(
      sql`insert into events (seq, event_id, timestamp_ms, agent_id, event_type, details, previous_hash, event_hash, signature)
          values (0, '0192f5a0-1c00-7abc-8def-0123456789ab', 1, 'agent.a', 'agent.started', '{}', ${new Uint8Array(32)}, ${new Uint8Array(32)}, ${new Uint8Array(64)})`.execute(db),
    ).rejects.toThrow(/producer/);
  });
});
