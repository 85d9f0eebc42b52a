/**
 * Runs the rules over verified ledger events, in ledger order. Stateless rules fire on every
 * match; `correlate` rules keep, per rule and key, the matches inside the window (by the events'
 * own timestamps, so a replay of the ledger fires exactly as the live run did) and fire once the
 * count, the number of distinct values or the sum reaches the threshold; `sequence` rules fire
 * when their steps matched in order within the window.
 */
import type { JsonValue } from '@bulwark/events';
import type { EventView, FieldGetter } from '../rules/condition.js';
import type { Rule } from '../rules/load.js';

export interface EventRef {
  readonly seq: number;
  readonly eventId: string;
  readonly timestamp: number;
  readonly eventType: string;
}

export interface Detection {
  readonly rule: Rule;
  /** The correlation key's values joined by "|" (the agent for most rules). */
  readonly key: string;
  readonly event: EventView;
  /** True once the rule's condition over its window holds (always for a stateless rule). */
  readonly fired: boolean;
  /** The events that made it fire (the window, or the sequence's steps); just this event otherwise. */
  readonly evidence: readonly EventRef[];
}

/** Bounds the state: events kept per window, keys per rule. */
const MAX_WINDOW = 10_000;
const MAX_KEYS = 100_000;

interface Entry {
  readonly ref: EventRef;
  readonly value: JsonValue | undefined;
}

export const refOf = (e: EventView): EventRef => ({ seq: e.seq, eventId: e.eventId, timestamp: e.timestamp, eventType: e.eventType });

const keyOf = (by: readonly FieldGetter[], e: EventView): string => by.map((g) => textOf(g(e))).join('|');
const textOf = (v: JsonValue | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export class DetectionEngine {
  #rules: readonly Rule[];
  readonly #windows = new Map<Rule, Map<string, Entry[]>>();
  readonly #sequences = new Map<Rule, Map<string, { step: number; start: number; refs: EventRef[] }>>();

  constructor(rules: readonly Rule[]) {
    this.#rules = rules.filter((r) => r.enabled);
  }

  /** Swaps the rule set; windows of rules that are still present (the same object) are kept. */
  replaceRules(rules: readonly Rule[]): void {
    this.#rules = rules.filter((r) => r.enabled);
    for (const r of [...this.#windows.keys()]) if (!this.#rules.includes(r)) this.#windows.delete(r);
    for (const r of [...this.#sequences.keys()]) if (!this.#rules.includes(r)) this.#sequences.delete(r);
  }

  get rules(): readonly Rule[] {
    return this.#rules;
  }

  process(event: EventView): Detection[] {
    const out: Detection[] = [];
    for (const rule of this.#rules) {
      if (!rule.match(event)) continue;
      if (rule.correlate !== undefined) out.push(this.#correlate(rule, event));
      else if (rule.sequence !== undefined) {
        const d = this.#sequence(rule, event);
        if (d !== undefined) out.push(d);
      } else out.push({ rule, key: event.agentId, event, fired: true, evidence: [refOf(event)] });
    }
    return out;
  }

  #correlate(rule: Rule, event: EventView): Detection {
    const c = rule.correlate!;
    let byKey = this.#windows.get(rule);
    if (byKey === undefined) this.#windows.set(rule, (byKey = new Map()));
    const key = keyOf(c.by, event);
    let window = byKey.get(key);
    if (window === undefined) {
      if (byKey.size >= MAX_KEYS) byKey.delete(byKey.keys().next().value!);
      byKey.set(key, (window = []));
    }
    window.push({ ref: refOf(event), value: c.field?.(event) });
    const from = event.timestamp - c.windowMs;
    let drop = 0;
    while (drop < window.length && window[drop]!.ref.timestamp <= from) drop++;
    if (window.length - drop > MAX_WINDOW) drop = window.length - MAX_WINDOW;
    if (drop > 0) window.splice(0, drop);
    let measure: number;
    switch (c.kind) {
      case 'count':
        measure = window.length;
        break;
      case 'distinct':
        measure = new Set(window.filter((w) => w.value !== undefined).map((w) => textOf(w.value))).size;
        break;
      case 'sum':
        measure = window.reduce((s, w) => s + (typeof w.value === 'number' ? w.value : 0), 0);
        break;
      default: {
        const never: never = c.kind;
        throw new Error(`unknown correlation ${String(never)}`);
      }
    }
    const fired = measure >= c.threshold;
    return { rule, key, event, fired, evidence: fired ? window.map((w) => w.ref) : [refOf(event)] };
  }

  #sequence(rule: Rule, event: EventView): Detection | undefined {
    const s = rule.sequence!;
    let byKey = this.#sequences.get(rule);
    if (byKey === undefined) this.#sequences.set(rule, (byKey = new Map()));
    const key = keyOf(s.by, event);
    let state = byKey.get(key);
    if (state !== undefined && event.timestamp - state.start > s.windowMs) {
      byKey.delete(key);
      state = undefined;
    }
    if (state === undefined) {
      if (!s.steps[0]!(event)) return undefined;
      if (byKey.size >= MAX_KEYS) byKey.delete(byKey.keys().next().value!);
      byKey.set(key, { step: 1, start: event.timestamp, refs: [refOf(event)] });
      return undefined;
    }
    if (!s.steps[state.step]!(event)) return undefined;
    state.refs.push(refOf(event));
    state.step++;
    if (state.step < s.steps.length) return undefined;
    byKey.delete(key);
    return { rule, key, event, fired: true, evidence: state.refs };
  }
}
