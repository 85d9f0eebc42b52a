/**
 * Retention and archiving (DESIGN §4, seed S4.3). Nothing younger than the retention
 * period may leave the database. Older events can be archived: exported as JSONL up to a
 * signed checkpoint, the file verified offline, then the event rows pruned in one
 * transaction that re-checks the anchor before it commits.
 *
 * What stays after pruning [F0, C): every tree node, every checkpoint and the head. The
 * boundary C is always the size of a checkpoint already signed by the ledger, so the
 * archive needs no private key and the anchor (archive-anchor.ts) is that checkpoint:
 * verify continues the tree from the stored edge at C and the chain from the leaf at
 * C − 1. At least one event always remains, so the anchor stays visible (the first
 * stored seq).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { access, rename, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BulwarkError, InputError } from '@bulwark/errors';
import { openArchiveAnchor, firstStoredSeq } from './archive-anchor.js';
import { LedgerReader, type LedgerReaderOptions } from './archive-reader.js';
import { verifyExport } from './export.js';
import type { LedgerDb } from './ledger.js';
import { toNumber } from './store/rows.js';

export const DAY_MS = 86_400_000;

/**
 * - E_RETENTION: the request would delete events still inside the retention period (refused).
 * - E_ARCHIVE: the archive could not be made safely (its file does not verify, the ledger changed, the anchor fails).
 */
export class ArchiveError extends BulwarkError {
  declare readonly code: 'E_RETENTION' | 'E_ARCHIVE';

  constructor(code: 'E_RETENTION' | 'E_ARCHIVE', message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, context, options);
  }
}

/** The instant before which events are older than the retention period. */
export function retentionCutoff(retentionDays: number, now: Date = new Date()): Date {
  if (!Number.isSafeInteger(retentionDays) || retentionDays < 1) throw new InputError('E_RETENTION', `retention days ${retentionDays} is not a positive whole number`, { retentionDays });
  return new Date(now.getTime() - retentionDays * DAY_MS);
}

/** Throws E_RETENTION unless every event before `before` is outside the retention period. */
export function assertOutsideRetention(before: Date, retentionDays: number, now: Date = new Date()): void {
  const cutoff = retentionCutoff(retentionDays, now);
  if (Number.isNaN(before.getTime())) throw new InputError('E_ARCHIVE', 'archive: the --before date is not a valid date');
  if (before.getTime() > cutoff.getTime()) {
    throw new ArchiveError(
      'E_RETENTION',
      `archive refused: ${before.toISOString()} is inside the ${retentionDays}-day retention period; only events before ${cutoff.toISOString()} may be archived`,
      { before: before.toISOString(), cutoff: cutoff.toISOString(), retentionDays },
    );
  }
}

export interface ArchiveOptions extends LedgerReaderOptions {
  /** Archive events whose timestamp is before this instant (up to the last signed checkpoint that allows). */
  readonly before: Date;
  /** The longest retention of the frameworks in force, in days. */
  readonly retentionDays: number;
  /** The JSONL file to write; refused if it exists. */
  readonly out: string;
  readonly now?: Date;
}

export type ArchiveResult =
  | { readonly archived: 0; readonly reason: string }
  | {
      readonly archived: number;
      /** Events [fromSeq, toSeq) were written to `file` and pruned. */
      readonly fromSeq: number;
      readonly toSeq: number;
      readonly file: string;
      readonly rootHash: Uint8Array;
    };

