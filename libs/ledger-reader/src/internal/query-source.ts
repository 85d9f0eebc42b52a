/**
 * Gap filling from the ledger itself: `bulwark.audit.query` over an authenticated session to
 * svc.audit-ledger (services/audit-ledger README, "The service"; CONTRACTS §4). The reply is
 * only transport: every event it holds is turned back into a LedgerEvent here and then checked
 * by the reader exactly like a streamed one (hash recomputed from `detailsJcs`, signature,
 * producer, order). A reply that is not what the protocol says is an error, never an event.
 */
import { InputError } from '@bulwark/errors';
import { EVENT_TYPES, HASH_LENGTH, isControlEventType, isPrincipalId, parseJson, SIGNATURE_LENGTH, validateEventCanonical, type LedgerEvent } from '@bulwark/events';
import type { GapRange, GapSource } from './core.js';

/** Sends one `bulwark.audit.query` body and returns the parsed JSON reply. */
export type AuditQuery = (body: Readonly<Record<string, unknown>>) => Promise<unknown>;

/** The control-plane event types, for `eventTypes` in control mode. */
export const CONTROL_EVENT_TYPES: readonly string[] = Object.freeze(EVENT_TYPES.filter((type) => isControlEventType(type)));

/** The query's largest page. */
const PAGE = 1000;

function replyError(why: string): InputError {
  return new InputError('E_READER_QUERY', `bulwark.audit.query reply: ${why}`);
}

function hexBytes(value: unknown, length: number, field: string): Uint8Array {
  if (typeof value !== 'string' || value.length !== 2 * length || !/^[0-9a-f]*$/.test(value)) throw replyError(`${field} is not ${length} bytes of lowercase hex`);
  return Uint8Array.from(Buffer.from(value, 'hex'));
}

/** One EventJson of the reply as a LedgerEvent whose details are exactly the canonical text the ledger hashed. */
export function ledgerEventOfJson(json: unknown): LedgerEvent {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw replyError('an event is not a JSON object');
  const e = json as Record<string, unknown>;
  const { seq, producer, detailsJcs } = e;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw replyError('an event has no valid seq');
  if (typeof producer !== 'string' || !isPrincipalId(producer)) throw replyError(`event at seq ${seq} has no producer principal`);
  if (typeof detailsJcs !== 'string') throw replyError(`event at seq ${seq} has no detailsJcs`);
  let canonical;
  try {
    canonical = validateEventCanonical({ eventId: e['eventId'], timestamp: e['timestamp'], agentId: e['agentId'], eventType: e['eventType'], details: parseJson(detailsJcs, 'detailsJcs') }, detailsJcs);
  } catch (cause) {
    throw replyError(`event at seq ${seq}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
  // The text the ledger hashed must be the canonical form of the details applied.
  if (canonical.detailsJcs !== detailsJcs) throw replyError(`event at seq ${seq}: detailsJcs is not RFC 8785 canonical text`);
  return {
    ...canonical.event,
    producer,
    seq,
    previousHash: hexBytes(e['previousHash'], HASH_LENGTH, 'previousHash'),
    eventHash: hexBytes(e['eventHash'], HASH_LENGTH, 'eventHash'),
    signature: hexBytes(e['signature'], SIGNATURE_LENGTH, 'signature'),
  };
}

/** A GapSource over `bulwark.audit.query`, following `nextCursor` page by page. */
export function queryGapSource(query: AuditQuery): GapSource {
  return {
    async *fetch(range: GapRange) {
      let cursor: string | undefined;
      for (;;) {
        const body = {
          fromSeq: range.fromSeq,
          ...(range.toSeq === undefined ? {} : { toSeq: range.toSeq }),
          ...(range.eventTypes !== undefined ? { eventTypes: range.eventTypes } : range.control ? { eventTypes: CONTROL_EVENT_TYPES } : {}),
          limit: PAGE,
          ...(cursor === undefined ? {} : { cursor }),
        };
        const reply = await query(body);
        if (typeof reply !== 'object' || reply === null || !Array.isArray((reply as { events?: unknown }).events)) throw replyError('no events list');
        const { events, nextCursor } = reply as { events: unknown[]; nextCursor?: unknown };
        for (const json of events) yield ledgerEventOfJson(json);
        if (nextCursor === undefined) return;
        if (typeof nextCursor !== 'string' || nextCursor === cursor) throw replyError('nextCursor is not a new cursor');
        cursor = nextCursor;
      }
    },
  };
}
