import { LRUCache } from 'lru-cache';
import type { Decision } from './decision.js';
import { KeyLru } from './key-lru.js';
import type { PolicySet } from './policy-set.js';
import { keyText } from './request-key.js';

export interface DecisionCacheOptions {
  /** How many decisions to keep per policy set and kind of key, request texts and request objects (default 10,000 each). */
  readonly max?: number;
}

interface SetEntries {
  /** By the request text as it arrived. */
  readonly texts: LRUCache<string, Decision>;
  /** By the request's projection on what the set reads (request-key.ts). */
  readonly keys: KeyLru;
}

/**
 * An LRU cache of decisions per policy set: a decision is a pure function of the set and
 * the request, so a hit is exactly what `set.evaluate` returns.
 *
 * - Each policy set (one version) has its own entries, held weakly: after a swap the old
 *   set's entries are never consulted, and they go when the old set does.
 * - `evaluate(set, request)` keys by `set.cacheKeyOf(request)`: the request projected on
 *   the parts the set's rules for its target can read (request-key.ts), so the same request
 *   in any key order, or differing only in data no rule reads, is one entry. A miss decides
 *   the projection itself, so an entry is a function of its key alone.
 * - `evaluateJson(set, text)` first tries the text as it arrived: any JSON text denotes one
 *   request, so it is a sound key, and a hit skips parsing. A miss parses it and goes
 *   through `evaluate`. Texts and projections are kept apart: a text is never compared
 *   with anything but texts.
 * Cached decisions are frozen, since every caller shares them.
 */
export class DecisionCache {
  readonly #max: number;
  readonly #bySet = new WeakMap<PolicySet, SetEntries>();
  #hits = 0;
  #misses = 0;
  #size = 0;

  constructor(options: DecisionCacheOptions = {}) {
    this.#max = options.max ?? 10_000;
  }

  evaluate(set: PolicySet, request: unknown): Decision {
    const key = set.cacheKeyOf(request);
    // A request without a key (wrong shape; a read part that is not plain JSON) is decided uncached.
    if (key === undefined) return set.evaluate(request);
    const entries = this.#entriesOf(set).keys;
    const cached = entries.get(key);
    if (cached !== undefined) {
      this.#hits++;
      return cached;
    }
    this.#misses++;
    // Decide the projection, not the caller's object (whose getters could answer otherwise
    // the second time): the entry is then the decision of exactly what its key describes.
    const decision = freezeDecision(set.evaluate(JSON.parse(keyText(key))));
    entries.set(key, decision);
    return decision;
  }

  /** Decides a request given as JSON text (as it arrives on the bus); text that is not JSON is denied, never thrown. */
  evaluateJson(set: PolicySet, text: string): Decision {
    const entries = this.#entriesOf(set).texts;
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
    const decision = freezeDecision(this.evaluate(set, request));
    if (!entries.has(text)) this.#size++;
    entries.set(text, decision);
    return decision;
  }

  get stats(): { readonly hits: number; readonly misses: number; readonly size: number } {
    return { hits: this.#hits, misses: this.#misses, size: this.#size };
  }

  #entriesOf(set: PolicySet): SetEntries {
    let entries = this.#bySet.get(set);
    if (entries === undefined) {
      entries = {
        texts: new LRUCache<string, Decision>({ max: this.#max, dispose: () => void this.#size-- }),
        keys: new KeyLru(this.#max, (delta) => void (this.#size += delta)),
      };
      this.#bySet.set(set, entries);
    }
    return entries;
  }
}

function freezeDecision(decision: Decision): Decision {
  if (Object.isFrozen(decision)) return decision;
  for (const value of Object.values(decision)) if (Array.isArray(value)) Object.freeze(value);
  return Object.freeze(decision);
}
