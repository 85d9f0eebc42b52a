import { describe, expect, it } from 'vitest';
import { allocateUninitialized } from './alloc.js';

describe('allocateUninitialized', () => {
  it('gives plain Uint8Arrays of the length asked, pooled when small and with their own buffer when large', () => {
    for (const length of [0, 1, 400, 4095, 4096, 100_000]) {
      const bytes = allocateUninitialized(length);
      expect(bytes.constructor).toBe(Uint8Array);
      expect(bytes.length).toBe(length);
      if (length >= 4096) expect(bytes.buffer.byteLength).toBe(length);
    }
    const a = allocateUninitialized(100).fill(1);
    const b = allocateUninitialized(100).fill(2);
    // Views of one pool never overlap: writing one leaves the other as it was.
    expect(a.every((x) => x === 1)).toBe(true);
    expect(b.every((x) => x === 2)).toBe(true);
    // slice copies (a Buffer's would share memory).
    const copy = a.slice();
    copy[0] = 9;
    expect(a[0]).toBe(1);
  });
});
