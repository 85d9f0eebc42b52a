/**
 * The local, deterministic review of a tool schema (seed S5.3): nothing is sent anywhere.
 * It reads the tool's name, description and every nested parameter (names, descriptions,
 * titles, structural limits), applies RULES (rules.ts) and, with the other providers' tools
 * in view, the cross-provider rules (name collisions, look-alike names, descriptions that
 * name another provider's tool). Result: findings, a 0-1 risk score and a recommendation.
 */
import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import { CROSS_RULES, RULES, SEVERITY_WEIGHT, type Category, type ParamRule, type PatternRule, type Severity } from './rules.js';

export interface Finding {
  readonly rule_id: string;
  readonly title: string;
  readonly category: Category;
  readonly severity: Severity;
  readonly atlas: string;
  /** Where in the schema: `description`, `inputSchema.properties.path`, `name`. */
  readonly where: string;
  /** The matched text, invisible characters shown as \u{...}, at most 80 characters. */
  readonly excerpt: string;
}

export type Recommendation = 'approve' | 'review' | 'reject';

export interface ReviewResult {
  readonly findings: Finding[];
  readonly risk_score: number;
  readonly recommendation: Recommendation;
}

/** Another provider's tool, for the cross-provider rules. */
export interface KnownTool {
  readonly toolId: string;
  readonly domain: string;
  readonly name: string;
}

export interface ReviewOptions {
  /** The provider of the tool under review (tools of the same domain do not collide). */
  readonly domain?: string;
  readonly knownTools?: readonly KnownTool[];
  /** Risk score at or above which a human must review (default 0.3). */
  readonly reviewThreshold?: number;
}

export const DEFAULT_REVIEW_THRESHOLD = 0.3;
/** Longest text a rule looks at (per string); longer text is cut here and flagged. */
const MAX_TEXT = 64 * 1024;

const compiled = RULES.filter((r): r is PatternRule => r.target !== 'param').map((rule) => ({ rule, re: new RegExp(rule.pattern, rule.flags ?? 'iu') }));
const paramRules = RULES.filter((r): r is ParamRule => r.target === 'param').map((rule) => ({ rule, name: rule.nameFilter === undefined ? null : new RegExp(rule.nameFilter, 'i') }));
const INVISIBLE = new Set(['SP-POISON-TAGS', 'SP-POISON-ZW', 'SP-POISON-BIDI']);

