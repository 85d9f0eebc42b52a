/**
 * The `bulwark.tools.*` command handlers. They never change the pin store themselves: a pin
 * or a revocation is published as a ledger event and applied when the verified ledger reader
 * brings it back committed (projection.ts); a handler that needs it waits for that.
 */
import { Commands, Events, type CommandHandler, type CommandRequest, type EventSubject } from '@bulwark/bus';
import type { EventType } from '@bulwark/events';
import {
  isFingerprint,
  isJsonObject,
  parseJsonBytes,
  parseSignedTool,
  reviewSchema,
  SchemaPinError,
  signSchema,
  type Discovered,
  type JsonObject,
  type JsonValue,
  type KnownTool,
  type PinEntry,
  type PinMode,
  type RevocationDocument,
  type ToolCheck,
} from '@bulwark/schemapin';
import { ToolsInputError, ToolsServiceError } from './errors.js';
import type { PinProjection } from './projection.js';
import type { PendingReview, ReviewQueue } from './reviews.js';

export interface ToolsContext {
  readonly projection: PinProjection;
  readonly reviews: ReviewQueue;
  /** Publishes one event sealed to the ledger; resolves to its event id once JetStream has it. */
  publish(eventType: EventType, subject: EventSubject, agentId: string, details: JsonObject): Promise<string>;
  /** Discovery and revocation documents for a domain (default: the guarded HTTPS fetch). */
  resolveDiscovery(domain: string): Promise<Discovered>;
  readonly admins: readonly string[];
  readonly mode: PinMode;
  readonly reviewThreshold: number;
  readonly applyWaitMs: number;
  /** Our own provider key, for tools we operate (submit → review → sign). */
  readonly signing?: { readonly domain: string; readonly privateKeyPem: string };
}

/** What `bulwark.tools.verify` answers. */
export interface VerifyReply {
  readonly verdict: ToolCheck['verdict'];
  readonly valid: boolean;
  readonly tool_id: string;
  readonly domain: string;
  readonly error_code: string | null;
  readonly error_message?: string;
  readonly key_pinning_status: string | null;
  readonly key_fingerprint: string | null;
  readonly content_hash: string | null;
  readonly warnings: string[];
  readonly review_id?: string;
  readonly lineage?: string;
}

const encoder = new TextEncoder();
const reply = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

function body(req: CommandRequest): JsonObject {
  const value = parseJsonBytes(req.body, req.subject, { maxBytes: 512 * 1024 });
  if (!isJsonObject(value)) throw new ToolsInputError('E_TOOLS_REQUEST', `${req.subject}: the body must be a JSON object`);
  return value;
}

function text(b: JsonObject, field: string, subject: string): string {
  const v = b[field];
  if (typeof v !== 'string' || v === '' || v.length > 512) throw new ToolsInputError('E_TOOLS_REQUEST', `${subject}: ${field} must be a non-empty string`);
  return v;
}

function requireAdmin(ctx: ToolsContext, req: CommandRequest): void {
  if (!ctx.admins.includes(req.peer)) throw new ToolsInputError('E_TOOLS_FORBIDDEN', `${req.subject}: ${req.peer} is not a tools administrator`, { peer: req.peer });
}

/** Publishes a pin or revocation and waits for the ledger to bring it back applied. */
async function committed(ctx: ToolsContext, eventType: 'tools.pinned' | 'tools.revoked', agentId: string, details: JsonObject): Promise<string> {
  const subject = eventType === 'tools.pinned' ? Events.tools.pinned : Events.tools.revoked;
  const eventId = await ctx.publish(eventType, subject, agentId, details);
  if (!(await ctx.projection.waitFor(eventId, ctx.applyWaitMs))) {
    throw new ToolsServiceError('E_TOOLS_NOT_COMMITTED', `${eventType} ${eventId} was not committed and applied within ${ctx.applyWaitMs} ms`, { eventId });
  }
  return eventId;
}

