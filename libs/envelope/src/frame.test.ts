import { describe, expect, it } from 'vitest';
import { HeaderTemplate, inspectFrame, isRejection, MIN_FRAME_SIZE, Mode, parseFrame, SEALED_HANDSHAKE_LENGTH, type FrameView } from './frame.js';
import type { Rejection } from './errors.js';

const sessionId = Uint8Array.from({ length: 16 }, (_, i) => i);

function frameOf(template: HeaderTemplate, bodyLength: number): Uint8Array {
  const frame = template.allocate(0x0102030405060708n, 1_767_225_600_000, bodyLength);
  frame.fill(0xaa, template.length);
  return frame;
}

function parsed(frame: Uint8Array, max = 1 << 20): FrameView {
  const view = parseFrame(frame, max);
  if (isRejection(view)) throw new Error(view.detail);
  return view;
}

function rejected(frame: Uint8Array, max = 1 << 20): Rejection {
  const view = parseFrame(frame, max);
  if (!isRejection(view)) throw new Error('frame parsed');
  return view;
}

describe('frame layout', () => {
  const template = new HeaderTemplate({ mode: Mode.session, sender: 'svc.policy', recipient: 'agent.1', sessionId });

  it('writes the documented byte layout', () => {
    const frame = frameOf(template, 20);
    const expectedHeader = Buffer.concat([
      Buffer.from([1, Mode.session, 10]),
      Buffer.from('svc.policy'),
      Buffer.from([7]),
      Buffer.from('agent.1'),
      Buffer.from(sessionId),
      Buffer.from('0807060504030201', 'hex'),
      Buffer.from('00a8da769b010000', 'hex'), // 1767225600000 = 0x019B76DAA800, little-endian
      Buffer.from([20, 0, 0, 0]),
    ]);
    expect(Buffer.from(frame.subarray(0, template.length)).toString('hex')).toBe(expectedHeader.toString('hex'));
    expect(frame.length).toBe(template.length + 20 + 32);
  });

  it('parses back every field', () => {
    const view = parsed(frameOf(template, 20));
    expect(view).toMatchObject({ mode: Mode.session, sender: 'svc.policy', recipient: 'agent.1', counter: 0x0102030405060708n, timestamp: 1_767_225_600_000 });
    expect(view.sessionId).toEqual(sessionId);
    expect(view.body.length).toBe(20);
    expect(view.mac.length).toBe(32);
    expect(view.sealedHandshake).toBeUndefined();
  });

  it('carries the 48-byte Noise_K message in sealed frames only', () => {
    const sealed = new HeaderTemplate({ mode: Mode.sealed, sender: 'agent.1', recipient: 'svc.audit-ledger', sessionId, sealedHandshake: new Uint8Array(SEALED_HANDSHAKE_LENGTH).fill(9) });
    const view = parsed(frameOf(sealed, 16));
    expect(view.sealedHandshake).toEqual(new Uint8Array(SEALED_HANDSHAKE_LENGTH).fill(9));
    expect(() => new HeaderTemplate({ mode: Mode.session, sender: 'a', recipient: 'b', sessionId, sealedHandshake: new Uint8Array(48) })).toThrow();
    expect(() => new HeaderTemplate({ mode: Mode.sealed, sender: 'a', recipient: 'b', sessionId })).toThrow();
  });

  it('has no mac and counter 0 in handshake frames', () => {
    const init = new HeaderTemplate({ mode: Mode.handshakeInit, sender: 'agent.1', recipient: 'svc.policy', sessionId });
    const frame = init.allocate(0n, 1_767_225_600_000, 96);
    const view = parsed(frame);
    expect(view.mac.length).toBe(0);
    expect(view.body.length).toBe(96);
    expect(rejected(init.allocate(1n, 1_767_225_600_000, 96)).reason).toBe('E_FRAME_SHAPE');
  });

  it('summarises a header for routing without authenticating it', () => {
    expect(inspectFrame(frameOf(template, 20))).toMatchObject({ mode: Mode.session, sender: 'svc.policy', recipient: 'agent.1', sessionId: '000102030405060708090a0b0c0d0e0f', counter: 0x0102030405060708n });
    expect(inspectFrame(new Uint8Array(3))).toMatchObject({ ok: false, reason: 'E_FRAME_SIZE' });
  });

  it('refuses every truncation and any trailing byte', () => {
    const frame = frameOf(template, 20);
    for (let length = 0; length < frame.length; length++) {
      expect(['E_FRAME_SIZE', 'E_FRAME_SHAPE']).toContain(rejected(frame.subarray(0, length)).reason);
    }
    const longer = new Uint8Array(frame.length + 1);
    longer.set(frame);
    expect(rejected(longer).reason).toBe('E_FRAME_SHAPE');
  });

  it('refuses frames over the size limit and under the minimum', () => {
    const frame = frameOf(template, 200);
    expect(rejected(frame, frame.length - 1).reason).toBe('E_FRAME_SIZE');
    expect(parsed(frame, frame.length).body.length).toBe(200);
    expect(rejected(new Uint8Array(MIN_FRAME_SIZE - 1)).reason).toBe('E_FRAME_SIZE');
  });

  it('refuses unknown versions, unknown modes and ids outside the alphabet', () => {
    const frame = frameOf(template, 20);
    const version = frame.slice();
    version[0] = 2;
    expect(rejected(version).reason).toBe('E_VERSION');
    const mode = frame.slice();
    mode[1] = 9;
    expect(rejected(mode).reason).toBe('E_FRAME_SHAPE');
    const id = frame.slice();
    id[5] = 0x2f; // '/' in "svc.policy"
    expect(rejected(id).reason).toBe('E_FRAME_SHAPE');
    const empty = frame.slice();
    empty[2] = 0;
    expect(rejected(empty).reason).toBe('E_FRAME_SHAPE');
    const body = frame.slice();
    body[template.lengthOffset] = 0; // ciphertext length 0 < tag
    expect(rejected(body).reason).toBe('E_FRAME_SHAPE');
  });

  it('gives a large frame its own buffer, and a small one a plain Uint8Array on the buffer pool', () => {
    const big = template.allocate(1n, 1_767_225_600_000, 100_000);
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(big.length);
    const small = template.allocate(1n, 1_767_225_600_000, 100);
    expect(small.constructor).toBe(Uint8Array);
    expect(small.length).toBe(template.length + 100 + 32);
    expect(small.subarray(0, template.lengthOffset)).toEqual(template.allocate(1n, 1_767_225_600_000, 1).subarray(0, template.lengthOffset));
  });

  it('refuses to build a header with a bad id', () => {
    expect(() => new HeaderTemplate({ mode: Mode.session, sender: 'svc policy', recipient: 'b', sessionId })).toThrow(/not a valid id/);
    expect(() => new HeaderTemplate({ mode: Mode.session, sender: 'a'.repeat(129), recipient: 'b', sessionId })).toThrow(/not a valid id/);
    expect(() => new HeaderTemplate({ mode: Mode.session, sender: '.a', recipient: 'b', sessionId })).toThrow(/not a valid id/);
  });
});
