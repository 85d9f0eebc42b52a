import type { BinaryOperator, ExprAst, JsonValue } from './ast.js';
import { PolicyParseError, type EvalErrorKind } from './errors.js';
import { printExpression } from './printer.js';
import { deepEqual, describeValue, typeOfValue } from './values.js';

/**
 * Expressions compile to closures over the request context (no text is interpreted per
 * request). A closure returns a value, or `FAILED` after writing why into the `ErrorSink`:
 * failures are values, not exceptions, so that the common path stays allocation free and
 * an error can never escape evaluation.
 */
export const FAILED: unique symbol = Symbol('policy-evaluation-failed');

/** Quantifier iterations one evaluation may take, over all its rules. */
export const QUANTIFIER_STEP_BUDGET = 100_000;

export type Context = Readonly<Record<string, unknown>>;
/** Lambda parameters by slot; one array per policy set, reused by every evaluation. */
export type Slots = unknown[];
export type Closure = (context: Context, slots: Slots) => unknown;

/** The last evaluation failure; read by the rule that ran the closure. */
export class ErrorSink {
  kind: EvalErrorKind = 'internal';
  detail = '';
  /**
   * Quantifier steps left in this evaluation. Nested `any`/`all` over request lists multiply;
   * past the budget the expression fails (and so denies) instead of running on.
   */
  steps = QUANTIFIER_STEP_BUDGET;

  fail(kind: EvalErrorKind, detail: string): typeof FAILED {
    this.kind = kind;
    this.detail = detail;
    return FAILED;
  }
}

export interface ExpressionCompiler {
  readonly file: string;
  /** Rank of each classification level, lowest first. */
  readonly levels: ReadonlyMap<string, number>;
  readonly levelOrder: string;
  readonly sink: ErrorSink;
  /** Grows to the deepest nesting of `any`/`all`, so the set can size its slots. */
  slotCount: number;
}

/** Compiles a condition: a closure that returns `true`, `false` or `FAILED` (never another value). */
export function compileCondition(expression: ExprAst, compiler: ExpressionCompiler): Closure {
  return asBoolean(compileValue(expression, compiler, []), expression, compiler.sink, 'condition');
}

function asBoolean(inner: Closure, expression: ExprAst, sink: ErrorSink, role: string): Closure {
  // Operators, `.contains`, quantifiers and boolean literals only ever produce true, false or
  // FAILED: checking their result again would cost a call per node for nothing.
  if (producesBoolean(expression)) return inner;
  const text = lazyText(expression);
  return (context, slots) => {
    const value = inner(context, slots);
    if (value === true || value === false || value === FAILED) return value;
    return sink.fail('type_mismatch', `${role} ${text()} is ${describeValue(value)}, not a boolean`);
  };
}

function producesBoolean(e: ExprAst): boolean {
  switch (e.kind) {
    case 'binary':
    case 'not':
    case 'contains':
    case 'quantifier':
      return true;
    case 'literal':
      return typeof e.value === 'boolean';
    case 'name':
    case 'member':
    case 'list':
      return false;
    default: {
      const never: never = e;
      return never;
    }
  }
}

/**
 * Error messages quote the expression, but printing every subtree at compile time costs
 * quadratic time in the nesting depth: print only when an error is reported.
 */
function lazyText(expression: ExprAst): () => string {
  let text: string | null = null;
  return () => (text ??= printExpression(expression));
}

function compileValue(e: ExprAst, compiler: ExpressionCompiler, scope: readonly string[]): Closure {
  switch (e.kind) {
    case 'literal': {
      const value = freezeLiteral(e.value);
      return () => value;
    }
    case 'name':
    case 'member':
      return compileAccess(e, compiler, scope);
    case 'contains':
      return compileContains(e, compiler, scope);
    case 'not': {
      const operand = asBoolean(compileValue(e.operand, compiler, scope), e.operand, compiler.sink, 'operand of !');
      return (context, slots) => {
        const value = operand(context, slots);
        return value === FAILED ? FAILED : !value;
      };
    }
    case 'binary':
      return compileBinary(e, compiler, scope);
    case 'list': {
      // A list of literals is one constant, not a new array per evaluation.
      if (e.items.every((item) => item.kind === 'literal')) {
        const value = freezeLiteral(e.items.map((item) => (item as ExprAst & { kind: 'literal' }).value));
        return () => value;
      }
      const items = e.items.map((item) => compileValue(item, compiler, scope));
      return (context, slots) => {
        const values: unknown[] = [];
        for (const item of items) {
          const value = item(context, slots);
          if (value === FAILED) return FAILED;
          values.push(value);
        }
        return values;
      };
    }
    case 'quantifier':
      return compileQuantifier(e, compiler, scope);
    default: {
      const never: never = e;
      return never;
    }
  }
}

