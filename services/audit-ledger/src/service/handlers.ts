/**
 * The ledger's commands (DESIGN §2): query, inclusion and consistency proofs, the latest
 * checkpoint, verify. Each takes the JSON body of protocol.ts and returns its reply; the
 * bus runs them inside Noise sessions (`serveCommands`).
 */
import { CHANNEL_EPOCH_TYPES } from '@bulwark/channel';
import type { CryptoProvider } from '@bulwark/crypto';
import { Commands, LEDGER_PRINCIPAL, ServicePrincipals, type CommandHandler, type CommandSubject } from '@bulwark/bus';
import { LEDGER_KEY_CHANGE_TYPE } from '@bulwark/ledger-reader';
import { checkProducer, computeEventHash, isEventType, type EventType } from '@bulwark/events';
import type { AuditLedger, LedgerDb, StoredCheckpoint } from '../ledger.js';
import { bytes, hashedFieldsOfRow, ledgerEventOfRow, toNumber, type EventRow } from '../store/rows.js';
import { observeStored, storedSchedule } from '../signing-keys.js';
import { verifyLedger } from '../verify.js';
import { toHex } from './hex.js';
import {
  encodeReply,
  optionalCount,
  optionalText,
  parseBody,
  requestError,
  type CheckpointReply,
  type ConsistencyReply,
  type EventJson,
  type InclusionReply,
  type QueryReply,
  type VerifyReply,
} from './protocol.js';

