/**
 * The ledger's tables in its own PostgreSQL schema (DESIGN §4).
 *
 * - events: one row per appended event, exactly the hashed fields plus the chain fields
 *   (`producer`, 0003: the envelope-authenticated principal that delivered the event).
 *   `details` is the RFC 8785 text that was hashed (cast to jsonb to query it), so the
 *   hash can be recomputed from the row byte for byte.
 * - tree_nodes: every complete perfect subtree of the Merkle tree, (level, idx) → hash;
 *   about one row per event; proofs read O(log n) of them.
 * - ledger_head: one row, the state an append continues from: size, the last
 *   event_hash, and the compact range (right edge) as concatenated 32-byte hashes. An
 *   append locks it (select ... for update), so appends are serialised across instances.
 * - checkpoints: signed tree heads (C2SP notes, cosignatures added to the note).
 */
import { sql, type ColumnType, type Kysely } from 'kysely';
import type { Migrations } from '@bulwark/store';
import { LedgerError } from '../errors.js';

type Int8 = ColumnType<bigint, number | bigint, number | bigint>;

export interface EventsTable {
  seq: Int8;
  event_id: string;
  timestamp_ms: Int8;
  /** The principal whose authenticated frame delivered the event (DESIGN §3a); hashed (event hash v2). */
  producer: string;
  agent_id: string;
  event_type: string;
  details: string;
  previous_hash: Uint8Array;
  event_hash: Uint8Array;
  signature: Uint8Array;
}

export interface TreeNodesTable {
  level: number;
  idx: Int8;
  hash: Uint8Array;
}

export interface LedgerHeadTable {
  id: ColumnType<boolean, boolean | undefined, never>;
  size: Int8;
  head_hash: Uint8Array;
  edge: Uint8Array;
}

export interface CheckpointsTable {
  tree_size: Int8;
  root_hash: Uint8Array;
  note: string;
  created_at: ColumnType<Date, Date | undefined, never>;
}

/** How far the service has re-published the log to BULWARK_LEDGER (one row). */
export interface PublishStateTable {
  id: ColumnType<boolean, boolean | undefined, never>;
  /** Events [0, published) are on BULWARK_LEDGER; the catch-up starts here. */
  published: Int8;
  /** Set before a chunk [published, pending_end] is published, cleared after: a restart re-sends exactly that chunk (same message id). */
  pending_end: ColumnType<bigint | null, number | bigint | null | undefined, number | bigint | null>;
}

export interface LedgerDatabase {
  publish_state: PublishStateTable;
  events: EventsTable;
  tree_nodes: TreeNodesTable;
  ledger_head: LedgerHeadTable;
  checkpoints: CheckpointsTable;
}

export const LEDGER_MIGRATIONS: Migrations = {
  '0001_ledger': {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations run before the typed schema exists
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('events')
        .addColumn('seq', 'bigint', (c) => c.primaryKey().check(sql`seq >= 0`))
        // Unique: a redelivered event id is a no-op (DESIGN §4, exactly-once append).
        .addColumn('event_id', 'uuid', (c) => c.notNull().unique())
        .addColumn('timestamp_ms', 'bigint', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('details', 'text', (c) => c.notNull())
        .addColumn('previous_hash', 'bytea', (c) => c.notNull())
        .addColumn('event_hash', 'bytea', (c) => c.notNull())
        .addColumn('signature', 'bytea', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('tree_nodes')
        .addColumn('level', 'smallint', (c) => c.notNull().check(sql`level >= 0 and level < 64`))
        .addColumn('idx', 'bigint', (c) => c.notNull().check(sql`idx >= 0`))
        .addColumn('hash', 'bytea', (c) => c.notNull())
        .addPrimaryKeyConstraint('tree_nodes_pk', ['level', 'idx'])
        .execute();
      await db.schema
        .createTable('ledger_head')
        .addColumn('id', 'boolean', (c) => c.primaryKey().defaultTo(true).check(sql`id`))
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('head_hash', 'bytea', (c) => c.notNull())
        .addColumn('edge', 'bytea', (c) => c.notNull())
        .execute();
      await db
        .insertInto('ledger_head')
        .values({ id: true, size: 0, head_hash: new Uint8Array(32), edge: new Uint8Array(0) })
        .execute();
      await db.schema
        .createTable('checkpoints')
        .addColumn('tree_size', 'bigint', (c) => c.primaryKey().check(sql`tree_size >= 0`))
        .addColumn('root_hash', 'bytea', (c) => c.notNull())
        .addColumn('note', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up
    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['checkpoints', 'ledger_head', 'tree_nodes', 'events']) await db.schema.dropTable(table).execute();
    },
  },
  '0002_service': {
    // The service's state and the query paths of bulwark.audit.query (by agent, by type, by time).
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations run before the typed schema exists
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('publish_state')
        .addColumn('id', 'boolean', (c) => c.primaryKey().defaultTo(true).check(sql`id`))
        .addColumn('published', 'bigint', (c) => c.notNull().check(sql`published >= 0`))
        .addColumn('pending_end', 'bigint')
        .execute();
      await db.insertInto('publish_state').values({ id: true, published: 0 }).execute();
      await db.schema.createIndex('events_agent_seq').on('events').columns(['agent_id', 'seq']).execute();
      await db.schema.createIndex('events_type_seq').on('events').columns(['event_type', 'seq']).execute();
      await db.schema.createIndex('events_time').on('events').column('timestamp_ms').execute();
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up
    async down(db: Kysely<any>): Promise<void> {
      for (const index of ['events_time', 'events_type_seq', 'events_agent_seq']) await db.schema.dropIndex(index).execute();
      await db.schema.dropTable('publish_state').execute();
    },
  },
  '0003_producer': {
    // Event hash v2 (libs/events README): every event records and hashes its producer. Rows
    // appended before (hash v1, no producer) cannot be given one after the fact (nobody knows
    // who delivered them, and their hashes would not verify), and mixing v1 and v2 rows in
    // one chain would make verify wrong for one or the other: such a ledger is refused.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations run before the typed schema exists
    async up(db: Kysely<any>): Promise<void> {
      const { rows } = await sql<{ n: string }>`select count(*)::text as n from events`.execute(db);
      const held = Number(rows[0]?.n ?? '0');
      if (held > 0) throw new LedgerError('E_LEDGER', `this ledger holds ${held} events hashed with event hash v1 (no producer); this version writes v2 (producer-bound events, DESIGN §3a) and cannot continue that chain: export and archive it with the previous version, then start a new ledger in an empty schema`, { events: held });
      await db.schema.alterTable('events').addColumn('producer', 'text', (c) => c.notNull()).execute();
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('events').dropColumn('producer').execute();
    },
  },
};