const pinDetails = (toolId: string, domain: string, pin: PinEntry, reason: string, by: string): JsonObject => ({
  tool_id: toolId,
  domain,
  fingerprint: pin.fingerprint,
  ...(pin.contentHash === undefined ? {} : { content_hash: pin.contentHash }),
  ...(pin.schemaHash === undefined ? {} : { schema_hash: pin.schemaHash }),
  reason,
  by,
});

/** Adds the keys revoked through the ledger to the provider's own revocation document. */
function withLedgerRevocations(ctx: ToolsContext, domain: string, doc: RevocationDocument | null): RevocationDocument | null {
  if (ctx.projection.revoked.size === 0) return doc;
  const ours = [...ctx.projection.revoked].map((fingerprint) => ({ fingerprint, revoked_at: '', reason: 'key_compromise' as const }));
  return { schemapin_version: '1.2', domain, updated_at: '', ...doc, revoked_keys: [...(doc?.revoked_keys ?? []), ...ours] };
}

function knownTools(ctx: ToolsContext): KnownTool[] {
  return [...ctx.projection.pins.entries()].map(([key]) => {
    const at = key.lastIndexOf('@');
    return { toolId: key.slice(0, at), domain: key.slice(at + 1), name: key.slice(0, at) };
  });
}

export function createHandlers(ctx: ToolsContext): Partial<Record<(typeof Commands.tools)[keyof typeof Commands.tools], CommandHandler>> {
  const verify: CommandHandler = async (req) => {
    const b = body(req);
    const toolId = text(b, 'tool_id', req.subject);
    const domain = text(b, 'domain', req.subject);
    const signed = parseSignedTool(b['signed'] ?? null, `${req.subject} signed`);
    const base = { tool_id: toolId, domain };
    let check: ToolCheck;
    try {
      const { discovery, revocation } = await ctx.resolveDiscovery(domain);
      check = ctx.projection.cache.check(ctx.projection.pins, { toolId, domain, signed, discovery, revocation: withLedgerRevocations(ctx, domain, revocation), mode: ctx.mode, pinContent: true });
    } catch (err) {
      if (!(err instanceof SchemaPinError)) throw err;
      const out: VerifyReply = { ...base, verdict: 'UnknownProvider', valid: false, error_code: err.errorCode, error_message: err.message, key_pinning_status: null, key_fingerprint: null, content_hash: null, warnings: [] };
      await ctx.publish('tools.verified', Events.tools.verified, req.peer, { ...base, verdict: out.verdict, error_code: err.errorCode });
      return reply(out);
    }
    let verdict = check.verdict;
    let reviewId: string | undefined;
    // A first verified use pins, through the ledger, before the tool is called Trusted.
    if (verdict === 'Trusted' && check.newPin !== null && ctx.projection.pins.get(toolId, domain)?.contentHash !== check.newPin.contentHash) {
      await committed(ctx, 'tools.pinned', req.peer, pinDetails(toolId, domain, check.newPin, ctx.projection.pins.get(toolId, domain) === undefined ? 'first_use' : 'content_recorded', req.peer));
    }
    if (verdict === 'PendingApproval' || verdict === 'ToolChanged') {
      const schema = signed.schema as JsonValue;
      const pin = verdict === 'ToolChanged' ? { fingerprint: check.result.key_fingerprint!, contentHash: check.contentHash!, schemaHash: check.schemaHash! } : check.newPin!;
      const pending = ctx.reviews.add({
        kind: verdict === 'ToolChanged' ? 'tool_changed' : 'first_use',
        toolId,
        domain,
        schema,
        review: reviewSchema(schema, { domain, knownTools: knownTools(ctx), reviewThreshold: ctx.reviewThreshold }),
        pin,
        ...(check.lineage === undefined ? {} : { lineage: check.lineage }),
        requestedBy: req.peer,
      });
      reviewId = pending.id;
    }
    const r = check.result;
    const out: VerifyReply = {
      ...base,
      verdict,
      valid: verdict === 'Trusted',
      error_code: r.error_code ?? null,
      ...(r.error_message === undefined ? {} : { error_message: r.error_message }),
      key_pinning_status: r.key_pinning?.status ?? null,
      key_fingerprint: r.key_fingerprint ?? null,
      content_hash: check.contentHash,
      warnings: r.warnings ?? [],
      ...(reviewId === undefined ? {} : { review_id: reviewId }),
      ...(check.lineage === undefined ? {} : { lineage: check.lineage }),
    };
    verdict = out.verdict;
    await ctx.publish('tools.verified', Events.tools.verified, req.peer, {
      ...base,
      verdict,
      error_code: out.error_code,
      fingerprint: out.key_fingerprint,
      content_hash: out.content_hash,
      ...(reviewId === undefined ? {} : { review_id: reviewId }),
    });
    return reply(out);
  };

  /** Pre-provisions a pin (strict mode's only source of trust). Another key for a pinned tool is an error. */
  const pin: CommandHandler = async (req) => {
    requireAdmin(ctx, req);
    const b = body(req);
    const toolId = text(b, 'tool_id', req.subject);
    const domain = text(b, 'domain', req.subject);
    const fingerprint = b['fingerprint'];
    const contentHash = b['content_hash'];
    if (!isFingerprint(fingerprint)) throw new ToolsInputError('E_TOOLS_REQUEST', `${req.subject}: fingerprint must be sha256:<64 hex>`);
    if (contentHash !== undefined && !isFingerprint(contentHash)) throw new ToolsInputError('E_TOOLS_REQUEST', `${req.subject}: content_hash must be sha256:<64 hex>`);
    const existing = ctx.projection.pins.get(toolId, domain);
    if (existing !== undefined && existing.fingerprint !== fingerprint) {
      throw new ToolsInputError('E_TOOLS_PIN_CONFLICT', `${toolId}@${domain} is already pinned to ${existing.fingerprint}: pinning again with another key is an error (revoke the pin first)`);
    }
    if (ctx.projection.revoked.has(fingerprint)) throw new ToolsInputError('E_TOOLS_KEY_REVOKED', `${fingerprint} is revoked`);
    const eventId = await committed(ctx, 'tools.pinned', req.peer, pinDetails(toolId, domain, { fingerprint, ...(contentHash === undefined ? {} : { contentHash }) }, 'provisioned', req.peer));
    return reply({ tool_id: toolId, domain, fingerprint, eventId, applied: true });
  };

  const revoke: CommandHandler = async (req) => {
    requireAdmin(ctx, req);
    const b = body(req);
    const reason = typeof b['reason'] === 'string' ? b['reason'] : 'key_compromise';
    let details: JsonObject;
    if (b['fingerprint'] !== undefined) {
      if (!isFingerprint(b['fingerprint'])) throw new ToolsInputError('E_TOOLS_REQUEST', `${req.subject}: fingerprint must be sha256:<64 hex>`);
      details = { fingerprint: b['fingerprint'], reason, by: req.peer };
    } else details = { tool_id: text(b, 'tool_id', req.subject), domain: text(b, 'domain', req.subject), reason, by: req.peer };
    const eventId = await committed(ctx, 'tools.revoked', req.peer, details);
    return reply({ ...details, eventId, applied: true });
  };

  /** A tool of a provider we operate: reviewed, then signed at once or held for a person. */
  const submit: CommandHandler = async (req) => {
    requireAdmin(ctx, req);
    if (ctx.signing === undefined) throw new ToolsInputError('E_TOOLS_NO_SIGNING_KEY', `${req.subject}: this service signs for no provider (no signing key configured)`);
    const b = body(req);
    const toolId = text(b, 'tool_id', req.subject);
    const schema = b['schema'];
    if (!isJsonObject(schema)) throw new ToolsInputError('E_TOOLS_REQUEST', `${req.subject}: schema must be a JSON object`);
    const domain = ctx.signing.domain;
    const review = reviewSchema(schema, { domain, knownTools: knownTools(ctx), reviewThreshold: ctx.reviewThreshold });
    await ctx.publish('tools.submitted', Events.tools.submitted, req.peer, { tool_id: toolId, domain, by: req.peer });
    await ctx.publish('tools.analyzed', Events.tools.analyzed, req.peer, {
      tool_id: toolId,
      domain,
      risk_score: review.risk_score,
      recommendation: review.recommendation,
      findings: review.findings.map((f) => `${f.rule_id}@${f.where}`),
    });
    if (review.recommendation === 'approve') return reply({ status: 'signed', domain, review, signed: await signFor(ctx, toolId, schema, req.peer) });
    const pending = ctx.reviews.add({ kind: 'submission', toolId, domain, schema, review, requestedBy: req.peer });
    return reply({ status: 'pending_review', domain, review_id: pending.id, review });
  };

  const reviewList: CommandHandler = async (req) => {
    requireAdmin(ctx, req);
    return reply({ pending: ctx.reviews.list().map(({ schema: _schema, ...rest }) => rest) });
  };

  /** `{ review_id, approve: true|false }`: approve signs (submission) or pins (first use, changed tool); false rejects. */
  const approve: CommandHandler = async (req) => {
    requireAdmin(ctx, req);
    const b = body(req);
    const id = text(b, 'review_id', req.subject);
    const item = ctx.reviews.get(id);
    if (item === undefined) throw new ToolsInputError('E_TOOLS_REVIEW', `${req.subject}: no pending review ${id}`);
    if (b['approve'] === false) {
      ctx.reviews.take(id);
      await ctx.publish('tools.rejected', Events.tools.rejected, req.peer, { tool_id: item.toolId, domain: item.domain, kind: item.kind, review_id: id, by: req.peer });
      return reply({ review_id: id, status: 'rejected' });
    }
    if (b['approve'] !== true) throw new ToolsInputError('E_TOOLS_REQUEST', `${req.subject}: approve must be true or false`);
    ctx.reviews.take(id);
    return reply(await approveItem(ctx, item, req.peer));
  };

  return {
    [Commands.tools.verify]: verify,
    [Commands.tools.pin]: pin,
    [Commands.tools.revoke]: revoke,
    [Commands.tools.submit]: submit,
    [Commands.tools.review]: reviewList,
    [Commands.tools.approve]: approve,
  };
}

