/**
 * The condition language of detector rules (Falco-shaped: `evt.type = policy.violation and
 * evt.agent in (trusted_agents)`), over verified ledger events.
 *
 *   expr    = or
 *   or      = and { "or" and }
 *   and     = not { "and" not }
 *   not     = "not" not | primary
 *   primary = "(" expr ")" | MACRO | FIELD "exists" | FIELD OP value | FIELD ("in" | "intersects") list
 *   OP      = "=" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "startswith" | "endswith"
 *   list    = "(" [ value { "," value } ] ")"          (a LIST name inside expands to its items)
 *   value   = WORD | "quoted" | 'quoted'
 *
 * Fields: `evt.type`, `evt.producer`, `evt.agent`, `evt.seq`, `evt.id`, `evt.time` (ms), and
 * `evt.details.<a>.<b>` (an own property path into the details). A field that is missing
 * makes its comparison false (never an error at run time): a rule matches only what it names.
 */
import { InputError } from '@bulwark/errors';
import type { JsonValue } from '@bulwark/events';

/** What a condition sees of a verified ledger event. */
export interface EventView {
  readonly seq: number;
  readonly eventId: string;
  readonly timestamp: number;
  readonly producer: string;
  readonly agentId: string;
  readonly eventType: string;
  readonly details: { readonly [k: string]: JsonValue };
}

export type Predicate = (event: EventView) => boolean;
export type FieldGetter = (event: EventView) => JsonValue | undefined;

/**
 * The event types a compiled predicate can be true for, when the condition pins them
 * (`evt.type = x`, `evt.type in (..)`, through `and`, `or` and macros); absent = any type.
 * The engine indexes rules by it, so an event is tested only against the rules of its type.
 */
const TYPES = new WeakMap<Predicate, ReadonlySet<string>>();

export function eventTypesOf(predicate: Predicate): ReadonlySet<string> | undefined {
  return TYPES.get(predicate);
}

function typed(predicate: Predicate, types: ReadonlySet<string> | undefined): Predicate {
  if (types !== undefined) TYPES.set(predicate, types);
  return predicate;
}

/** `a and b`: pinned if any part is (the intersection of the pinned ones). */
function allOf(parts: readonly Predicate[]): Predicate {
  const [a, b] = parts;
  const test: Predicate = parts.length === 2 ? (e) => a!(e) && b!(e) : (e) => parts.every((p) => p(e));
  let types: Set<string> | undefined;
  for (const p of parts) {
    const t = TYPES.get(p);
    if (t === undefined) continue;
    types = types === undefined ? new Set(t) : new Set([...types].filter((x) => t.has(x)));
  }
  return typed(test, types);
}

/** `a or b`: pinned only if every part is (the union). */
function anyOf(parts: readonly Predicate[]): Predicate {
  const [a, b] = parts;
  const test: Predicate = parts.length === 2 ? (e) => a!(e) || b!(e) : (e) => parts.some((p) => p(e));
  const all = parts.map((p) => TYPES.get(p));
  return typed(test, all.every((t) => t !== undefined) ? new Set(all.flatMap((t) => [...t!])) : undefined);
}

/** A condition that does not parse: `offset` is the character index inside the condition text. */
export class ConditionError extends InputError {
  constructor(message: string, readonly offset: number) {
    super('E_RULE_CONDITION', message, { offset });
  }
}

const OPS = new Set(['=', '!=', '<', '<=', '>', '>=', 'contains', 'startswith', 'endswith', 'in', 'intersects', 'exists']);
const FIELD = /^evt\.(type|producer|agent|seq|id|time|details(\.[A-Za-z0-9_-]+)+)$/;

export function fieldGetter(name: string): FieldGetter | undefined {
  if (!FIELD.test(name)) return undefined;
  switch (name) {
    case 'evt.type':
      return (e) => e.eventType;
    case 'evt.producer':
      return (e) => e.producer;
    case 'evt.agent':
      return (e) => e.agentId;
    case 'evt.seq':
      return (e) => e.seq;
    case 'evt.id':
      return (e) => e.eventId;
    case 'evt.time':
      return (e) => e.timestamp;
  }
  const path = name.slice('evt.details.'.length).split('.');
  return (e) => {
    let at: JsonValue | undefined = e.details;
    for (const key of path) {
      if (at === null || typeof at !== 'object' || Array.isArray(at) || !Object.hasOwn(at, key)) return undefined;
      at = (at as { [k: string]: JsonValue })[key];
    }
    return at;
  };
}

interface Token {
  readonly kind: 'word' | 'string' | 'punct';
  readonly text: string;
  readonly at: number;
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      out.push({ kind: 'punct', text: c, at: i++ });
      continue;
    }
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new ConditionError(`unterminated string at character ${i + 1}`, i);
      out.push({ kind: 'string', text: text.slice(i + 1, end), at: i });
      i = end + 1;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === '!=' || two === '<=' || two === '>=') {
      out.push({ kind: 'word', text: two, at: i });
      i += 2;
      continue;
    }
    if (c === '=' || c === '<' || c === '>') {
      out.push({ kind: 'word', text: c, at: i++ });
      continue;
    }
    const start = i;
    while (i < text.length && !/[\s(),"'=<>!]/.test(text[i]!)) i++;
    if (i === start) throw new ConditionError(`unexpected "${c}" at character ${i + 1}`, i);
    out.push({ kind: 'word', text: text.slice(start, i), at: start });
  }
  return out;
}

