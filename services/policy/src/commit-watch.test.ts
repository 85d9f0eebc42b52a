import { describe, expect, it } from 'vitest';
import { CommitWatch } from './commit-watch.js';

describe('CommitWatch', () => {
  it('forgets a batch once the commit mark reaches its sequence, oldest first', async () => {
    let floor = 0;
    const watch = new CommitWatch({ signal: async () => floor });
    watch.published(5, 1000);
    watch.published(9, 2000);
    expect(watch.oldestUncommittedAt()).toBe(1000);
    floor = 4;
    await watch.poll();
    expect(watch.oldestUncommittedAt()).toBe(1000);
    floor = 5;
    await watch.poll();
    expect(watch.oldestUncommittedAt()).toBe(2000);
    floor = 100;
    await watch.poll();
    expect(watch.oldestUncommittedAt()).toBeUndefined();
    expect(watch.metrics()).toEqual({ outstanding: 0, signalFailures: 0 });
  });

  it('keeps the first time of a batch JetStream deduplicated on retry (same sequence)', () => {
    const watch = new CommitWatch({ signal: async () => 0 });
    watch.published(7, 1000);
    watch.published(7, 3000);
    expect(watch.oldestUncommittedAt()).toBe(1000);
    expect(watch.metrics().outstanding).toBe(1);
  });

  it('confirms nothing when the mark cannot be read, and reports the failure', async () => {
    const errors: unknown[] = [];
    const watch = new CommitWatch({ signal: async () => Promise.reject(new Error('consumer not found')), onError: (e) => errors.push(e) });
    watch.published(1, 1000);
    await watch.poll();
    await watch.poll();
    expect(watch.oldestUncommittedAt()).toBe(1000);
    // Reported once, counted each time.
    expect(errors).toHaveLength(1);
    expect(watch.metrics().signalFailures).toBe(2);
  });

  it('does not read the mark while nothing is outstanding', async () => {
    let reads = 0;
    const watch = new CommitWatch({ signal: async () => ++reads });
    await watch.poll();
    expect(reads).toBe(0);
  });
});