export async function archiveBefore(db: LedgerDb, options: ArchiveOptions): Promise<ArchiveResult> {
  const now = options.now ?? new Date();
  assertOutsideRetention(options.before, options.retentionDays, now);
  const cutoffMs = retentionCutoff(options.retentionDays, now).getTime();
  if (await exists(options.out)) throw new InputError('E_ARCHIVE', `archive: ${options.out} already exists; an archive is never overwritten`, { out: options.out });

  const reader = new LedgerReader(db, options);
  const from = (await firstStoredSeq(db)) ?? 0;
  const head = await db.selectFrom('ledger_head').select('size').executeTakeFirstOrThrow();
  const headSize = toNumber(head.size, 'ledger_head.size');
  // Timestamps are the producers' and need not be monotone: stop at the first event that is not old enough.
  const young = await db
    .selectFrom('events')
    .select((eb) => eb.fn.min('seq').as('seq'))
    .where('seq', '>=', BigInt(from))
    .where('timestamp_ms', '>=', BigInt(options.before.getTime()))
    .executeTakeFirst();
  const limit = young?.seq === null || young?.seq === undefined ? headSize : toNumber(young.seq as bigint | number, 'events.seq');
  // The boundary is a signed checkpoint, and at least one event stays to show where the anchor is.
  const boundary = await db
    .selectFrom('checkpoints')
    .select((eb) => eb.fn.max('tree_size').as('size'))
    .where('tree_size', '>', BigInt(from))
    .where('tree_size', '<=', BigInt(Math.min(limit, headSize - 1)))
    .executeTakeFirst();
  if (boundary?.size === null || boundary?.size === undefined) {
    return { archived: 0, reason: `no signed checkpoint lies between seq ${from} and the first event at or after ${options.before.toISOString()} (seq ${limit})` };
  }
  const to = toNumber(boundary.size as bigint | number, 'checkpoints.tree_size');
  const checkpoint = await reader.checkpointAt(to);
  if (checkpoint === undefined) throw new ArchiveError('E_ARCHIVE', `archive: checkpoint ${to} disappeared`);

  const partial = `${options.out}.partial`;
  try {
    await pipeline(Readable.from(reader.exportLines(checkpoint, from)), createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
    const report = await verifyExport(createInterface({ input: createReadStream(partial), crlfDelay: Infinity }), options);
    if (!report.ok) throw new ArchiveError('E_ARCHIVE', `archive: the written file does not verify: ${report.message}; nothing pruned`, { out: partial });
    if (report.fromSeq !== from || report.size !== to) throw new ArchiveError('E_ARCHIVE', `archive: the written file covers ${report.fromSeq}..${report.size}, not ${from}..${to}; nothing pruned`);
    await rename(partial, options.out);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }

  await db.transaction().execute(async (trx) => {
    // The head lock holds appends (and any other archive) off while the rows go.
    await trx.selectFrom('ledger_head').select('size').forUpdate().executeTakeFirstOrThrow();
    if (((await firstStoredSeq(trx)) ?? 0) !== from) throw new ArchiveError('E_ARCHIVE', 'archive: the ledger was archived by someone else meanwhile; nothing pruned');
    const recent = await trx
      .selectFrom('events')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('seq', '<', BigInt(to))
      .where('timestamp_ms', '>=', BigInt(cutoffMs))
      .executeTakeFirstOrThrow();
    if (Number(recent.n) !== 0) throw new ArchiveError('E_RETENTION', `archive refused: ${recent.n} events before seq ${to} are inside the ${options.retentionDays}-day retention period`);
    const deleted = await trx.deleteFrom('events').where('seq', '<', BigInt(to)).executeTakeFirst();
    if (Number(deleted.numDeletedRows) !== to - from) throw new ArchiveError('E_ARCHIVE', `archive: expected to prune ${to - from} events, found ${deleted.numDeletedRows}; rolled back`);
    const anchor = await openArchiveAnchor(trx, options);
    if (!anchor.ok || anchor.anchor?.size !== to) {
      throw new ArchiveError('E_ARCHIVE', `archive: the remaining chain would not verify from the boundary: ${anchor.ok ? 'no anchor' : anchor.problem.message}; rolled back`);
    }
  });
  return { archived: to - from, fromSeq: from, toSeq: to, file: options.out, rootHash: checkpoint.rootHash };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