export interface ConditionScope {
  /** Macro name → its compiled predicate (resolved lazily, cycles refused by the loader). */
  macro(name: string): Predicate | undefined;
  /** List name → its items. */
  list(name: string): readonly string[] | undefined;
}

/** Compiles `text` to a predicate; throws ConditionError naming the offending character. */
export function compileCondition(text: string, scope: ConditionScope): Predicate {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const fail = (why: string, at = peek()?.at ?? text.length): never => {
    throw new ConditionError(`${why} at character ${at + 1}`, at);
  };
  const expectPunct = (p: string) => {
    const t = peek();
    if (t?.kind !== 'punct' || t.text !== p) fail(`expected "${p}"`);
    pos++;
  };

  const parseOr = (): Predicate => {
    const parts = [parseAnd()];
    while (peek()?.kind === 'word' && peek()!.text === 'or') {
      pos++;
      parts.push(parseAnd());
    }
    return parts.length === 1 ? parts[0]! : anyOf(parts);
  };
  const parseAnd = (): Predicate => {
    const parts = [parseNot()];
    while (peek()?.kind === 'word' && peek()!.text === 'and') {
      pos++;
      parts.push(parseNot());
    }
    return parts.length === 1 ? parts[0]! : allOf(parts);
  };
  const parseNot = (): Predicate => {
    if (peek()?.kind === 'word' && peek()!.text === 'not') {
      pos++;
      const inner = parseNot();
      return (e) => !inner(e);
    }
    return parsePrimary();
  };
  const parseList = (): string[] => {
    expectPunct('(');
    const items: string[] = [];
    if (peek()?.kind === 'punct' && peek()!.text === ')') {
      pos++;
      return items;
    }
    for (;;) {
      const t = peek();
      if (t === undefined || t.kind === 'punct') fail('expected a value in the list');
      pos++;
      const named = t!.kind === 'word' ? scope.list(t!.text) : undefined;
      if (named !== undefined) items.push(...named);
      else items.push(t!.text);
      const sep = peek();
      if (sep?.kind === 'punct' && sep.text === ',') {
        pos++;
        continue;
      }
      expectPunct(')');
      return items;
    }
  };
  const parsePrimary = (): Predicate => {
    const t = peek();
    if (t === undefined) return fail('unexpected end of condition');
    if (t.kind === 'punct' && t.text === '(') {
      pos++;
      const inner = parseOr();
      expectPunct(')');
      return inner;
    }
    if (t.kind !== 'word') return fail(`unexpected ${t.kind === 'string' ? 'string' : `"${t.text}"`}`, t.at);
    pos++;
    const get = fieldGetter(t.text);
    if (get === undefined) {
      if (t.text.startsWith('evt.')) return fail(`unknown field ${t.text}`, t.at);
      const m = scope.macro(t.text);
      if (m === undefined) return fail(`unknown macro or field "${t.text}"`, t.at);
      return m;
    }
    const op = peek();
    if (op?.kind !== 'word' || !OPS.has(op.text)) return fail(`expected an operator after ${t.text}`);
    pos++;
    if (op!.text === 'exists') return (e) => get(e) !== undefined;
    if (op!.text === 'in' || op!.text === 'intersects') {
      const items = new Set(parseList());
      if (op!.text === 'in') return typed((e) => items.has(textOf(get(e)) ?? '\u0000'), t.text === 'evt.type' ? items : undefined);
      return (e) => {
        const v = get(e);
        return Array.isArray(v) && v.some((x) => items.has(textOf(x) ?? '\u0000'));
      };
    }
    const v = peek();
    if (v === undefined || v.kind === 'punct' || (v.kind === 'word' && OPS.has(v.text))) return fail(`expected a value after ${op!.text}`);
    pos++;
    const test = comparison(get, op!.text, v!.text);
    return t.text === 'evt.type' && op!.text === '=' ? typed(test, new Set([v!.text])) : test;
  };

  const predicate = parseOr();
  if (pos < tokens.length) fail(`unexpected "${tokens[pos]!.text}"`);
  return predicate;
}

/** Scalars compare as text (`=`, `in`), numbers numerically for `<`…`>=`. */
function textOf(v: JsonValue | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  return undefined;
}

function comparison(get: FieldGetter, op: string, literal: string): Predicate {
  switch (op) {
    case '=':
      return (e) => textOf(get(e)) === literal;
    case '!=':
      return (e) => {
        const t = textOf(get(e));
        return t !== undefined && t !== literal;
      };
    case 'contains':
      return (e) => {
        const v = get(e);
        if (Array.isArray(v)) return v.some((x) => textOf(x) === literal);
        return textOf(v)?.includes(literal) ?? false;
      };
    case 'startswith':
      return (e) => textOf(get(e))?.startsWith(literal) ?? false;
    case 'endswith':
      return (e) => textOf(get(e))?.endsWith(literal) ?? false;
  }
  const n = Number(literal);
  if (!Number.isFinite(n)) throw new ConditionError(`${op} needs a number, not "${literal}"`, 0);
  const cmp = {
    '<': (a: number) => a < n,
    '<=': (a: number) => a <= n,
    '>': (a: number) => a > n,
    '>=': (a: number) => a >= n,
  }[op as '<' | '<=' | '>' | '>='];
  return (e) => {
    const v = get(e);
    return typeof v === 'number' && cmp(v);
  };
}