export interface HandlerContext {
  readonly db: LedgerDb;
  readonly ledger: AuditLedger;
  readonly crypto: CryptoProvider;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const MAX_PROOF_LIMIT = 100;
const MAX_EVENT_TYPES = 64;

/** `eventType` and `eventTypes` of a query, together: the types any of which an event must have (undefined: any type). */
function typesOf(subject: string, body: Record<string, unknown>): EventType[] | undefined {
  const one = optionalText(subject, body, 'eventType', 64);
  const many = body['eventTypes'];
  if (one === undefined && (many === undefined || many === null)) return undefined;
  const types = new Set<string>(one === undefined ? [] : [one]);
  if (many !== undefined && many !== null) {
    if (!Array.isArray(many) || many.length === 0 || many.length > MAX_EVENT_TYPES) throw requestError(subject, `eventTypes must be an array of 1..${MAX_EVENT_TYPES} event types`);
    for (const [i, type] of many.entries()) {
      if (typeof type !== 'string') throw requestError(subject, `eventTypes[${i}] must be a string`);
      types.add(type);
    }
  }
  const out: EventType[] = [];
  for (const type of types) {
    if (!isEventType(type)) throw requestError(subject, `${JSON.stringify(type.slice(0, 64))} is not a known event type`);
    out.push(type);
  }
  return out;
}

function checkpointJson(cp: StoredCheckpoint): CheckpointReply {
  return { origin: cp.origin, size: cp.size, rootHash: toHex(cp.rootHash), note: cp.note };
}

function eventJson(row: EventRow): EventJson {
  const e = ledgerEventOfRow(row);
  return {
    seq: e.seq,
    eventId: e.eventId,
    timestamp: e.timestamp,
    producer: e.producer,
    agentId: e.agentId,
    eventType: e.eventType,
    details: e.details,
    detailsJcs: row.details,
    previousHash: toHex(e.previousHash),
    eventHash: toHex(e.eventHash),
    signature: toHex(e.signature),
  };
}

/** The latest signed checkpoint; the first one is signed on demand. */
async function latest(ledger: AuditLedger): Promise<StoredCheckpoint> {
  return (await ledger.latestCheckpoint()) ?? (await ledger.checkpoint());
}

export async function query(ctx: HandlerContext, body: Record<string, unknown>, subject: CommandSubject = Commands.audit.query, onlyEpochFacts = false): Promise<QueryReply> {
  const agentId = optionalText(subject, body, 'agentId');
  const eventTypes = typesOf(subject, body);
  const fromTime = optionalCount(subject, body, 'fromTime');
  const toTime = optionalCount(subject, body, 'toTime');
  const fromSeq = optionalCount(subject, body, 'fromSeq') ?? 0;
  const toSeq = optionalCount(subject, body, 'toSeq');
  const withProof = body['withProof'] === true;
  const limit = optionalCount(subject, body, 'limit') ?? DEFAULT_LIMIT;
  if (limit < 1 || limit > (withProof ? MAX_PROOF_LIMIT : MAX_LIMIT)) throw requestError(subject, `limit must be 1..${withProof ? MAX_PROOF_LIMIT : MAX_LIMIT}`);
  const cursorText = optionalText(subject, body, 'cursor', 20);
  let start = fromSeq;
  if (cursorText !== undefined) {
    if (!/^\d{1,16}$/.test(cursorText)) throw requestError(subject, 'cursor is not one this service returned');
    start = Math.max(start, Number(cursorText));
  }

  let q = ctx.db.selectFrom('events').selectAll().where('seq', '>=', BigInt(start));
  if (toSeq !== undefined) q = q.where('seq', '<=', BigInt(toSeq));
  if (agentId !== undefined) q = q.where('agent_id', '=', agentId);
  // The key manager's own events, and the ledger key changes (about svc.audit-ledger) without which nobody can verify what the ledger signed after one.
  if (onlyEpochFacts) q = q.where((eb) => eb.or([eb('agent_id', '=', ServicePrincipals.keys), eb.and([eb('agent_id', '=', LEDGER_PRINCIPAL), eb('event_type', '=', LEDGER_KEY_CHANGE_TYPE)])]));
  // Served by the (event_type, seq) index, one range per type.
  if (eventTypes !== undefined) q = eventTypes.length === 1 ? q.where('event_type', '=', eventTypes[0]!) : q.where('event_type', 'in', eventTypes);
  if (fromTime !== undefined) q = q.where('timestamp_ms', '>=', BigInt(fromTime));
  if (toTime !== undefined) q = q.where('timestamp_ms', '<', BigInt(toTime));
  // Keyset pagination on seq: a page is stable however many events are appended meanwhile.
  const rows = await q.orderBy('seq').limit(limit + 1).execute();
  const page = rows.slice(0, limit);
  const events = page.map(eventJson);
  const more = rows.length > limit;
  const next = more ? { nextCursor: String(toNumber(page[page.length - 1]!.seq, 'seq') + 1) } : {};
  if (!withProof) return { events, ...next };

  const checkpoint = await latest(ctx.ledger);
  const proven: EventJson[] = [];
  for (const event of events) {
    const proof = event.seq < checkpoint.size ? (await ctx.ledger.inclusionProof(event.seq, checkpoint.size)).proof.map(toHex) : null;
    proven.push({ ...event, proof });
  }
  return { events: proven, ...next, checkpoint: checkpointJson(checkpoint) };
}

const CHANNEL_EPOCH_FIELDS = new Set(['fromSeq', 'toSeq', 'limit', 'cursor', 'eventTypes']);

/**
 * `bulwark.audit.channel_epochs`: the part of the ledger any channel subscriber needs to rebuild
 * its epoch keys (libs/channel `followChannelEpochs`), for principals that may not query the
 * ledger (analysts): the key manager's events of CHANNEL_EPOCH_TYPES about itself, and the ledger's
 * own key changes (a keys.rotated of svc.audit-ledger: a verifier needs them to check what the
 * ledger signed after one), as `bulwark.audit.query` serves them (the subscriber verifies each
 * one), and nothing else.
 */
export async function channelEpochs(ctx: HandlerContext, body: Record<string, unknown>): Promise<QueryReply> {
  const subject = Commands.audit.channelEpochs;
  const extra = Object.keys(body).find((k) => !CHANNEL_EPOCH_FIELDS.has(k));
  if (extra !== undefined) throw requestError(subject, `unknown field ${JSON.stringify(extra.slice(0, 64))} (fromSeq, toSeq, limit, cursor, eventTypes)`);
  const types = typesOf(subject, body) ?? (CHANNEL_EPOCH_TYPES as EventType[]);
  const other = types.find((t) => !CHANNEL_EPOCH_TYPES.includes(t));
  if (other !== undefined) throw requestError(subject, `${other} is not served here (only ${CHANNEL_EPOCH_TYPES.join(', ')})`);
  return query(ctx, { ...body, eventTypes: types }, subject, true);
}

export async function inclusion(ctx: HandlerContext, body: Record<string, unknown>): Promise<InclusionReply & { checkpoint?: CheckpointReply }> {
  const subject = Commands.audit.proofInclusion;
  let seq = optionalCount(subject, body, 'seq');
  const eventId = optionalText(subject, body, 'eventId', 36);
  if ((seq === undefined) === (eventId === undefined)) throw requestError(subject, 'give exactly one of seq and eventId');
  if (eventId !== undefined) {
    seq = await ctx.ledger.seqOf(eventId);
    if (seq === undefined) throw requestError(subject, `event ${eventId} is not in the ledger`);
  }
  let treeSize = optionalCount(subject, body, 'treeSize');
  let checkpoint: StoredCheckpoint | undefined;
  if (treeSize === undefined) {
    checkpoint = await latest(ctx.ledger);
    if (seq! >= checkpoint.size) checkpoint = await ctx.ledger.checkpoint();
    treeSize = checkpoint.size;
  }
  if (seq! >= treeSize) throw requestError(subject, `seq ${seq} is not below tree size ${treeSize}`);
  const p = await ctx.ledger.inclusionProof(seq!, treeSize);
  const reply = { seq: p.seq, treeSize: p.treeSize, leafHash: toHex(p.leafHash), proof: p.proof.map(toHex) };
  return checkpoint === undefined ? reply : { ...reply, checkpoint: checkpointJson(checkpoint) };
}

export async function consistency(ctx: HandlerContext, body: Record<string, unknown>): Promise<ConsistencyReply> {
  const subject = Commands.audit.proofConsistency;
  const size1 = optionalCount(subject, body, 'size1');
  if (size1 === undefined || size1 === 0) throw requestError(subject, 'size1 must be a positive integer (a proof from size 0 proves nothing)');
  const size2 = optionalCount(subject, body, 'size2') ?? (await latest(ctx.ledger)).size;
  if (size1 > size2) throw requestError(subject, `size1 ${size1} is larger than size2 ${size2}`);
  const proof = await ctx.ledger.consistencyProof(size1, size2);
  return { size1, size2, proof: proof.map(toHex) };
}

export async function checkpoint(ctx: HandlerContext): Promise<CheckpointReply> {
  return checkpointJson(await latest(ctx.ledger));
}

export async function verify(ctx: HandlerContext, body: Record<string, unknown>): Promise<VerifyReply> {
  const subject = Commands.audit.verify;
  const fromSeq = optionalCount(subject, body, 'fromSeq');
  const toSeq = optionalCount(subject, body, 'toSeq');
  if (fromSeq === undefined && toSeq === undefined) {
    const report = await verifyLedger(ctx.db, { crypto: ctx.crypto, origin: ctx.ledger.origin, logKey: ctx.ledger.genesisKey });
    if (report.ok) return { ok: true, scope: 'whole', verified: report.size, size: report.size, rootHash: toHex(report.rootHash) };
    return { ok: false, scope: 'whole', ...(report.seq === undefined ? {} : { seq: report.seq }), problem: report.problem, message: report.message };
  }
  return verifyRange(ctx, fromSeq ?? 0, toSeq);
}

/**
 * A bounded verify: each event of [from, to] against its stored fields (event_hash), the
 * event before it (previous_hash), the ledger key in force at its seq (signature; the stored chain's
 * key changes before the range are taken as the ledger signs on them) and the producer table. The Merkle tree and the
 * checkpoints need the whole log: ask for a whole verify for those.
 */
async function verifyRange(ctx: HandlerContext, from: number, to: number | undefined): Promise<VerifyReply> {
  const size = (await ctx.ledger.head()).size;
  const last = Math.min(to ?? size - 1, size - 1);
  if (from > last) return { ok: true, scope: 'range', verified: 0, size };
  const schedule = await storedSchedule(ctx.crypto, ctx.db, ctx.ledger.genesisKey.publicKey, from);
  let previous: Uint8Array | undefined;
  if (from > 0) {
    const before = await ctx.db.selectFrom('events').select('event_hash').where('seq', '=', BigInt(from - 1)).executeTakeFirst();
    if (before === undefined) return { ok: false, scope: 'range', seq: from - 1, problem: 'gap', message: `gap: seq ${from - 1} missing` };
    previous = bytes(before.event_hash);
  } else {
    previous = new Uint8Array(32);
  }
  const PAGE = 2000;
  let next = from;
  while (next <= last) {
    const rows = await ctx.db.selectFrom('events').selectAll().where('seq', '>=', BigInt(next)).where('seq', '<=', BigInt(last)).orderBy('seq').limit(PAGE).execute();
    for (const row of rows) {
      const seq = next;
      if (BigInt(row.seq) !== BigInt(seq)) return { ok: false, scope: 'range', seq, problem: 'gap', message: `gap: seq ${seq} missing` };
      let recomputed: Uint8Array | undefined;
      try {
        recomputed = computeEventHash(ctx.crypto, hashedFieldsOfRow(row));
      } catch {
        recomputed = undefined;
      }
      const eventHash = bytes(row.event_hash);
      if (recomputed === undefined || !ctx.crypto.equal(recomputed, eventHash)) return { ok: false, scope: 'range', seq, problem: 'event_hash mismatch', message: `seq ${seq}: event_hash mismatch` };
      if (!ctx.crypto.equal(bytes(row.previous_hash), previous)) return { ok: false, scope: 'range', seq, problem: 'previous_hash does not link', message: `seq ${seq}: previous_hash does not link to seq ${seq - 1}` };
      if (!ctx.crypto.ed25519.verify(schedule.keyFor(seq), eventHash, bytes(row.signature))) return { ok: false, scope: 'range', seq, problem: 'signature invalid', message: `seq ${seq}: signature invalid` };
      const forbidden = checkProducer(row.producer, row.event_type, row.agent_id);
      if (forbidden !== null) return { ok: false, scope: 'range', seq, problem: 'forbidden producer', message: `seq ${seq}: forbidden producer: ${forbidden}` };
      const change = observeStored(schedule, { seq, producer: row.producer, eventType: row.event_type, agentId: row.agent_id, detailsJcs: row.details });
      if (change !== null) return { ok: false, scope: 'range', seq, problem: 'ledger key change', message: `seq ${seq}: ${change}` };
      previous = eventHash;
      next += 1;
    }
    if (rows.length === 0) return { ok: false, scope: 'range', seq: next, problem: 'gap', message: `gap: seq ${next} missing` };
  }
  return { ok: true, scope: 'range', verified: last - from + 1, size };
}

/** The handlers as the bus takes them. */
export function commandHandlers(ctx: HandlerContext): { readonly [S in CommandSubject]?: CommandHandler } {
  const wrap = (run: (body: Record<string, unknown>) => Promise<unknown>, subject: CommandSubject): CommandHandler => async (request) => encodeReply(await run(parseBody(subject, request.body)));
  return {
    [Commands.audit.query]: wrap((b) => query(ctx, b), Commands.audit.query),
    [Commands.audit.channelEpochs]: wrap((b) => channelEpochs(ctx, b), Commands.audit.channelEpochs),
    [Commands.audit.proofInclusion]: wrap((b) => inclusion(ctx, b), Commands.audit.proofInclusion),
    [Commands.audit.proofConsistency]: wrap((b) => consistency(ctx, b), Commands.audit.proofConsistency),
    [Commands.audit.checkpoint]: wrap(() => checkpoint(ctx), Commands.audit.checkpoint),
    [Commands.audit.verify]: wrap((b) => verify(ctx, b), Commands.audit.verify),
  };
}
