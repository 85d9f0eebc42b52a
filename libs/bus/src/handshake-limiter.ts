import { LRUCache } from 'lru-cache';
import { TokenBucket } from './token-bucket.js';

export interface HandshakeLimits {
  /** Handshakes a claimed sender may start per second (default 20; a session lasts up to an hour). */
  readonly perSenderPerSecond?: number;
  /** Default 40. */
  readonly perSenderBurst?: number;
  /**
   * Handshakes per second across all senders (default 500, burst 1000), so forged sender ids
   * cannot multiply the budget: each handshake costs the responder two X25519 operations
   * before it knows whether the initiator holds the key it claims.
   */
  readonly globalPerSecond?: number;
  readonly globalBurst?: number;
  /** Senders tracked at once; the least recently seen is forgotten beyond it (default 10 000). */
  readonly maxTrackedSenders?: number;
  readonly now?: () => number;
}

/**
 * Admits handshake-init frames before any public-key work: a token bucket per claimed sender
 * under a global one. The sender is unauthenticated at this point, so the per-sender budget
 * only shares the cost fairly; the global budget is what bounds it.
 */
export class HandshakeLimiter {
  readonly #global: TokenBucket;
  readonly #senders: LRUCache<string, TokenBucket>;
  readonly #perSender: () => TokenBucket;

  constructor(limits: HandshakeLimits = {}) {
    const now = limits.now ?? Date.now;
    this.#global = new TokenBucket(limits.globalPerSecond ?? 500, limits.globalBurst ?? 1000, now);
    const rate = limits.perSenderPerSecond ?? 20;
    const burst = limits.perSenderBurst ?? 40;
    // Checked here, not on a sender's first handshake: a bad setting fails at start-up.
    new TokenBucket(rate, burst, now);
    this.#perSender = () => new TokenBucket(rate, burst, now);
    this.#senders = new LRUCache({ max: limits.maxTrackedSenders ?? 10_000 });
  }

  /** True when a handshake claimed to come from `sender` may proceed (and spends its tokens). */
  admit(sender: string): boolean {
    let bucket = this.#senders.get(sender);
    if (bucket === undefined) {
      bucket = this.#perSender();
      this.#senders.set(sender, bucket);
    }
    // The sender's own budget first: a noisy sender must not drain the global one for others.
    return bucket.take() && this.#global.take();
  }
}
