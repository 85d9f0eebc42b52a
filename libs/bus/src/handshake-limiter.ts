import { LRUCache } from 'lru-cache';
import { TokenBucket } from './token-bucket.js';

export interface HandshakeLimits {
  /** Authenticated handshakes a principal may start per second (default 20; a session lasts up to an hour). */
  readonly perSenderPerSecond?: number;
  /** Default 40. */
  readonly perSenderBurst?: number;
  /**
   * Authenticated handshakes per second across all principals (default 500, burst 1000): each
   * costs the responder two X25519 operations, so many principals together are bounded too.
   */
  readonly globalPerSecond?: number;
  readonly globalBurst?: number;
  /**
   * The shared failure budget (default 500/s, burst 1000), whatever sender a handshake names:
   * the key work done before a handshake authenticates (deriving a directory entry's admission
   * key the first time, one X25519) draws on it, and so does a handshake that fails after its
   * key work. It bounds unauthenticated key work without touching any principal's own budget.
   */
  readonly failuresPerSecond?: number;
  readonly failureBurst?: number;
  /** Principals tracked at once; the least recently seen is forgotten beyond it (default 10 000). */
  readonly maxTrackedSenders?: number;
  readonly now?: () => number;
}

/**
 * Handshake budgets (DESIGN §3a). A principal's own budget is charged only once its handshake
 * authenticated (the admission tag verified against its directory entry), so a forger naming
 * it cannot spend it; unauthenticated key work and failed handshakes share one failure budget.
 */
export class HandshakeLimiter {
  readonly #global: TokenBucket;
  readonly #failures: TokenBucket;
  readonly #senders: LRUCache<string, TokenBucket>;
  readonly #perSender: () => TokenBucket;

  constructor(limits: HandshakeLimits = {}) {
    const now = limits.now ?? Date.now;
    this.#global = new TokenBucket(limits.globalPerSecond ?? 500, limits.globalBurst ?? 1000, now);
    this.#failures = new TokenBucket(limits.failuresPerSecond ?? 500, limits.failureBurst ?? 1000, now);
    const rate = limits.perSenderPerSecond ?? 20;
    const burst = limits.perSenderBurst ?? 40;
    // Checked here, not on a sender's first handshake: a bad setting fails at start-up.
    new TokenBucket(rate, burst, now);
    this.#perSender = () => new TokenBucket(rate, burst, now);
    this.#senders = new LRUCache({ max: limits.maxTrackedSenders ?? 10_000 });
  }

  /**
   * True when an authenticated handshake of `principal` may proceed (and spends its tokens).
   * Call it only once the handshake authenticated: the principal pays for its own handshakes only.
   */
  admitAuthenticated(principal: string): boolean {
    let bucket = this.#senders.get(principal);
    if (bucket === undefined) {
      bucket = this.#perSender();
      this.#senders.set(principal, bucket);
    }
    // The principal's own budget first: a noisy principal must not drain the global one for others.
    return bucket.take() && this.#global.take();
  }

  /**
   * Draws one token of the shared failure budget: before key work for a handshake not yet
   * authenticated, and for a handshake that failed after its key work. False when it is spent.
   */
  drawFailure(): boolean {
    return this.#failures.take();
  }
}
