import { describe, expect, it } from 'vitest';
import { BusRequestError } from '../errors.js';
import { decodeReply, decodeRequest, encodeReply, encodeRequest, REPLY_PREFIX_LENGTH, REQUEST_ID_LENGTH } from './rpc-wire.js';

const id = Uint8Array.from({ length: REQUEST_ID_LENGTH }, (_, i) => i + 1);
const text = (s: string) => new TextEncoder().encode(s);
const MAX = 1_000_000;

describe('request plaintext', () => {
  it('carries the command it was sealed for, and gives back the body on that command', () => {
    const plaintext = encodeRequest(id, 'bulwark.policy.evaluate', text('{"a":1}'));
    const decoded = decodeRequest(plaintext, 'bulwark.policy.evaluate');
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.requestId).toEqual(id);
    expect(new TextDecoder().decode(decoded.body)).toBe('{"a":1}');
  });

  it('refuses a request read for another command, however similar', () => {
    const plaintext = encodeRequest(id, 'bulwark.policy.evaluate', text('{}'));
    for (const other of ['bulwark.policy.admin.list', 'bulwark.policy.evaluate.batch', 'bulwark.policy.evaluat', 'bulwark.policy.evaluatE', '']) {
      const decoded = decodeRequest(plaintext, other);
      expect(decoded).toMatchObject({ ok: false, reason: 'E_BUS_COMMAND_MISMATCH' });
    }
    expect(decodeRequest(plaintext, 'bulwark.policy.admin.list')).toMatchObject({ detail: 'request sealed for "bulwark.policy.evaluate" arrived for bulwark.policy.admin.list' });
  });

  it('refuses a request too short for its fields', () => {
    expect(decodeRequest(new Uint8Array(REQUEST_ID_LENGTH), 'bulwark.policy.evaluate')).toMatchObject({ ok: false, reason: 'E_BUS_REQUEST_SHAPE' });
    const truncated = encodeRequest(id, 'bulwark.policy.evaluate', new Uint8Array(0)).subarray(0, REQUEST_ID_LENGTH + 5);
    expect(decodeRequest(truncated, 'bulwark.policy.evaluate')).toMatchObject({ ok: false, reason: 'E_BUS_REQUEST_SHAPE' });
  });
});

describe('reply plaintext', () => {
  it('pads replies of different lengths to one bucket and gives back each body exactly', () => {
    const bodies = [text(''), text('{"decision":"Allow"}'), text('x'.repeat(400)), text('y'.repeat(512 - REPLY_PREFIX_LENGTH))];
    const replies = bodies.map((body) => encodeReply(id, { ok: true, body }, MAX));
    expect(new Set(replies.map((r) => r.length))).toEqual(new Set([512]));
    replies.forEach((r, i) => expect(decodeReply(r, id, 'test')).toEqual({ ok: true, body: bodies[i] }));
    expect(encodeReply(id, { ok: true, body: text('z'.repeat(512 - REPLY_PREFIX_LENGTH + 1)) }, MAX).length).toBe(1024);
  });

  it('pads error replies the same way', () => {
    const reply = encodeReply(id, { ok: false, code: 'E_X', message: 'no' }, MAX);
    expect(reply.length).toBe(512);
    expect(decodeReply(reply, id, 'test')).toEqual({ ok: false, code: 'E_X', message: 'no' });
  });

  it('writes zeros as padding whatever the pooled memory held', () => {
    for (let i = 0; i < 50; i++) {
      const reply = encodeReply(id, { ok: true, body: text('abc') }, MAX);
      expect(reply.subarray(REPLY_PREFIX_LENGTH + 3).every((b) => b === 0)).toBe(true);
    }
  });

  it('refuses a reply whose padding is not zeros, or whose body length overruns it', () => {
    const reply = encodeReply(id, { ok: true, body: text('abc') }, MAX);
    const dirty = reply.slice();
    dirty[dirty.length - 1] = 1;
    expect(() => decodeReply(dirty, id, 'test')).toThrow(expect.objectContaining({ code: 'E_BUS_REPLY_PADDING' }));
    const long = reply.slice();
    new DataView(long.buffer).setUint32(REQUEST_ID_LENGTH + 1, reply.length, true);
    expect(() => decodeReply(long, id, 'test')).toThrow(BusRequestError);
  });

  it('refuses a reply to another request', () => {
    const reply = encodeReply(id, { ok: true, body: text('abc') }, MAX);
    expect(() => decodeReply(reply, new Uint8Array(REQUEST_ID_LENGTH), 'test')).toThrow(expect.objectContaining({ code: 'E_BUS_REPLY_MISMATCH' }));
  });
});