function show(text: string): string {
  const cut = [...text.slice(0, 200)].slice(0, 80).join('');
  return cut.replace(/[^\x20-\x7e\u00a0-\u200a\u2010-\u2027\u2030-\u205f\u2070-\uffef]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

interface Text {
  readonly where: string;
  readonly text: string;
  /** descriptions and titles get every description rule; other strings only the invisible-character rules. */
  readonly prose: boolean;
}

interface Param {
  readonly where: string;
  readonly name: string;
  readonly schema: JsonObject;
}

/** Every string of the schema (with whether it is prose), and every parameter of its input schema. */
function collect(schema: JsonObject): { texts: Text[]; params: Param[] } {
  const texts: Text[] = [];
  const params: Param[] = [];
  const walk = (node: JsonValue, where: string, depth: number): void => {
    if (depth > 64) return;
    if (typeof node === 'string') {
      const key = where.slice(where.lastIndexOf('.') + 1);
      texts.push({ where, text: node, prose: key === 'description' || key === 'title' });
      return;
    }
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${where}[${i}]`, depth + 1));
      return;
    }
    if (!isJsonObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      texts.push({ where: `${where}.<key>`, text: key, prose: false });
      if ((key === 'properties' || key === 'patternProperties') && isJsonObject(value)) {
        for (const [name, sub] of Object.entries(value)) {
          const at = `${where}.${key}.${name}`;
          if (isJsonObject(sub)) params.push({ where: at, name, schema: sub });
          texts.push({ where: `${at}.<name>`, text: name, prose: false });
          walk(sub, at, depth + 1);
        }
        continue;
      }
      walk(value, where === '' ? key : `${where}.${key}`, depth + 1);
    }
  };
  walk(schema, '', 0);
  return { texts, params };
}

function paramCheck(check: ParamRule['check'], s: JsonObject): boolean {
  const type = s.type;
  const is = (t: string): boolean => type === t || (Array.isArray(type) && type.includes(t));
  switch (check) {
    case 'unbounded_string':
      return is('string') && s.maxLength === undefined && s.enum === undefined && s.const === undefined && s.format === undefined && s.pattern === undefined;
    case 'unbounded_integer':
      return (is('integer') || is('number')) && s.maximum === undefined && s.exclusiveMaximum === undefined && s.enum === undefined;
    case 'unbounded_array':
      return is('array') && s.maxItems === undefined;
    case 'free_object':
      return is('object') && s.properties === undefined && (s.additionalProperties === undefined || s.additionalProperties === true);
    default: {
      const never: never = check;
      return never;
    }
  }
}

/** Lower case, NFKC, common homoglyphs folded, separators dropped: names that read the same map to one skeleton. */
export function nameSkeleton(name: string): string {
  const folded: Record<string, string> = { а: 'a', е: 'e', о: 'o', р: 'p', с: 'c', х: 'x', у: 'y', і: 'i', ј: 'j', ѕ: 's', ԁ: 'd', ɡ: 'g', '0': 'o', '1': 'l', i: 'l', '|': 'l' };
  return name
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\s_\-.]+/gu, '')
    .replace(/rn/g, 'm')
    .replace(/./gu, (c) => folded[c] ?? c);
}

/** Damerau-Levenshtein distance capped at 2 (enough to call two names look-alikes). */
function closeNames(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1) return false;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]! <= 1;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Reviews one tool schema. */
export function reviewSchema(schema: unknown, options: ReviewOptions = {}): ReviewResult {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const add = (rule: { id: string; title: string; category: Category; severity: Severity; atlas: string }, where: string, excerpt: string): void => {
    const key = `${rule.id}\u0000${where}`;
    if (seen.has(key)) return;
    seen.add(key);
    findings.push({ rule_id: rule.id, title: rule.title, category: rule.category, severity: rule.severity, atlas: rule.atlas, where, excerpt: show(excerpt) });
  };
  const root = isJsonObject(schema) ? schema : {};
  const { texts, params } = collect(root);
  const name = typeof root.name === 'string' ? root.name : '';

  for (const t of texts) {
    const text = t.text.length > MAX_TEXT ? t.text.slice(0, MAX_TEXT) : t.text;
    for (const { rule, re } of compiled) {
      if (rule.target === 'param_name') continue;
      if (!t.prose && !INVISIBLE.has(rule.id)) continue;
      const m = re.exec(text);
      if (m !== null) add(rule, t.where, m[0]);
    }
  }
  if (name !== '') {
    for (const { rule, re } of compiled) {
      if (rule.target !== 'text') continue;
      const m = re.exec(name.replace(/_/g, ' '));
      if (m !== null) add(rule, 'name', m[0]);
    }
  }
  for (const p of params) {
    for (const { rule, re } of compiled) {
      if (rule.target === 'param_name') {
        if (re.test(p.name)) add(rule, p.where, p.name);
      } else if (rule.target === 'text') {
        const m = re.exec(p.name.replace(/_/g, ' '));
        if (m !== null) add(rule, p.where, m[0]);
      }
    }
    for (const { rule, name: filter } of paramRules) {
      if (filter !== null && !filter.test(p.name)) continue;
      if (paramCheck(rule.check, p.schema)) add(rule, p.where, p.name);
    }
  }

  // Cross-provider: collisions, look-alikes, and descriptions naming another provider's tool.
  const others = (options.knownTools ?? []).filter((t) => options.domain === undefined || t.domain !== options.domain);
  if (name !== '') {
    const mine = nameSkeleton(name);
    for (const other of others) {
      if (other.name === name) add(CROSS_RULES.collision, 'name', `${name} (also ${other.toolId}@${other.domain})`);
      else if (nameSkeleton(other.name) === mine || (mine.length >= 5 && closeNames(mine, nameSkeleton(other.name)))) {
        add(CROSS_RULES.lookalike, 'name', `${name} ~ ${other.name}@${other.domain}`);
      }
    }
  }
  const prose = texts.filter((t) => t.prose);
  for (const other of others) {
    if (other.name === name || other.name.length < 4 || !/[_\-.]|[a-z][A-Z]/.test(other.name)) continue;
    const re = new RegExp(`(?<![\\w-])${escapeRe(other.name)}(?![\\w-])`, 'i');
    for (const t of prose) if (re.test(t.text)) add(CROSS_RULES.mentions, t.where, `${other.name}@${other.domain}`);
  }

  const risk = 1 - findings.reduce((p, f) => p * (1 - SEVERITY_WEIGHT[f.severity]), 1);
  const risk_score = Math.round(risk * 1000) / 1000;
  const threshold = options.reviewThreshold ?? DEFAULT_REVIEW_THRESHOLD;
  const recommendation: Recommendation = findings.some((f) => f.severity === 'critical')
    ? 'reject'
    : risk_score >= threshold || findings.some((f) => f.severity === 'high')
      ? 'review'
      : 'approve';
  return { findings, risk_score, recommendation };
}
