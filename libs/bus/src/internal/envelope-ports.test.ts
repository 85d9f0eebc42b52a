import { describe, expect, it } from 'vitest';
import type { OpenResult } from '@bulwark/envelope';
import { twoPhaseOpener } from './envelope-ports.js';

// A receiver that behaves like the envelope's: the first open of a frame records it in the
// replay window; any later open of the same frame is an authentic duplicate.
function envelopeLike() {
  const seen = new Set<string>();
  return (frame: Uint8Array): OpenResult => {
    const key = Buffer.from(frame).toString('hex');
    if (frame[0] === 0xff) return { ok: false, reason: 'E_MAC', duplicate: false, detail: 'bad mac', sender: 'agent.x' };
    if (seen.has(key)) return { ok: false, reason: 'E_REPLAY', duplicate: true, detail: 'seen', sender: 'svc.a' };
    seen.add(key);
    return { ok: true, mode: 2, plaintext: frame.subarray(1), sender: 'svc.a', recipient: 'svc.b', sessionId: 'ab', counter: BigInt(frame[0]!), timestamp: 0 } as OpenResult;
  };
}

describe('twoPhaseOpener', () => {
  it('hands a frame whose handler failed to the handler again on redelivery', async () => {
    const opener = twoPhaseOpener(envelopeLike(), 8);
    const frame = new Uint8Array([1, 42]);
    const first = await opener.open(frame);
    expect(first.kind).toBe('accepted');
    // handler failed: neither commit nor abandon; JetStream redelivers the same bytes
    const again = await opener.open(frame);
    expect(again).toMatchObject({ kind: 'accepted', plaintext: new Uint8Array([42]), meta: { sender: 'svc.a', counter: 1n } });
    if (again.kind === 'accepted') again.commit();
    expect(await opener.open(frame)).toEqual({ kind: 'duplicate', sender: 'svc.a' });
  });

  it('hands a pending frame to the handler again even once the window has slid past it', async () => {
    const tooOld = new Set<number>();
    const base = envelopeLike();
    const opener = twoPhaseOpener((frame) => (tooOld.has(frame[0]!) ? { ok: false, reason: 'E_REPLAY', duplicate: false, detail: 'older than the window', sender: 'svc.a' } : base(frame)), 8);
    const frame = new Uint8Array([3, 7]);
    expect((await opener.open(frame)).kind).toBe('accepted');
    tooOld.add(3); // thousands of later frames were accepted meanwhile
    const again = await opener.open(frame);
    expect(again).toMatchObject({ kind: 'accepted', plaintext: new Uint8Array([7]) });
    if (again.kind === 'accepted') again.commit();
    expect(await opener.open(frame)).toEqual({ kind: 'rejected', reason: 'E_REPLAY', sender: 'svc.a' });
  });

  it('treats an abandoned frame as a duplicate afterwards', async () => {
    const opener = twoPhaseOpener(envelopeLike(), 8);
    const frame = new Uint8Array([2, 1]);
    const first = await opener.open(frame);
    if (first.kind === 'accepted') first.abandon();
    expect((await opener.open(frame)).kind).toBe('duplicate');
  });

  it('passes rejections through with the claimed sender', async () => {
    const opener = twoPhaseOpener(envelopeLike(), 8);
    expect(await opener.open(new Uint8Array([0xff]))).toEqual({ kind: 'rejected', reason: 'E_MAC', sender: 'agent.x' });
  });

  it('holds at most `capacity` uncommitted frames, forgetting the oldest', async () => {
    const opener = twoPhaseOpener(envelopeLike(), 2);
    const frames = [1, 2, 3].map((i) => new Uint8Array([i, i]));
    for (const f of frames) await opener.open(f);
    expect((await opener.open(frames[0]!)).kind).toBe('duplicate');
    expect((await opener.open(frames[2]!)).kind).toBe('accepted');
  });
});
