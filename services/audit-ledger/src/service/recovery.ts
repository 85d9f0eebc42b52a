/**
 * `bulwark.audit.republish` (DESIGN §2, operator's guide "Recovery"): after BULWARK_LEDGER
 * was lost (deleted, purged), the ledger re-publishes every committed event from its database,
 * the source of truth, so that every reader rebuilding from the stream (the policy service's
 * policies, the key manager's book) ends on the same state, with the same control-batch
 * continuity it checks. Only into an existing, empty stream (anything else would duplicate
 * what readers already hold), only for an administrator, and only after the whole ledger
 * verified (chain, signatures, producers, Merkle checkpoints): what does not verify is never
 * put back on the bus. Without `apply` it says what it would do. `hold` first pauses the
 * ledger's own publication (up to a minute, until `apply`), so that the operator can re-create
 * or purge the stream without newer events going in before the re-published ones.
 */
import { streamState, type Bus, type CommandRequest } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { BulwarkError } from '@bulwark/errors';
import type { AuditLedger, LedgerDb } from '../ledger.js';
import { toNumber } from '../store/rows.js';
import { verifyLedger } from '../verify.js';
import { parseBody, requestError } from './protocol.js';
import type { WireEvent } from './batch-wire.js';
import type { LedgerPublisher, Republisher } from './republisher.js';

export class LedgerRecoveryError extends BulwarkError {}

type StreamView = { readonly name: string; readonly messages: number; readonly firstSeq: number; readonly lastSeq: number } | null;

export interface RepublishReply {
  readonly applied: boolean;
  /** Events in the ledger. */
  readonly size: number;
  /** publish_state.published before the command: what the ledger believed was on the stream. */
  readonly published: number;
  readonly stream: StreamView;
  /** `republish`: the stream is empty and the ledger is not; `none`: nothing to do (`reason` says why). */
  readonly action: 'republish' | 'none';
  readonly reason: string;
  /** With `apply`: the events re-published and the stream afterwards. */
  readonly republished?: number;
  readonly streamAfter?: StreamView;
}

export interface RecoveryContext {
  readonly bus: Bus;
  readonly db: LedgerDb;
  readonly ledger: AuditLedger;
  readonly crypto: CryptoProvider;
  readonly republisher: Republisher;
  /** A fresh publisher of the full batches for a re-publication from seq 0. */
  readonly fullStream?: () => { readonly publisher: LedgerPublisher; readonly published?: (events: readonly WireEvent[]) => void };
  /** Who may ask (SYMBIONT_LEDGER_ADMINS). */
  readonly admins: readonly string[];
}

const SUBJECT = 'bulwark.audit.republish';
/** How long a `hold` keeps publication paused if no `apply` follows (the operator's command died). */
const HOLD_MS = 60_000;

async function plan(ctx: RecoveryContext): Promise<Omit<RepublishReply, 'applied'>> {
  const size = (await ctx.ledger.head()).size;
  const state = await ctx.db.selectFrom('publish_state').select('published').executeTakeFirstOrThrow();
  const published = toNumber(state.published, 'publish_state.published');
  const stream = (await streamState(ctx.bus, 'ledger')) ?? null;
  if (stream === null) return { size, published, stream, action: 'none', reason: `${ctx.bus.streamName('ledger')} does not exist: create it first (bulwark recover does, as the operator)` };
  if (size === 0) return { size, published, stream, action: 'none', reason: 'the ledger is empty' };
  if (stream.messages > 0) return { size, published, stream, action: 'none', reason: `${stream.name} holds ${stream.messages} messages: not lost (readers fill any gap from the ledger); re-publishing would duplicate them` };
  return { size, published, stream, action: 'republish', reason: `${stream.name} is empty and the ledger holds ${size} events` };
}

export async function republishCommand(ctx: RecoveryContext, request: CommandRequest): Promise<RepublishReply> {
  if (!ctx.admins.includes(request.peer)) {
    throw new LedgerRecoveryError('E_LEDGER_FORBIDDEN', `${SUBJECT}: principal ${request.peer} is not a ledger administrator (SYMBIONT_LEDGER_ADMINS)`, { peer: request.peer });
  }
  const body = parseBody(SUBJECT, request.body);
  const apply = body['apply'];
  const hold = body['hold'];
  if (apply !== undefined && typeof apply !== 'boolean') throw requestError(SUBJECT, 'apply must be a boolean');
  if (hold !== undefined && typeof hold !== 'boolean') throw requestError(SUBJECT, 'hold must be a boolean');
  if (hold === true && apply === true) throw requestError(SUBJECT, 'hold and apply are two steps: hold first, then apply');
  if (hold === true) {
    // The operator re-creates or purges the stream next; meanwhile nothing newer goes in first.
    await ctx.republisher.hold(HOLD_MS);
    return { applied: false, ...(await plan(ctx)) };
  }
  if (apply !== true) return { applied: false, ...(await plan(ctx)) };
  try {
    return await republish(ctx);
  } finally {
    ctx.republisher.release();
  }
}

async function republish(ctx: RecoveryContext): Promise<RepublishReply> {
  const before = await plan(ctx);
  if (before.action === 'none') return { applied: false, ...before };
  const report = await verifyLedger(ctx.db, { crypto: ctx.crypto, origin: ctx.ledger.origin, logKey: ctx.ledger.genesisKey });
  if (!report.ok) {
    throw new LedgerRecoveryError('E_LEDGER_UNVERIFIED', `${SUBJECT}: the ledger does not verify (${report.message}); nothing was re-published`, {
      ...(report.seq === undefined ? {} : { seq: report.seq }),
      problem: report.problem,
    });
  }
  const republished = await ctx.republisher.republishAll(ctx.fullStream?.());
  const streamAfter = (await streamState(ctx.bus, 'ledger')) ?? null;
  if (streamAfter === null || streamAfter.messages === 0) {
    // JetStream keeps a purged stream's duplicate window (2 minutes): the same message ids were dropped.
    throw new LedgerRecoveryError('E_LEDGER_REPUBLISH_DROPPED', `${SUBJECT}: ${before.stream?.name} is still empty after re-publishing ${republished} events (a purge keeps JetStream's duplicate window): delete the stream and run recover again, or wait 2 minutes`, {});
  }
  return { applied: true, ...before, republished, streamAfter };
}
