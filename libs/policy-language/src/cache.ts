import canonicalize from 'canonicalize';
import { LRUCache } from 'lru-cache';
import type { Decision } from './decision.js';
import type { PolicySet } from './policy-set.js';

export interface DecisionCacheOptions {
  /** How many decisions to keep (default 10,000). */
  readonly max?: number;
}

/**
 * An LRU cache of decisions keyed by the policy set (version and digest) and the RFC 8785
 * canonical JSON of the request: a decision is a pure function of both, so a hit is exactly
 * what `set.evaluate` would return. After a swap, entries of the old set are never hit and
 * age out. Cached decisions are frozen, since every caller shares them.
 */
export class DecisionCache {
  readonly #entries: LRUCache<string, Decision>;
  #hits = 0;
  #misses = 0;

  constructor(options: DecisionCacheOptions = {}) {
    this.#entries = new LRUCache({ max: options.max ?? 10_000 });
  }

  evaluate(set: PolicySet, request: unknown): Decision {
    let key: string;
    try {
      const canonical = canonicalize(request);
      // A request canonicalize cannot encode (a cycle, a lone surrogate) is decided uncached.
      if (canonical === undefined) return set.evaluate(request);
      key = `${set.cacheTag}\u0000${canonical}`;
    } catch {
      return set.evaluate(request);
    }
    const cached = this.#entries.get(key);
    if (cached !== undefined) {
      this.#hits++;
      return cached;
    }
    this.#misses++;
    const decision = freezeDecision(set.evaluate(request));
    this.#entries.set(key, decision);
    return decision;
  }

  get stats(): { readonly hits: number; readonly misses: number; readonly size: number } {
    return { hits: this.#hits, misses: this.#misses, size: this.#entries.size };
  }

  clear(): void {
    this.#entries.clear();
  }
}

function freezeDecision(decision: Decision): Decision {
  if (Object.isFrozen(decision)) return decision;
  for (const value of Object.values(decision)) if (Array.isArray(value)) Object.freeze(value);
  return Object.freeze(decision);
}
