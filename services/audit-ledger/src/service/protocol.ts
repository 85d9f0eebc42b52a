/**
 * The bodies of `bulwark.audit.{query,proof.inclusion,proof.consistency,checkpoint,verify}`:
 * UTF-8 JSON inside the Noise session. Byte fields are lowercase hex; sizes and seqs are
 * JSON numbers (safe integers). A malformed request is an InputError `E_AUDIT_REQUEST`.
 */
import { InputError } from '@bulwark/errors';

export interface QueryRequest {
  readonly agentId?: string;
  readonly eventType?: string;
  /** Any of these types (known event types, 1..64 of them); with `eventType` too, either matches. */
  readonly eventTypes?: readonly string[];
  /** Epoch ms, inclusive. */
  readonly fromTime?: number;
  /** Epoch ms, exclusive. */
  readonly toTime?: number;
  /** Inclusive. */
  readonly fromSeq?: number;
  /** Inclusive. */
  readonly toSeq?: number;
  /** Page size, 1..1000 (default 100; at most 100 with proofs). */
  readonly limit?: number;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
  /** Add each event's inclusion proof against the latest signed checkpoint. */
  readonly withProof?: boolean;
}

export interface EventJson {
  readonly seq: number;
  readonly eventId: string;
  readonly timestamp: number;
  /** The principal whose authenticated frame delivered the event to the ledger (DESIGN §3a); hashed. */
  readonly producer: string;
  readonly agentId: string;
  readonly eventType: string;
  readonly details: unknown;
  /** The exact RFC 8785 text of details that was hashed (what a reader recomputes event_hash from). */
  readonly detailsJcs: string;
  readonly previousHash: string;
  readonly eventHash: string;
  readonly signature: string;
  /** With `withProof`: the audit path to the checkpoint's root, or null for an event the checkpoint does not cover yet. */
  readonly proof?: readonly string[] | null;
}

export interface QueryReply {
  readonly events: readonly EventJson[];
  /** Present when more events match: pass it back as `cursor`. */
  readonly nextCursor?: string;
  /** With `withProof`: the signed checkpoint (C2SP note) the proofs lead to. */
  readonly checkpoint?: CheckpointReply;
}

export interface InclusionRequest {
  readonly seq?: number;
  readonly eventId?: string;
  /** Default: the latest checkpoint's size. */
  readonly treeSize?: number;
}

export interface InclusionReply {
  readonly seq: number;
  readonly treeSize: number;
  readonly leafHash: string;
  readonly proof: readonly string[];
}

export interface ConsistencyRequest {
  readonly size1: number;
  /** Default: the latest checkpoint's size. */
  readonly size2?: number;
}

export interface ConsistencyReply {
  readonly size1: number;
  readonly size2: number;
  readonly proof: readonly string[];
}

export interface CheckpointReply {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: string;
  /** The signed note, with any witness cosignatures. */
  readonly note: string;
}

export interface VerifyRequest {
  /** Both absent: the whole ledger (every hash, link, signature, tree node, checkpoint, the head). */
  readonly fromSeq?: number;
  /** Inclusive. With a range: hashes, links and signatures of those events only. */
  readonly toSeq?: number;
}

export type VerifyReply =
  | { readonly ok: true; readonly scope: 'whole' | 'range'; readonly verified: number; readonly size: number; readonly rootHash?: string }
  | { readonly ok: false; readonly scope: 'whole' | 'range'; readonly seq?: number; readonly problem: string; readonly message: string };

const MAX_BODY = 64 * 1024;

export function parseBody(subject: string, body: Uint8Array): Record<string, unknown> {
  if (body.length > MAX_BODY) throw requestError(subject, `body is ${body.length} bytes, more than ${MAX_BODY}`);
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw requestError(subject, 'body is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw requestError(subject, 'body must be a JSON object');
  return parsed as Record<string, unknown>;
}

export function requestError(subject: string, why: string): InputError {
  return new InputError('E_AUDIT_REQUEST', `${subject}: ${why}`, { subject });
}

export function optionalCount(subject: string, body: Record<string, unknown>, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw requestError(subject, `${key} must be a non-negative integer`);
  return value;
}

export function optionalText(subject: string, body: Record<string, unknown>, key: string, max = 256): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw requestError(subject, `${key} must be a string of 1..${max} characters`);
  return value;
}

export function encodeReply(reply: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(reply));
}
