/**
 * Detector rules as data: Falco-shaped YAML files (a sequence of `- rule:`, `- macro:` and
 * `- list:` items; `override: { condition: append|replace, items: append, exceptions: append }`
 * or the older `append: true`), plus two Bulwark fields for stateful detection over a key:
 *
 *   correlate: { by: [evt.agent], window: 10s, count: 20 }                 # ≥ 20 matches
 *   correlate: { by: [evt.agent], window: 60s, distinct: evt.details.rule, count: 3 }
 *   correlate: { by: [evt.agent], window: 60s, sum: evt.details.bytes, count: 1000000 }
 *   sequence:  { by: [evt.agent], window: 60s, steps: ["evt.type = tools.pinned", "evt.type = tools.invoked"] }
 *
 * Every error names the file, line and column (the `yaml` package's line counter). A file that
 * fails to load changes nothing: `RuleBook.replace` keeps the previous rules in force.
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node, type YAMLMap } from 'yaml';
import { InputError } from '@bulwark/errors';
import { compileCondition, ConditionError, eventTypesOf, fieldGetter, type FieldGetter, type Predicate } from './condition.js';

export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'low', 'medium', 'high', 'critical'];

/** Falco's priorities map onto the five severities of S7.2; the five are accepted as they are. */
const PRIORITY: Readonly<Record<string, Severity>> = {
  emergency: 'critical',
  alert: 'critical',
  critical: 'critical',
  error: 'high',
  high: 'high',
  warning: 'medium',
  medium: 'medium',
  notice: 'low',
  low: 'low',
  informational: 'info',
  info: 'info',
  debug: 'info',
};

export class RuleLoadError extends InputError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    why: string,
  ) {
    super('E_RULES_LOAD', `${file}:${line}:${column}: ${why}`, { file, line, column });
  }
}

export interface Correlation {
  readonly by: readonly FieldGetter[];
  readonly byFields: readonly string[];
  readonly windowMs: number;
  readonly kind: 'count' | 'distinct' | 'sum';
  /** For distinct and sum. */
  readonly field?: FieldGetter;
  readonly threshold: number;
}

export interface Sequence {
  readonly by: readonly FieldGetter[];
  readonly byFields: readonly string[];
  readonly windowMs: number;
  readonly steps: readonly Predicate[];
}

export interface Rule {
  readonly name: string;
  readonly desc: string;
  readonly condition: string;
  readonly output: string;
  readonly severity: Severity;
  /** The incident category (`bulwark.incident.<severity>.<category>`). */
  readonly category: string;
  readonly tags: readonly string[];
  readonly recommended: readonly string[];
  readonly enabled: boolean;
  /** Condition and not any exception (for sequences: the first step's gate). */
  readonly match: Predicate;
  /** The only event types `match` can be true for, when the condition pins them (the engine's index); absent = any. */
  readonly eventTypes?: ReadonlySet<string>;
  readonly correlate?: Correlation;
  readonly sequence?: Sequence;
  readonly file: string;
  readonly line: number;
}

export interface RuleSource {
  readonly file: string;
  readonly text: string;
}

interface RawItem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly node: YAMLMap;
  readonly fields: Map<string, unknown>;
}

interface RawRule {
  name: string;
  item: RawItem;
  fields: Map<string, unknown>;
  condition: string;
  exceptions: unknown[];
}

const RULE_KEYS = new Set(['rule', 'desc', 'condition', 'output', 'priority', 'tags', 'enabled', 'exceptions', 'override', 'append', 'category', 'correlate', 'sequence', 'recommended_actions', 'source']);
const CATEGORY = /^[a-z][a-z0-9_]{0,63}$/;

