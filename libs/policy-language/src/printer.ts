import type { ExprAst, JsonValue, PatternAst, PolicyAst, RequirementAst, RuleAst } from './ast.js';

/**
 * Prints syntax trees back to policy text: rule heads name rules in decisions, and a whole
 * policy prints to the normal form its fingerprint is computed from. `parsePolicies` of the
 * printed text gives the same tree back (tested).
 */

export function printPolicy(policy: PolicyAst): string {
  const rules = policy.rules.map((rule) => `    ${printRule(rule)}\n`).join('');
  return `policy ${policy.name} {\n${rules}}\n`;
}

export function printRule(rule: RuleAst): string {
  const source = `${rule.kind}: ${printRuleBody(rule)}`;
  return rule.condition ? `${source} if ${printExpression(rule.condition)}` : source;
}

/** `deny export(data)`: how a decision names a rule, without its condition. */
export function printRuleHead(rule: RuleAst): string {
  return `${rule.kind} ${printRuleBody(rule)}`;
}

function printRuleBody(rule: RuleAst): string {
  if (rule.kind !== 'require') return printTarget(rule.target);
  const items = rule.requirements.map(printRequirement);
  return rule.listed ? `[${items.join(', ')}]` : (items[0] ?? '[]');
}

export function printTarget(target: readonly PatternAst[]): string {
  const patterns = target.map(printPattern);
  return target.length === 1 ? (patterns[0] as string) : `[${patterns.join(', ')}]`;
}

export function printPattern(pattern: PatternAst): string {
  switch (pattern.kind) {
    case 'any':
      return 'any';
    case 'action':
      return `${pattern.verb}(${pattern.resource})`;
    case 'class':
      return pattern.name;
    default: {
      const never: never = pattern;
      return never;
    }
  }
}

export function printRequirement(requirement: RequirementAst): string {
  switch (requirement.kind) {
    case 'expression': {
      // `require: [...]` is a requirement list; an expression that starts with a list literal needs parentheses.
      const text = printExpression(requirement.expression);
      return text.startsWith('[') ? `(${text})` : text;
    }
    case 'obligation':
      return `${requirement.name} = ${printValue(requirement.value)}`;
    case 'for':
      return `${requirement.name} for ${printTarget(requirement.target)}`;
    default: {
      const never: never = requirement;
      return never;
    }
  }
}

/** A literal as policy text; objects (only found in requests) print as JSON. */
export function printValue(value: JsonValue): string {
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (Array.isArray(value)) return `[${value.map(printValue).join(', ')}]`;
  return JSON.stringify(value);
}

// Binding strength, loosest first; a child that binds more loosely than its place needs parentheses.
const OR = 1;
const AND = 2;
const COMPARISON = 3;
const UNARY = 4;
const POSTFIX = 5;

export function printExpression(expression: ExprAst): string {
  return print(expression, OR);
}

function print(e: ExprAst, needed: number): string {
  const text = printBare(e);
  return strength(e) < needed ? `(${text})` : text;
}

function strength(e: ExprAst): number {
  switch (e.kind) {
    case 'binary':
      return e.operator === '||' ? OR : e.operator === '&&' ? AND : COMPARISON;
    case 'not':
      return UNARY;
    case 'literal':
      // `-1.x` would not read back as a member of a negative number.
      return typeof e.value === 'number' && (e.value < 0 || Object.is(e.value, -0)) ? UNARY : POSTFIX;
    default:
      return POSTFIX;
  }
}

function printBare(e: ExprAst): string {
  switch (e.kind) {
    case 'literal':
      return printValue(e.value);
    case 'name':
      return e.name;
    case 'member':
      return `${print(e.object, POSTFIX)}.${e.property}`;
    case 'contains':
      return `${print(e.object, POSTFIX)}.contains(${printExpression(e.argument)})`;
    case 'not':
      return `!${print(e.operand, UNARY)}`;
    case 'binary': {
      const own = strength(e);
      // Chains lean left, so a right child of the same strength keeps its parentheses;
      // comparisons do not chain at all.
      const leftNeeded = own === COMPARISON ? UNARY : own;
      return `${print(e.left, leftNeeded)} ${e.operator} ${print(e.right, own + 1)}`;
    }
    case 'list':
      return `[${e.items.map(printExpression).join(', ')}]`;
    case 'quantifier':
      return `${e.quantifier}(${printExpression(e.list)}, |${e.parameter}| ${printExpression(e.body)})`;
    default: {
      const never: never = e;
      return never;
    }
  }
}