async function approveItem(ctx: ToolsContext, item: PendingReview, by: string): Promise<unknown> {
  if (item.kind === 'submission') return { review_id: item.id, status: 'signed', domain: item.domain, signed: await signFor(ctx, item.toolId, item.schema as JsonObject, by) };
  const pin = item.pin!;
  const existing = ctx.projection.pins.get(item.toolId, item.domain);
  // A changed tool keeps its key: replace the content pin. A first use: the pin, as verified.
  if (existing !== undefined && existing.fingerprint !== pin.fingerprint) throw new ToolsInputError('E_TOOLS_PIN_CONFLICT', `${item.toolId}@${item.domain} is pinned to another key now`);
  const eventId = await committed(ctx, 'tools.pinned', by, pinDetails(item.toolId, item.domain, pin, item.kind === 'tool_changed' ? 'approved_change' : 'approved_first_use', by));
  return { review_id: item.id, status: 'pinned', eventId, fingerprint: pin.fingerprint, content_hash: pin.contentHash ?? null };
}

async function signFor(ctx: ToolsContext, toolId: string, schema: JsonObject, by: string): Promise<{ schema: JsonValue; signature: string; signed_at?: string }> {
  const signed = signSchema(schema, ctx.signing!.privateKeyPem);
  await ctx.publish('tools.signed', Events.tools.signed, by, { tool_id: toolId, domain: ctx.signing!.domain, signature: signed.signature, by });
  return signed;
}