/** Parses and compiles `sources` in order (later files override earlier ones). Throws RuleLoadError. */
export function loadRules(sources: readonly RuleSource[]): Rule[] {
  const lists = new Map<string, string[]>();
  const macros = new Map<string, { text: string; item: RawItem }>();
  const rules = new Map<string, RawRule>();

  for (const source of sources) {
    for (const item of itemsOf(source)) {
      const err = (why: string, key?: string): never => {
        const at = key === undefined ? { line: item.line, col: item.col } : positionOf(item, key);
        throw new RuleLoadError(item.file, at.line, at.col, why);
      };
      const override = overrideOf(item, err);
      if (item.fields.has('list')) {
        const name = str(item, 'list', err);
        const items = stringList(item, 'items', err);
        if (override.items === 'append') {
          const prev = lists.get(name);
          if (prev === undefined) err(`list ${name}: append to a list that is not defined`, 'list');
          prev!.push(...items);
        } else lists.set(name, [...items]);
      } else if (item.fields.has('macro')) {
        const name = str(item, 'macro', err);
        const condition = str(item, 'condition', err);
        const prev = macros.get(name);
        if (override.condition === 'append') {
          if (prev === undefined) err(`macro ${name}: append to a macro that is not defined`, 'macro');
          macros.set(name, { text: `(${prev!.text}) ${condition}`, item });
        } else macros.set(name, { text: condition, item });
      } else if (item.fields.has('rule')) {
        for (const key of item.fields.keys()) if (!RULE_KEYS.has(key)) err(`rule: unknown key "${key}"`, key);
        const name = str(item, 'rule', err);
        const prev = rules.get(name);
        const isOverride = override.condition !== undefined || override.exceptions !== undefined || override.other;
        if (isOverride) {
          if (prev === undefined) err(`rule ${name}: override of a rule that is not defined`, 'rule');
          const p = prev!;
          if (item.fields.has('condition')) {
            const c = str(item, 'condition', err);
            p.condition = override.condition === 'append' ? `(${p.condition}) ${c}` : c;
          }
          if (item.fields.has('exceptions')) {
            const ex = item.fields.get('exceptions');
            if (!Array.isArray(ex)) err('exceptions must be a list', 'exceptions');
            p.exceptions = override.exceptions === 'append' ? [...p.exceptions, ...(ex as unknown[])] : [...(ex as unknown[])];
          }
          for (const [k, v] of item.fields) if (!['rule', 'condition', 'exceptions', 'override', 'append'].includes(k)) p.fields.set(k, v);
        } else {
          const exceptions = item.fields.get('exceptions') ?? [];
          if (!Array.isArray(exceptions)) err('exceptions must be a list', 'exceptions');
          rules.set(name, { name, item, fields: new Map(item.fields), condition: str(item, 'condition', err), exceptions: exceptions as unknown[] });
        }
      } else {
        err('an item must be a rule, a macro or a list');
      }
    }
  }

  // Macros compile on first use, with the chain of names in progress to refuse a cycle.
  const compiled = new Map<string, Predicate>();
  const inProgress: string[] = [];
  const scope = {
    list: (name: string) => lists.get(name),
    macro: (name: string): Predicate | undefined => {
      const done = compiled.get(name);
      if (done !== undefined) return done;
      const m = macros.get(name);
      if (m === undefined) return undefined;
      if (inProgress.includes(name)) {
        throw new RuleLoadError(m.item.file, m.item.line, m.item.col, `macro ${name} refers to itself (${[...inProgress, name].join(' → ')})`);
      }
      inProgress.push(name);
      const p = compileAt(m.text, m.item, 'condition', `macro ${name}`, scope);
      inProgress.pop();
      compiled.set(name, p);
      return p;
    },
  };

  return [...rules.values()].map((raw) => buildRule(raw, scope));
}

function buildRule(raw: RawRule, scope: Parameters<typeof compileCondition>[1]): Rule {
  const item: RawItem = { ...raw.item, fields: raw.fields };
  const err = (why: string, key?: string): never => {
    const at = key === undefined ? { line: item.line, col: item.col } : positionOf(item, key);
    throw new RuleLoadError(item.file, at.line, at.col, `rule ${raw.name}: ${why}`);
  };
  const condition = compileAt(raw.condition, item, 'condition', `rule ${raw.name}`, scope);
  const exceptions = raw.exceptions.map((ex) => compileException(ex, err));
  const match: Predicate = exceptions.length === 0 ? condition : (e) => condition(e) && !exceptions.some((x) => x(e));
  const priority = str(item, 'priority', err).toLowerCase();
  const severity = PRIORITY[priority];
  if (severity === undefined) err(`priority "${priority}" is not one of ${Object.keys(PRIORITY).join(', ')}`, 'priority');
  const category = raw.fields.has('category') ? str(item, 'category', err) : 'anomalous_behavior';
  if (!CATEGORY.test(category)) err(`category "${category}" must be lower-case letters, digits and _ (a subject token)`, 'category');
  const enabled = raw.fields.get('enabled') ?? true;
  if (typeof enabled !== 'boolean') err('enabled must be true or false', 'enabled');
  const eventTypes = eventTypesOf(condition);
  const rule: Rule = {
    name: raw.name,
    desc: raw.fields.has('desc') ? str(item, 'desc', err) : '',
    condition: raw.condition,
    output: str(item, 'output', err),
    severity: severity!,
    category,
    tags: raw.fields.has('tags') ? stringList(item, 'tags', err) : [],
    recommended: raw.fields.has('recommended_actions') ? stringList(item, 'recommended_actions', err) : [],
    enabled: enabled as boolean,
    match,
    ...(eventTypes === undefined ? {} : { eventTypes }),
    file: item.file,
    line: item.line,
    ...(raw.fields.has('correlate') ? { correlate: correlationOf(raw.fields.get('correlate'), err) } : {}),
    ...(raw.fields.has('sequence') ? { sequence: sequenceOf(raw.fields.get('sequence'), item, raw.name, scope, err) } : {}),
  };
  if (rule.correlate !== undefined && rule.sequence !== undefined) err('a rule has correlate or sequence, not both', 'sequence');
  return rule;
}