/**
 * `user.clearance`, `d.privacy_level`: a name (a lambda parameter, else a key of the request
 * context) followed by attributes, looked up as one path. Only own properties count, so that
 * `constructor` or `__proto__` never reach Object.prototype.
 */
function compileAccess(e: ExprAst & { kind: 'name' | 'member' }, compiler: ExpressionCompiler, scope: readonly string[]): Closure {
  const path: string[] = [];
  let base: ExprAst = e;
  while (base.kind === 'member') {
    path.unshift(base.property);
    base = base.object;
  }
  const sink = compiler.sink;
  const root = base.kind === 'name' ? base.name : null;
  const baseText = lazyText(base);
  const prefix = (i: number): string => `${root ?? `(${baseText()})`}${i === 0 ? '' : `.${path.slice(0, i).join('.')}`}`;
  const walk = (start: unknown): unknown => {
    let value = start;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] as string;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        return sink.fail('type_mismatch', `${prefix(i)} is ${describeValue(value)}, not an object with attribute ${key}`);
      }
      if (!Object.hasOwn(value, key)) return sink.fail('missing_attribute', `missing attribute ${prefix(i)}.${key}`);
      value = (value as Record<string, unknown>)[key];
    }
    return value;
  };
  if (base.kind === 'name') {
    const name = base.name;
    const slot = scope.lastIndexOf(name);
    if (slot >= 0) return (_context, slots) => walk(slots[slot]);
    const missingName = `missing attribute ${name}`;
    return (context) => {
      if (!Object.hasOwn(context, name)) return sink.fail('missing_attribute', missingName);
      return path.length === 0 ? context[name] : walk(context[name]);
    };
  }
  const object = compileValue(base, compiler, scope);
  return (context, slots) => {
    const value = object(context, slots);
    return value === FAILED ? FAILED : walk(value);
  };
}

function compileContains(e: ExprAst & { kind: 'contains' }, compiler: ExpressionCompiler, scope: readonly string[]): Closure {
  const object = compileValue(e.object, compiler, scope);
  const argument = compileValue(e.argument, compiler, scope);
  const sink = compiler.sink;
  const text = lazyText(e);
  return (context, slots) => {
    const haystack = object(context, slots);
    if (haystack === FAILED) return FAILED;
    const needle = argument(context, slots);
    if (needle === FAILED) return FAILED;
    const needleType = typeOfValue(needle);
    if (typeof haystack === 'string') {
      if (typeof needle === 'string') return haystack.includes(needle);
      return sink.fail('type_mismatch', `${text()}: a string can only contain a string, not ${describeValue(needle)}`);
    }
    if (!Array.isArray(haystack)) {
      return sink.fail('type_mismatch', `${text()}: contains needs a list or a string, not ${describeValue(haystack)}`);
    }
    if (needleType === 'unsupported') return sink.fail('type_mismatch', `${text()}: cannot look for ${describeValue(needle)}`);
    // Every element must have the needle's type: `[123].contains("123")` is an error, not a
    // quiet false that a `!` would turn into an allow.
    let found = false;
    for (const item of haystack) {
      if (typeOfValue(item) !== needleType) {
        return sink.fail('type_mismatch', `${text()}: the list holds ${describeValue(item)}, the needle is ${describeValue(needle)}`);
      }
      if (!found && deepEqual(item, needle)) found = true;
    }
    return found;
  };
}

