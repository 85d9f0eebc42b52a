/**
 * One correlation window (a rule and a key): the matching events inside the window, oldest
 * first, with the measure kept up to date as events enter and leave, so each event costs O(1)
 * amortized whatever the window holds: `count` is the length, `distinct` a tally of values
 * (its size), `sum` a running total of the numeric values.
 */
import type { JsonValue } from '@bulwark/events';

export interface EventRef {
  readonly seq: number;
  readonly eventId: string;
  readonly timestamp: number;
  readonly eventType: string;
}

export type CorrelationKind = 'count' | 'distinct' | 'sum';

/** Compaction drops the evicted head once it is at least this long and half the array. */
const COMPACT_AT = 1024;

const distinctKey = (v: JsonValue | undefined): string | undefined => (v === undefined ? undefined : typeof v === 'string' ? v : JSON.stringify(v));

export class CorrelationWindow {
  /** `refs[head, end)` are in the window. The range is never rewritten: compaction makes a new array. */
  refs: EventRef[] = [];
  head = 0;
  #values: (JsonValue | undefined)[] = [];
  readonly #tally = new Map<string, number>();
  #sum = 0;

  constructor(readonly kind: CorrelationKind) {}

  get end(): number {
    return this.refs.length;
  }

  get size(): number {
    return this.refs.length - this.head;
  }

  /** `value` is the field of distinct or sum (unused for count). */
  push(ref: EventRef, value: JsonValue | undefined): void {
    this.refs.push(ref);
    if (this.kind === 'count') return;
    this.#values.push(value);
    this.#enter(value);
  }

  /** Drops the events at or before `from` (event time), and the oldest beyond `max`. */
  evict(from: number, max: number): void {
    const refs = this.refs;
    let head = this.head;
    while (head < refs.length && (refs[head]!.timestamp <= from || refs.length - head > max)) {
      if (this.kind !== 'count') this.#leave(this.#values[head]);
      head++;
    }
    this.head = head;
    if (head >= COMPACT_AT && head * 2 >= refs.length) {
      this.refs = refs.slice(head);
      if (this.kind !== 'count') this.#values = this.#values.slice(head);
      this.head = 0;
      // Re-add the sum from scratch now and then, so rounding cannot drift over a long run.
      if (this.kind === 'sum') this.#sum = this.#values.reduce<number>((s, v) => s + (typeof v === 'number' ? v : 0), 0);
    }
  }

  measure(): number {
    switch (this.kind) {
      case 'count':
        return this.size;
      case 'distinct':
        return this.#tally.size;
      case 'sum':
        return this.#sum;
      default: {
        const never: never = this.kind;
        throw new Error(`unknown correlation ${String(never)}`);
      }
    }
  }

  #enter(value: JsonValue | undefined): void {
    if (this.kind === 'sum') {
      if (typeof value === 'number') this.#sum += value;
      return;
    }
    const k = distinctKey(value);
    if (k !== undefined) this.#tally.set(k, (this.#tally.get(k) ?? 0) + 1);
  }

  #leave(value: JsonValue | undefined): void {
    if (this.kind === 'sum') {
      if (typeof value === 'number') this.#sum -= value;
      return;
    }
    const k = distinctKey(value);
    if (k === undefined) return;
    const n = this.#tally.get(k)! - 1;
    if (n === 0) this.#tally.delete(k);
    else this.#tally.set(k, n);
  }
}