function compileAt(text: string, item: RawItem, key: string, what: string, scope: Parameters<typeof compileCondition>[1]): Predicate {
  try {
    return compileCondition(text, scope);
  } catch (e) {
    if (e instanceof ConditionError) {
      const at = positionOf(item, key);
      throw new RuleLoadError(item.file, at.line, at.col, `${what}: condition: ${e.message}`);
    }
    throw e;
  }
}

function byOf(value: unknown, err: (why: string, key?: string) => never, key: string): { by: FieldGetter[]; byFields: string[] } {
  const names = value === undefined ? ['evt.agent'] : value;
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) return err(`${key}.by must be a list of fields`, key);
  const by = (names as string[]).map((n) => fieldGetter(n) ?? err(`${key}.by: unknown field ${n}`, key));
  return { by, byFields: names as string[] };
}

function durationMs(value: unknown, err: (why: string, key?: string) => never, key: string): number {
  const m = typeof value === 'string' ? /^(\d+)(ms|s|m|h)$/.exec(value) : null;
  if (m === null) return err(`${key}.window must be a duration like 500ms, 10s, 5m or 1h`, key);
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  if (n <= 0 || n > 86_400_000) err(`${key}.window must be between 1ms and 24h`, key);
  return n;
}

function correlationOf(value: unknown, err: (why: string, key?: string) => never): Correlation {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return err('correlate must be a mapping', 'correlate');
  const v = value as Record<string, unknown>;
  for (const k of Object.keys(v)) if (!['by', 'window', 'count', 'distinct', 'sum'].includes(k)) err(`correlate: unknown key "${k}"`, 'correlate');
  const threshold = v['count'];
  if (typeof threshold !== 'number' || !(threshold > 0)) err('correlate.count must be a positive number', 'correlate');
  if (v['distinct'] !== undefined && v['sum'] !== undefined) err('correlate has distinct or sum, not both', 'correlate');
  const fieldName = (v['distinct'] ?? v['sum']) as unknown;
  const kind = v['distinct'] !== undefined ? 'distinct' : v['sum'] !== undefined ? 'sum' : 'count';
  const field = fieldName === undefined ? undefined : typeof fieldName === 'string' ? fieldGetter(fieldName) : undefined;
  if (fieldName !== undefined && field === undefined) err(`correlate.${kind}: unknown field ${String(fieldName)}`, 'correlate');
  return { ...byOf(v['by'], err, 'correlate'), windowMs: durationMs(v['window'], err, 'correlate'), kind, threshold: threshold as number, ...(field === undefined ? {} : { field }) };
}

function sequenceOf(value: unknown, item: RawItem, name: string, scope: Parameters<typeof compileCondition>[1], err: (why: string, key?: string) => never): Sequence {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return err('sequence must be a mapping', 'sequence');
  const v = value as Record<string, unknown>;
  const steps = v['steps'];
  if (!Array.isArray(steps) || steps.length < 2 || !steps.every((s) => typeof s === 'string')) return err('sequence.steps must list at least two conditions', 'sequence');
  return {
    ...byOf(v['by'], err, 'sequence'),
    windowMs: durationMs(v['window'], err, 'sequence'),
    steps: (steps as string[]).map((s, i) => compileAt(s, item, 'sequence', `rule ${name}: sequence step ${i + 1}`, scope)),
  };
}