function compileBinary(e: ExprAst & { kind: 'binary' }, compiler: ExpressionCompiler, scope: readonly string[]): Closure {
  const sink = compiler.sink;
  if (e.operator === '&&' || e.operator === '||') {
    const left = asBoolean(compileValue(e.left, compiler, scope), e.left, sink, `operand of ${e.operator}`);
    const right = asBoolean(compileValue(e.right, compiler, scope), e.right, sink, `operand of ${e.operator}`);
    // Left to right, short-circuit: the right side is not evaluated (and cannot fail) once the left decides.
    if (e.operator === '&&') {
      return (context, slots) => {
        const value = left(context, slots);
        return value === true ? right(context, slots) : value;
      };
    }
    return (context, slots) => {
      const value = left(context, slots);
      return value === false ? right(context, slots) : value;
    };
  }
  const left = compileValue(e.left, compiler, scope);
  const right = compileValue(e.right, compiler, scope);
  const text = lazyText(e);
  if (e.operator === '==' || e.operator === '!=') {
    const negate = e.operator === '!=';
    return (context, slots) => {
      const a = left(context, slots);
      if (a === FAILED) return FAILED;
      const b = right(context, slots);
      if (b === FAILED) return FAILED;
      if (typeof a === 'string' && typeof b === 'string') return (a === b) !== negate;
      const type = typeOfValue(a);
      // Values of different types are an error, not unequal: otherwise `!=` would allow on a typo'd type.
      if (type !== typeOfValue(b) || type === 'unsupported') {
        return sink.fail('type_mismatch', `${text()}: cannot compare ${describeValue(a)} with ${describeValue(b)}`);
      }
      return deepEqual(a, b) !== negate;
    };
  }
  checkLevelLiterals(e, compiler);
  const holds = ORDER[e.operator];
  const levels = compiler.levels;
  const levelOrder = compiler.levelOrder;
  return (context, slots) => {
    const a = left(context, slots);
    if (a === FAILED) return FAILED;
    const b = right(context, slots);
    if (b === FAILED) return FAILED;
    if (typeof a === 'number' && typeof b === 'number') {
      if (Number.isFinite(a) && Number.isFinite(b)) return holds(a < b ? -1 : a > b ? 1 : 0);
    } else if (typeof a === 'string' && typeof b === 'string') {
      // Strings order only as classification levels: a lexical order would rank "confidential" below "internal".
      const x = levels.get(a);
      const y = levels.get(b);
      if (x === undefined || y === undefined) {
        const bad = x === undefined ? a : b;
        return sink.fail('not_a_level', `${text()}: ${JSON.stringify(bad)} is not a classification level (${levelOrder})`);
      }
      return holds(x < y ? -1 : x > y ? 1 : 0);
    }
    return sink.fail('type_mismatch', `${text()}: cannot order ${describeValue(a)} and ${describeValue(b)}`);
  };
}

const ORDER: Readonly<Record<Exclude<BinaryOperator, '&&' | '||' | '==' | '!='>, (order: number) => boolean>> = {
  '<': (order) => order < 0,
  '<=': (order) => order <= 0,
  '>': (order) => order > 0,
  '>=': (order) => order >= 0,
};

/** A string literal in an ordered comparison that is not a level would fail on every request: refuse it now. */
function checkLevelLiterals(e: ExprAst & { kind: 'binary' }, compiler: ExpressionCompiler): void {
  for (const side of [e.left, e.right]) {
    if (side.kind === 'literal' && typeof side.value === 'string' && !compiler.levels.has(side.value)) {
      throw new PolicyParseError(
        { file: compiler.file, line: side.span.line, column: side.span.column },
        `a classification level (${compiler.levelOrder})`,
        `string ${JSON.stringify(side.value)}`,
      );
    }
  }
}

function compileQuantifier(e: ExprAst & { kind: 'quantifier' }, compiler: ExpressionCompiler, scope: readonly string[]): Closure {
  const list = compileValue(e.list, compiler, scope);
  const slot = scope.length;
  compiler.slotCount = Math.max(compiler.slotCount, slot + 1);
  const sink = compiler.sink;
  const body = asBoolean(compileValue(e.body, compiler, [...scope, e.parameter]), e.body, sink, `body of ${e.quantifier}`);
  const text = lazyText(e.list);
  // any: stops at the first true (empty list: false); all: stops at the first false (empty list: true).
  const stopAt = e.quantifier === 'any';
  return (context, slots) => {
    const items = list(context, slots);
    if (items === FAILED) return FAILED;
    if (!Array.isArray(items)) return sink.fail('type_mismatch', `${e.quantifier}(${text()}, ...) needs a list, not ${describeValue(items)}`);
    if ((sink.steps -= items.length) < 0) {
      return sink.fail('limit_exceeded', `${e.quantifier}(${text()}, ...) exceeds the budget of ${QUANTIFIER_STEP_BUDGET} quantifier steps per evaluation`);
    }
    for (const item of items) {
      slots[slot] = item;
      const value = body(context, slots);
      if (value === stopAt || value === FAILED) return value;
    }
    return !stopAt;
  };
}

function freezeLiteral(value: JsonValue): JsonValue {
  if (Array.isArray(value)) {
    for (const item of value) freezeLiteral(item);
    return Object.freeze(value);
  }
  return value;
}

