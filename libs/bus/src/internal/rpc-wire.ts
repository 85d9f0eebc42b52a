/**
 * Plaintext layout inside request/reply frames (encrypted by the session):
 *   request = request id (16) | body
 *   reply   = request id (16) | status (1: 0 ok, 1 error) | body
 * The request id binds a reply to its request: two replies of one session cannot be
 * swapped between concurrent requests, even by someone who reorders inbox deliveries.
 * An error body is JSON `{ code, message }`.
 */
import { allocateUninitialized } from '@bulwark/crypto';
import { BusRequestError } from '../errors.js';

export const REQUEST_ID_LENGTH = 16;
const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeRequest(requestId: Uint8Array, body: Uint8Array): Uint8Array {
  const out = allocateUninitialized(REQUEST_ID_LENGTH + body.length);
  out.set(requestId, 0);
  out.set(body, REQUEST_ID_LENGTH);
  return out;
}

export function decodeRequest(plaintext: Uint8Array): { requestId: Uint8Array; body: Uint8Array } | undefined {
  if (plaintext.length < REQUEST_ID_LENGTH) return undefined;
  return { requestId: plaintext.subarray(0, REQUEST_ID_LENGTH), body: plaintext.subarray(REQUEST_ID_LENGTH) };
}

export type ReplyBody = { ok: true; body: Uint8Array } | { ok: false; code: string; message: string };

export function encodeReply(requestId: Uint8Array, reply: ReplyBody): Uint8Array {
  const body = reply.ok ? reply.body : enc.encode(JSON.stringify({ code: reply.code, message: reply.message }));
  const out = allocateUninitialized(REQUEST_ID_LENGTH + 1 + body.length);
  out.set(requestId, 0);
  out[REQUEST_ID_LENGTH] = reply.ok ? 0 : 1;
  out.set(body, REQUEST_ID_LENGTH + 1);
  return out;
}

/** Decodes a reply and checks it answers `requestId`; anything else throws. */
export function decodeReply(plaintext: Uint8Array, requestId: Uint8Array, where: string): ReplyBody {
  if (plaintext.length < REQUEST_ID_LENGTH + 1 || !sameBytes(plaintext.subarray(0, REQUEST_ID_LENGTH), requestId)) {
    throw new BusRequestError('E_BUS_REPLY_MISMATCH', `reply from ${where} does not answer this request`, { where });
  }
  const status = plaintext[REQUEST_ID_LENGTH];
  const body = plaintext.subarray(REQUEST_ID_LENGTH + 1);
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

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