/** Falco exceptions: `{ name, fields: [..], comps: [..], values: [[..], ..] }`; an event matching any tuple is excluded. */
function compileException(value: unknown, err: (why: string, key?: string) => never): Predicate {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return err('an exception must be a mapping', 'exceptions');
  const v = value as Record<string, unknown>;
  const name = typeof v['name'] === 'string' ? v['name'] : '?';
  const fieldsRaw = v['fields'];
  const fields = typeof fieldsRaw === 'string' ? [fieldsRaw] : fieldsRaw;
  if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === 'string')) return err(`exception ${name}: fields must be a list of fields`, 'exceptions');
  const getters = (fields as string[]).map((f) => fieldGetter(f) ?? err(`exception ${name}: unknown field ${f}`, 'exceptions'));
  const compsRaw = v['comps'] ?? fields.map(() => '=');
  const comps = typeof compsRaw === 'string' ? [compsRaw] : compsRaw;
  if (!Array.isArray(comps) || comps.length !== fields.length || !comps.every((c) => ['=', '!=', 'in', 'startswith'].includes(c as string))) {
    return err(`exception ${name}: comps must list one of =, !=, in, startswith per field`, 'exceptions');
  }
  const values = v['values'] ?? [];
  if (!Array.isArray(values)) return err(`exception ${name}: values must be a list`, 'exceptions');
  const tuples = values.map((t) => {
    const tuple = typeof fieldsRaw === 'string' ? [t] : t;
    if (!Array.isArray(tuple) || tuple.length !== fields.length) return err(`exception ${name}: each value must have ${fields.length} item(s)`, 'exceptions');
    return tuple.map((x) => (Array.isArray(x) ? x.map(String) : String(x)));
  });
  const text = (x: unknown) => (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? String(x) : undefined);
  return (e) =>
    tuples.some((tuple) =>
      tuple.every((want, i) => {
        const got = text(getters[i]!(e));
        if (got === undefined) return false;
        switch (comps[i] as string) {
          case '=':
            return got === want;
          case '!=':
            return got !== want;
          case 'startswith':
            return got.startsWith(String(want));
          default:
            return (Array.isArray(want) ? want : [want]).includes(got);
        }
      }),
    );
}

// --- YAML plumbing ---------------------------------------------------------------------------

function itemsOf(source: RuleSource): RawItem[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = lineCounter.linePos(e.pos[0]);
    throw new RuleLoadError(source.file, at.line, at.col, e.message.split('\n')[0] ?? 'invalid YAML');
  }
  const root = doc.contents;
  if (root === null) return [];
  if (!isSeq(root)) {
    const at = lineCounter.linePos((root as Node).range?.[0] ?? 0);
    throw new RuleLoadError(source.file, at.line, at.col, 'a rules file is a YAML sequence of rule, macro and list items');
  }
  return root.items.map((node) => {
    const at = lineCounter.linePos((node as Node).range?.[0] ?? 0);
    if (!isMap(node)) throw new RuleLoadError(source.file, at.line, at.col, 'each item must be a mapping (rule, macro or list)');
    const fields = new Map<string, unknown>();
    const positions = new Map<string, { line: number; col: number }>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      fields.set(key, isMap(pair.value) || isSeq(pair.value) ? pair.value.toJSON() : isScalar(pair.value) ? pair.value.value : pair.value);
      const range = (pair.value as Node | null)?.range ?? (pair.key as Node | null)?.range;
      positions.set(key, lineCounter.linePos(range?.[0] ?? 0));
    }
    return Object.assign({ file: source.file, line: at.line, col: at.col, node, fields }, { positions });
  });
}

function positionOf(item: RawItem, key: string): { line: number; col: number } {
  const positions = (item as RawItem & { positions?: Map<string, { line: number; col: number }> }).positions;
  return positions?.get(key) ?? { line: item.line, col: item.col };
}

function str(item: RawItem, key: string, err: (why: string, key?: string) => never): string {
  const v = item.fields.get(key);
  if (typeof v !== 'string' || v.trim() === '') return err(`${key} must be a non-empty string`, item.fields.has(key) ? key : undefined);
  return v.trim();
}

function stringList(item: RawItem, key: string, err: (why: string, key?: string) => never): string[] {
  const v = item.fields.get(key);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' || typeof x === 'number')) return err(`${key} must be a list of strings`, item.fields.has(key) ? key : undefined);
  return v.map(String);
}

function overrideOf(item: RawItem, err: (why: string, key?: string) => never): { condition?: 'append' | 'replace'; items?: 'append' | 'replace'; exceptions?: 'append' | 'replace'; other: boolean } {
  if (item.fields.get('append') === true) return { condition: 'append', items: 'append', exceptions: 'append', other: false };
  const o = item.fields.get('override');
  if (o === undefined) return { other: false };
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return err('override must be a mapping of field: append|replace', 'override');
  const out: { condition?: 'append' | 'replace'; items?: 'append' | 'replace'; exceptions?: 'append' | 'replace'; other: boolean } = { other: false };
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    if (v !== 'append' && v !== 'replace') err(`override.${k} must be append or replace`, 'override');
    if (k === 'condition' || k === 'items' || k === 'exceptions') out[k] = v as 'append' | 'replace';
    else out.other = true;
  }
  return out;
}
