/**
 * Runs the rules over verified ledger events, in ledger order. Stateless rules fire on every
 * match; `correlate` rules keep, per rule and key, the matches inside the window (by the events'
 * own timestamps, so a replay of the ledger fires exactly as the live run did) and fire once the
 * count, the number of distinct values or the sum reaches the threshold; `sequence` rules fire
 * when their steps matched in order within the window.
 *
 * Cost per event: one lookup of the rules indexed under its type (a rule whose condition pins
 * `evt.type` is never tested against other types), their compiled predicates, and for a
 * correlation O(1) amortized window upkeep (a queue with running count, distinct tally and sum).
 * The evidence list of a detection is built only when read (the grouper reads it once, when it
 * opens an incident), so a long burst into an open incident copies nothing.
 */
import type { JsonValue } from '@bulwark/events';
import type { EventView, FieldGetter } from '../rules/condition.js';
import type { Correlation, Rule, Sequence } from '../rules/load.js';
import { CorrelationWindow, type EventRef } from './window.js';

export type { EventRef } from './window.js';

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

export const refOf = (e: EventView): EventRef => ({ seq: e.seq, eventId: e.eventId, timestamp: e.timestamp, eventType: e.eventType });

const textOf = (v: JsonValue | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const keyOf = (by: readonly FieldGetter[], e: EventView): string => (by.length === 1 ? textOf(by[0]!(e)) : by.map((g) => textOf(g(e))).join('|'));

/**
 * A detection whose evidence is `refs[start, end)` as it was when it was made, copied on first
 * read (a window only appends past `end` and replaces its array when it compacts, so the range
 * never changes); without `refs`, the evidence is the event alone.
 */
class LazyDetection implements Detection {
  #evidence: readonly EventRef[] | undefined;
  constructor(
    readonly rule: Rule,
    readonly key: string,
    readonly event: EventView,
    readonly fired: boolean,
    private readonly refs?: readonly EventRef[],
    private readonly start = 0,
    private readonly end = 0,
  ) {}

  get evidence(): readonly EventRef[] {
    this.#evidence ??= this.refs === undefined ? [refOf(this.event)] : this.refs.slice(this.start, this.end);
    return this.#evidence;
  }
}

interface SequenceState {
  step: number;
  readonly start: number;
  readonly refs: EventRef[];
}

/** A rule and its state: windows or sequences per key. */
class RuleState {
  readonly windows = new Map<string, CorrelationWindow>();
  readonly sequences = new Map<string, SequenceState>();
  constructor(readonly rule: Rule) {}
}

const NONE: readonly Detection[] = Object.freeze([]);

export class DetectionEngine {
  #rules: readonly Rule[] = [];
  #states = new Map<Rule, RuleState>();
  /** Event type → the states of the rules that can match it, in rule order. */
  #byType = new Map<string, readonly RuleState[]>();
  /** The rules that do not pin a type (tested against every event). */
  #anyType: readonly RuleState[] = [];

  constructor(rules: readonly Rule[]) {
    this.replaceRules(rules);
  }

  /** Swaps the rule set; windows of rules that are still present (the same object) are kept. */
  replaceRules(rules: readonly Rule[]): void {
    this.#rules = rules.filter((r) => r.enabled);
    const states = new Map<Rule, RuleState>();
    for (const r of this.#rules) states.set(r, this.#states.get(r) ?? new RuleState(r));
    this.#states = states;
    const ordered = [...states.values()];
    this.#anyType = ordered.filter((s) => s.rule.eventTypes === undefined);
    const types = new Set(this.#rules.flatMap((r) => [...(r.eventTypes ?? [])]));
    this.#byType = new Map([...types].map((t) => [t, ordered.filter((s) => s.rule.eventTypes === undefined || s.rule.eventTypes.has(t))]));
  }

  get rules(): readonly Rule[] {
    return this.#rules;
  }

  process(event: EventView): readonly Detection[] {
    const candidates = this.#byType.get(event.eventType) ?? this.#anyType;
    let out: Detection[] | undefined;
    for (const state of candidates) {
      const rule = state.rule;
      if (!rule.match(event)) continue;
      let d: Detection | undefined;
      if (rule.correlate !== undefined) d = correlate(state, rule.correlate, event);
      else if (rule.sequence !== undefined) d = sequence(state, rule.sequence, event);
      else d = new LazyDetection(rule, event.agentId, event, true);
      if (d !== undefined) (out ??= []).push(d);
    }
    return out ?? NONE;
  }
}

function correlate(state: RuleState, c: Correlation, event: EventView): Detection {
  const key = keyOf(c.by, event);
  let window = state.windows.get(key);
  if (window === undefined) {
    if (state.windows.size >= MAX_KEYS) state.windows.delete(state.windows.keys().next().value!);
    window = new CorrelationWindow(c.kind);
    state.windows.set(key, window);
  }
  window.push(refOf(event), c.field?.(event));
  window.evict(event.timestamp - c.windowMs, MAX_WINDOW);
  const fired = window.measure() >= c.threshold;
  return fired ? new LazyDetection(state.rule, key, event, true, window.refs, window.head, window.end) : new LazyDetection(state.rule, key, event, false);
}

function sequence(state: RuleState, s: Sequence, event: EventView): Detection | undefined {
  const byKey = state.sequences;
  const key = keyOf(s.by, event);
  let current = byKey.get(key);
  if (current !== undefined && event.timestamp - current.start > s.windowMs) {
    byKey.delete(key);
    current = undefined;
  }
  if (current === undefined) {
    if (!s.steps[0]!(event)) return undefined;
    if (byKey.size >= MAX_KEYS) byKey.delete(byKey.keys().next().value!);
    byKey.set(key, { step: 1, start: event.timestamp, refs: [refOf(event)] });
    return undefined;
  }
  if (!s.steps[current.step]!(event)) return undefined;
  current.refs.push(refOf(event));
  current.step++;
  if (current.step < s.steps.length) return undefined;
  byKey.delete(key);
  const refs = current.refs;
  return new LazyDetection(state.rule, key, event, true, refs, 0, refs.length);
}
