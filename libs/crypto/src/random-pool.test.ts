import { describe, expect, it } from 'vitest';
import { RandomPool } from './random-pool.js';

describe('RandomPool', () => {
  it('hands out distinct copies across refills, and large requests directly', () => {
    const pool = new RandomPool(64);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = pool.take(16);
      expect(id).toHaveLength(16);
      seen.add(Buffer.from(id).toString('hex'));
    }
    expect(seen.size).toBe(1000);
    const first = pool.take(16);
    const copy = Uint8Array.from(first);
    pool.take(60); // forces a refill: an id already handed out must not change
    expect(first).toEqual(copy);
    expect(pool.take(100)).toHaveLength(100);
  });
});
