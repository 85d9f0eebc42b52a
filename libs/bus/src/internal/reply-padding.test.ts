import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_FRAME_SIZE } from '@bulwark/envelope';
import { maxReplyPlaintext, MIN_REPLY_BUCKET, paddedReplyLength, sessionFrameOverhead } from './reply-padding.js';

describe('reply size buckets', () => {
  const max = maxReplyPlaintext('svc.policy', 'agent.a1');

  it('pads to 512 bytes, then to powers of two', () => {
    expect(MIN_REPLY_BUCKET).toBe(512);
    expect([0, 1, 155, 380, 512].map((n) => paddedReplyLength(n, max))).toEqual([512, 512, 512, 512, 512]);
    expect([513, 1024, 1025, 4096, 4097, 300_000].map((n) => paddedReplyLength(n, max))).toEqual([1024, 1024, 2048, 4096, 8192, 524_288]);
  });

  it('ends with the largest plaintext the frame can carry, and never pads past it', () => {
    expect(max).toBe(DEFAULT_MAX_FRAME_SIZE - sessionFrameOverhead('svc.policy', 'agent.a1'));
    expect(paddedReplyLength(524_289, max)).toBe(max);
    expect(paddedReplyLength(max, max)).toBe(max);
    expect(paddedReplyLength(max + 1, max)).toBe(max + 1);
    expect(paddedReplyLength(10, 100)).toBe(100);
  });

  it('counts the frame overhead of the session frame layout', () => {
    // 40 fixed header bytes, the two ids, tag 16, mac 32.
    expect(sessionFrameOverhead('svc.policy', 'agent.a1')).toBe(40 + 10 + 8 + 48);
  });
});
