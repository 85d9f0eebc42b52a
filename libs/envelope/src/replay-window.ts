/**
 * Anti-replay sliding window, RFC 6479 §3 (the layout WireGuard uses): a ring of 32-bit blocks
 * holding one bit per counter. Moving the window forward clears whole blocks instead of
 * shifting bits, so each check is O(1) however far the counter jumps. One block is kept as
 * slack, so the window is exact: a counter is tracked while it is within WINDOW_SIZE of the
 * highest counter accepted, and refused as too old beyond that.
 */
const BLOCK_BITS = 32n;
const BLOCK_SHIFT = 5n;
const BLOCKS = 128;
const INDEX_MASK = BigInt(BLOCKS - 1);
const BIT_MASK = BLOCK_BITS - 1n;

/** 4064 counters: (128 - 1) blocks of 32. */
export const REPLAY_WINDOW_SIZE = (BLOCKS - 1) * Number(BLOCK_BITS);
const WINDOW = BigInt(REPLAY_WINDOW_SIZE);

export type ReplayVerdict = 'fresh' | 'duplicate' | 'too-old';

export class ReplayWindow {
  readonly #bitmap = new Uint32Array(BLOCKS);
  /** Highest counter accepted so far (0 before any: counter 0 is then still fresh, its bit is clear). */
  #top = 0n;

  /** Classify a counter that has already been authenticated, and record it when fresh. */
  observe(counter: bigint): ReplayVerdict {
    const verdict = this.check(counter);
    if (verdict === 'fresh') this.record(counter);
    return verdict;
  }

  /** RFC 6479 check: classify without recording (for a commit after the handler succeeded). */
  check(counter: bigint): ReplayVerdict {
    if (counter + WINDOW <= this.#top) return 'too-old';
    if (counter > this.#top) return 'fresh';
    const bit = 1 << Number(counter & BIT_MASK);
    return (this.#bitmap[Number((counter >> BLOCK_SHIFT) & INDEX_MASK)]! & bit) !== 0 ? 'duplicate' : 'fresh';
  }

  /** RFC 6479 update: mark a counter seen, sliding the window forward if it is the highest. */
  record(counter: bigint): void {
    if (counter + WINDOW <= this.#top) return;
    if (counter > this.#top) {
      // Clear the blocks the window slides over (at most the whole ring), then advance.
      const current = this.#top >> BLOCK_SHIFT;
      const target = counter >> BLOCK_SHIFT;
      const steps = target - current > BigInt(BLOCKS) ? BLOCKS : Number(target - current);
      for (let i = 1; i <= steps; i++) this.#bitmap[Number((current + BigInt(i)) & INDEX_MASK)] = 0;
      this.#top = counter;
    }
    const index = Number((counter >> BLOCK_SHIFT) & INDEX_MASK);
    this.#bitmap[index] = this.#bitmap[index]! | (1 << Number(counter & BIT_MASK));
  }
}
