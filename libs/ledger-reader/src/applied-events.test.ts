import { describe, expect, it } from 'vitest';
import { AppliedEvents } from './applied-events.js';

describe('AppliedEvents', () => {
  it('hands a waiter its own event outcome and no other', async () => {
    const applied = new AppliedEvents<string>();
    const a = applied.wait('a', 1000);
    applied.settle('b', 'refused');
    applied.settle('a', 'applied');
    expect(await a.promise).toBe('applied');
    expect(await applied.wait('b', 1000).promise).toBe('refused');
  });

  it('gives an outcome that arrived before the wait, once', async () => {
    const applied = new AppliedEvents<string>();
    applied.settle('a', 'applied');
    expect(await applied.wait('a', 1000).promise).toBe('applied');
    expect(await applied.wait('a', 10).promise).toBeUndefined();
  });

  it('times out to undefined, and a cancelled wait is not settled later', async () => {
    const applied = new AppliedEvents<string>();
    expect(await applied.wait('a', 5).promise).toBeUndefined();
    const b = applied.wait('b', 1000);
    b.cancel();
    applied.settle('b', 'applied');
    // The cancelled wait's outcome is kept for a later wait, not lost.
    expect(await applied.wait('b', 10).promise).toBe('applied');
  });

  it('keeps only the last `capacity` early outcomes', async () => {
    const applied = new AppliedEvents<number>(2);
    for (let i = 0; i < 3; i++) applied.settle(`e${i}`, i);
    expect(await applied.wait('e0', 5).promise).toBeUndefined();
    expect(await applied.wait('e2', 5).promise).toBe(2);
  });
});
