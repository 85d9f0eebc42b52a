/**
 * Plaintext layout inside request/reply frames (encrypted and authenticated by the session):
 *   request = request id (16) | command length (u8) | command (ASCII) | body
 *   reply   = request id (16) | status (1: 0 ok, 1 error) | body length (u32 LE) | body | zeros
 *
 * - The request id binds a reply to its request: two replies of one session cannot be
 *   swapped between concurrent requests, even by someone who reorders inbox deliveries.
 * - The command (`bulwark.policy.evaluate`, without the bus namespace) binds the request to
 *   the command it was sealed for (DESIGN §3a "Requests bind their command"): a frame moved
 *   to another command's direct subject is refused by the server, which compares it with the
 *   subject the frame arrived on. The namespace is left out: a responder serves one namespace,
 *   and its sessions (whose keys open the frame) exist only there.
 * - A reply is padded with zeros to a size bucket (reply-padding.ts), so that its length on
 *   the wire does not tell what it says (an Allow from a Deny). The body length makes the
 *   padding unambiguous; the client refuses a reply whose padding is not all zeros.
 * An error body is JSON `{ code, message }`.
 */
import { allocateUninitialized } from '@bulwark/crypto';
import { BusRequestError } from '../errors.js';
import { MIN_REPLY_BUCKET, paddedReplyLength } from './reply-padding.js';

export const REQUEST_ID_LENGTH = 16;
/** request id, status, body length. */
export const REPLY_PREFIX_LENGTH = REQUEST_ID_LENGTH + 1 + 4;
/**
 * The largest reply body that still lands in the smallest padding bucket. A service whose
 * answers must not be told apart by their length keeps every answer within it.
 */
export const SMALLEST_BUCKET_REPLY_BODY = MIN_REPLY_BUCKET - REPLY_PREFIX_LENGTH;
/** Command subjects are subject tokens (ASCII), at most this long. */
export const MAX_COMMAND_LENGTH = 255;
const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeRequest(requestId: Uint8Array, command: string, body: Uint8Array): Uint8Array {
  if (command.length > MAX_COMMAND_LENGTH) throw new RangeError(`command subject ${command} is over ${MAX_COMMAND_LENGTH} characters`);
  const start = REQUEST_ID_LENGTH + 1 + command.length;
  const out = allocateUninitialized(start + body.length);
  out.set(requestId, 0);
  out[REQUEST_ID_LENGTH] = command.length;
  // Subject tokens are ASCII (assertToken): one byte per character, no encoder needed.
  for (let i = 0; i < command.length; i++) out[REQUEST_ID_LENGTH + 1 + i] = command.charCodeAt(i);
  out.set(body, start);
  return out;
}

export type DecodedRequest =
  | { readonly ok: true; readonly requestId: Uint8Array; readonly body: Uint8Array }
  /** E_BUS_REQUEST_SHAPE: too short to hold its fields; E_BUS_COMMAND_MISMATCH: sealed for another command. */
  | { readonly ok: false; readonly reason: 'E_BUS_REQUEST_SHAPE' | 'E_BUS_COMMAND_MISMATCH'; readonly detail: string };

/** Reads a request and checks it was sealed for `command`, the command of the subject it arrived on. */
export function decodeRequest(plaintext: Uint8Array, command: string): DecodedRequest {
  if (plaintext.length < REQUEST_ID_LENGTH + 1) return { ok: false, reason: 'E_BUS_REQUEST_SHAPE', detail: `request of ${plaintext.length} bytes` };
  const length = plaintext[REQUEST_ID_LENGTH]!;
  const start = REQUEST_ID_LENGTH + 1 + length;
  if (plaintext.length < start) return { ok: false, reason: 'E_BUS_REQUEST_SHAPE', detail: `request of ${plaintext.length} bytes names a ${length}-byte command` };
  let same = length === command.length;
  for (let i = 0; same && i < length; i++) same = plaintext[REQUEST_ID_LENGTH + 1 + i] === command.charCodeAt(i);
  if (!same) {
    const bound = dec.decode(plaintext.subarray(REQUEST_ID_LENGTH + 1, start));
    return { ok: false, reason: 'E_BUS_COMMAND_MISMATCH', detail: `request sealed for ${JSON.stringify(bound)} arrived for ${command}` };
  }
  return { ok: true, requestId: plaintext.subarray(0, REQUEST_ID_LENGTH), body: plaintext.subarray(start) };
}

export type ReplyBody = { ok: true; body: Uint8Array } | { ok: false; code: string; message: string };

/**
 * The reply plaintext, padded to its bucket. `maxLength` is the largest plaintext the reply
 * frame can carry (the top bucket).
 */
export function encodeReply(requestId: Uint8Array, reply: ReplyBody, maxLength: number): Uint8Array {
  const body = reply.ok ? reply.body : enc.encode(JSON.stringify({ code: reply.code, message: reply.message }));
  const length = REPLY_PREFIX_LENGTH + body.length;
  const out = allocateUninitialized(paddedReplyLength(length, maxLength));
  out.set(requestId, 0);
  out[REQUEST_ID_LENGTH] = reply.ok ? 0 : 1;
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(REQUEST_ID_LENGTH + 1, body.length, true);
  out.set(body, REPLY_PREFIX_LENGTH);
  // Pooled memory holds old bytes: the padding is written, never left as found.
  out.fill(0, length);
  return out;
}

/** Decodes a reply, checks it answers `requestId` and that its padding is zeros; anything else throws. */
export function decodeReply(plaintext: Uint8Array, requestId: Uint8Array, where: string): ReplyBody {
  if (plaintext.length < REPLY_PREFIX_LENGTH || !sameBytes(plaintext.subarray(0, REQUEST_ID_LENGTH), requestId)) {
    throw new BusRequestError('E_BUS_REPLY_MISMATCH', `reply from ${where} does not answer this request`, { where });
  }
  const status = plaintext[REQUEST_ID_LENGTH];
  const length = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength).getUint32(REQUEST_ID_LENGTH + 1, true);
  const end = REPLY_PREFIX_LENGTH + length;
  if (end > plaintext.length || !allZero(plaintext, end)) {
    throw new BusRequestError('E_BUS_REPLY_PADDING', `reply from ${where} has a body length or padding that does not match its size`, { where, length, size: plaintext.length });
  }
  const body = plaintext.subarray(REPLY_PREFIX_LENGTH, end);
  if (status === 0) return { ok: true, body };
  if (status === 1) {
    try {
      const e = JSON.parse(dec.decode(body)) as { code?: unknown; message?: unknown };
      return { ok: false, code: String(e.code ?? 'E_REMOTE'), message: String(e.message ?? '') };
    } catch {
      return { ok: false, code: 'E_REMOTE', message: 'unreadable error body' };
    }
  }
  throw new BusRequestError('E_BUS_REPLY_MISMATCH', `reply from ${where} has unknown status ${String(status)}`, { where });
}

function allZero(bytes: Uint8Array, from: number): boolean {
  let d = 0;
  for (let i = from; i < bytes.length; i++) d |= bytes[i]!;
  return d === 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
