import { LRUCache } from 'lru-cache';
import { cacheKey } from './cache-key.js';
import type { Decision } from './decision.js';
import type { PolicySet } from './policy-set.js';

export interface DecisionCacheOptions {
  /** How many decisions to keep per policy set (default 10,000). */
  readonly max?: number;
}

/**
 * An LRU cache of decisions, keyed by the policy set and the JSON text of the request: a
 * decision is a pure function of both, so a hit is exactly what `set.evaluate` returns.
 *
 * - Each policy set (one version) has its own LRU, held weakly: after a swap the old set's
 *   entries are never consulted, and they go when the old set does.
 * - `evaluate(set, request)` keys by `cacheKey(request)`, a canonical JSON text (sorted
 *   keys; see cache-key.ts), so the same request in any key order is one entry.
 * - `evaluateJson(set, text)` first tries the text as it arrived: any JSON text denotes one
 *   request, so it is a sound key, and a hit skips parsing and canonicalization. A miss
 *   parses it and goes through the canonical key.
 * Cached decisions are frozen, since every caller shares them.
 */
export class DecisionCache {
  readonly #max: number;
  readonly #bySet = new WeakMap<PolicySet, LRUCache<string, Decision>>();
  #hits = 0;
  #misses = 0;
  #size = 0;

  constructor(options: DecisionCacheOptions = {}) {
    this.#max = options.max ?? 10_000;
  }

  evaluate(set: PolicySet, request: unknown): Decision {
    const key = cacheKey(request);
    // A value that is not plain JSON (a cycle, NaN, undefined) has no key and is decided uncached.
    if (key === undefined) return set.evaluate(request);
    const entries = this.#entriesOf(set);
    const cached = entries.get(key);
    if (cached !== undefined) {
      this.#hits++;
      return cached;
    }
    this.#misses++;
    const decision = freezeDecision(set.evaluate(request));
    this.#remember(entries, key, decision);
    return decision;
  }

  /** Decides a request given as JSON text (as it arrives on the bus); text that is not JSON is denied, never thrown. */
  evaluateJson(set: PolicySet, text: string): Decision {
    const entries = this.#entriesOf(set);
    const cached = entries.get(text);
    if (cached !== undefined) {
      this.#hits++;
      return cached;
    }
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch (err) {
      return freezeDecision(set.denyInvalid(`not JSON (${err instanceof Error ? err.message : String(err)})`));
    }
    const decision = this.evaluate(set, request);
    this.#remember(entries, text, decision);
    return decision;
  }

  get stats(): { readonly hits: number; readonly misses: number; readonly size: number } {
    return { hits: this.#hits, misses: this.#misses, size: this.#size };
  }

  #entriesOf(set: PolicySet): LRUCache<string, Decision> {
    let entries = this.#bySet.get(set);
    if (entries === undefined) {
      entries = new LRUCache<string, Decision>({ max: this.#max, dispose: () => void this.#size-- });
      this.#bySet.set(set, entries);
    }
    return entries;
  }

  #remember(entries: LRUCache<string, Decision>, key: string, decision: Decision): void {
    if (!entries.has(key)) this.#size++;
    entries.set(key, decision);
  }
}

function freezeDecision(decision: Decision): Decision {
  if (Object.isFrozen(decision)) return decision;
  for (const value of Object.values(decision)) if (Array.isArray(value)) Object.freeze(value);
  return Object.freeze(decision);
}
