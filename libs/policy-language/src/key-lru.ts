import type { Decision } from './decision.js';
import { sameKey, type RequestKey } from './request-key.js';

interface Entry {
  readonly key: RequestKey;
  decision: Decision;
  /** The next entry with the same hash. */
  sameHash: Entry | null;
  older: Entry | null;
  newer: Entry | null;
}

/**
 * A least-recently-used map from request keys (request-key.ts) to decisions: looked up by
 * the key's hash, confirmed by `sameKey`, so a hash collision costs a comparison, never a
 * wrong decision. A bucket holds at most MAX_BUCKET keys: a key that would be one more is
 * not stored (it is decided again next time), so crafted collisions cannot make lookups slow.
 */
export class KeyLru {
  readonly #byHash = new Map<number, Entry>();
  #oldest: Entry | null = null;
  #newest: Entry | null = null;
  #size = 0;

  constructor(
    private readonly max: number,
    private readonly onChange: (delta: number) => void,
  ) {}

  get size(): number {
    return this.#size;
  }

  get(key: RequestKey): Decision | undefined {
    for (let entry: Entry | null = this.#byHash.get(key.hash) ?? null; entry !== null; entry = entry.sameHash) {
      if (sameKey(entry.key, key)) {
        this.#touch(entry);
        return entry.decision;
      }
    }
    return undefined;
  }

  set(key: RequestKey, decision: Decision): void {
    const head = this.#byHash.get(key.hash);
    let length = 0;
    for (let entry: Entry | null = head ?? null; entry !== null; entry = entry.sameHash, length++) {
      if (sameKey(entry.key, key)) {
        entry.decision = decision;
        this.#touch(entry);
        return;
      }
    }
    if (length >= MAX_BUCKET) return;
    const entry: Entry = { key, decision, sameHash: head ?? null, older: this.#newest, newer: null };
    this.#byHash.set(key.hash, entry);
    if (this.#newest !== null) this.#newest.newer = entry;
    this.#newest = entry;
    this.#oldest ??= entry;
    this.#size++;
    this.onChange(1);
    if (this.#size > this.max) this.#evict(this.#oldest);
  }

  #touch(entry: Entry): void {
    if (entry === this.#newest) return;
    this.#unlink(entry);
    entry.older = this.#newest;
    entry.newer = null;
    (this.#newest as Entry).newer = entry;
    this.#newest = entry;
  }

  #unlink(entry: Entry): void {
    if (entry.older !== null) entry.older.newer = entry.newer;
    else this.#oldest = entry.newer;
    if (entry.newer !== null) entry.newer.older = entry.older;
    else this.#newest = entry.older;
  }

  #evict(entry: Entry): void {
    this.#unlink(entry);
    const hash = entry.key.hash;
    const head = this.#byHash.get(hash) as Entry;
    if (head === entry) {
      if (entry.sameHash === null) this.#byHash.delete(hash);
      else this.#byHash.set(hash, entry.sameHash);
    } else {
      let before = head;
      while (before.sameHash !== entry) before = before.sameHash as Entry;
      before.sameHash = entry.sameHash;
    }
    this.#size--;
    this.onChange(-1);
  }
}

const MAX_BUCKET = 8;
