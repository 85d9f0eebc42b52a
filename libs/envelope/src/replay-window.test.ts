import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPLAY_WINDOW_SIZE, ReplayWindow, type ReplayVerdict } from './replay-window.js';

/** The reference: a set of every accepted counter, and "too old" = W or more below the highest. */
class ReferenceWindow {
  readonly #seen = new Set<bigint>();
  #top: bigint | undefined;
  check(counter: bigint): ReplayVerdict {
    if (this.#top !== undefined && this.#top - counter >= BigInt(REPLAY_WINDOW_SIZE)) return 'too-old';
    return this.#seen.has(counter) ? 'duplicate' : 'fresh';
  }
  record(counter: bigint): void {
    if (this.check(counter) === 'too-old') return;
    this.#seen.add(counter);
    if (this.#top === undefined || counter > this.#top) this.#top = counter;
  }
  observe(counter: bigint): ReplayVerdict {
    const verdict = this.check(counter);
    if (verdict === 'fresh') this.record(counter);
    return verdict;
  }
}

describe('ReplayWindow', () => {
  it('tracks at least 2,048 counters', () => {
    expect(REPLAY_WINDOW_SIZE).toBeGreaterThanOrEqual(2048);
  });

  it('accepts each counter once, in any order within the window', () => {
    const window = new ReplayWindow();
    expect(window.observe(0n)).toBe('fresh');
    expect(window.observe(0n)).toBe('duplicate');
    expect(window.observe(5n)).toBe('fresh');
    expect(window.observe(3n)).toBe('fresh');
    expect(window.observe(3n)).toBe('duplicate');
    expect(window.observe(5n)).toBe('duplicate');
  });

  it('refuses counters that fell out of the window, and only those', () => {
    const window = new ReplayWindow();
    const top = 10_000n;
    expect(window.observe(top)).toBe('fresh');
    expect(window.observe(top - BigInt(REPLAY_WINDOW_SIZE))).toBe('too-old');
    expect(window.observe(top - BigInt(REPLAY_WINDOW_SIZE) + 1n)).toBe('fresh');
    expect(window.observe(top - BigInt(REPLAY_WINDOW_SIZE) + 1n)).toBe('duplicate');
  });

  it('forgets nothing inside the window after a jump of more than the whole ring', () => {
    const window = new ReplayWindow();
    for (let c = 0n; c < 100n; c++) window.observe(c);
    const far = 1_000_000n;
    expect(window.observe(far)).toBe('fresh');
    // The ring was cleared: counters just below the new top are fresh, not stale bits of the old ones.
    expect(window.observe(far - 1n)).toBe('fresh');
    expect(window.observe(far - BigInt(REPLAY_WINDOW_SIZE) + 1n)).toBe('fresh');
    expect(window.observe(50n)).toBe('too-old');
  });

  it('handles counters near 2^64', () => {
    const window = new ReplayWindow();
    const last = 0xffff_ffff_ffff_fffen;
    expect(window.observe(last - 1n)).toBe('fresh');
    expect(window.observe(last)).toBe('fresh');
    expect(window.observe(last - 1n)).toBe('duplicate');
    expect(window.observe(0n)).toBe('too-old');
  });

  it('agrees with a Set-based model on random counter sequences', () => {
    const counter = fc.oneof(
      fc.bigInt({ min: 0n, max: 64n }),
      fc.bigInt({ min: 0n, max: 20_000n }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 2n }),
    );
    // Walks that mostly move forward with jitter, like real out-of-order delivery.
    const walk = fc.array(fc.tuple(fc.integer({ min: -5000, max: 5000 }), fc.boolean()), { maxLength: 400 }).map((steps) => {
      let at = 4000n;
      return steps.map(([delta, repeat]) => {
        if (!repeat) at = at + BigInt(delta) < 0n ? 0n : at + BigInt(delta);
        return at;
      });
    });
    fc.assert(
      fc.property(fc.oneof(fc.array(counter, { maxLength: 300 }), walk), (sequence) => {
        const window = new ReplayWindow();
        const model = new ReferenceWindow();
        for (const c of sequence) expect(window.observe(c)).toBe(model.observe(c));
      }),
      { numRuns: 300 },
    );
  });

  it('checks without recording until the counter is committed', () => {
    const window = new ReplayWindow();
    expect(window.check(7n)).toBe('fresh');
    expect(window.check(7n)).toBe('fresh');
    window.record(7n);
    expect(window.check(7n)).toBe('duplicate');
    window.record(7n);
    expect(window.observe(7n)).toBe('duplicate');
  });

  it('agrees with the model when commits are deferred, skipped or late', () => {
    const step = fc.tuple(fc.bigInt({ min: 0n, max: 9000n }), fc.constantFrom('observe', 'check', 'check-then-record', 'record'));
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        const window = new ReplayWindow();
        const model = new ReferenceWindow();
        for (const [c, action] of steps) {
          if (action === 'observe') expect(window.observe(c)).toBe(model.observe(c));
          else if (action === 'check') expect(window.check(c)).toBe(model.check(c));
          else if (action === 'record') {
            window.record(c);
            model.record(c);
          } else {
            expect(window.check(c)).toBe(model.check(c));
            window.record(c);
            model.record(c);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
