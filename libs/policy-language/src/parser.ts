import type { BinaryOperator, ExprAst, JsonValue, PatternAst, PolicyAst, PolicyFile, RequirementAst, RuleAst, Span } from './ast.js';
import { PolicyParseError } from './errors.js';
import { describeToken, KEYWORDS, Lexer, type Token } from './lexer.js';

/** Texts longer than this are refused before lexing: a policy file is small, a flood is not. */
export const MAX_POLICY_TEXT_LENGTH = 1_048_576;

/**
 * How deep expressions may nest (parentheses, lists, `!`, quantifiers, and each operator of
 * an `&&`/`||` chain). It bounds the recursion of the parser, the compiler and the closures.
 */
export const MAX_EXPRESSION_DEPTH = 200;

export interface ParseOptions {
  /** The name errors and decisions use for this text; `<input>` by default. */
  readonly file?: string;
}

/**
 * Parses policy text (README "Grammar"). Returns the syntax tree of every policy in it, or
 * throws one `PolicyParseError` for the first error, with line, column, what was expected
 * and what was found. It never throws anything else, for any input.
 */
export function parsePolicies(text: string, options: ParseOptions = {}): PolicyFile {
  const file = options.file ?? '<input>';
  if (text.length > MAX_POLICY_TEXT_LENGTH) {
    throw new PolicyParseError({ file, line: 1, column: 1 }, `at most ${MAX_POLICY_TEXT_LENGTH} characters`, `${text.length} characters`);
  }
  return new Parser(text, file).parseFile();
}

const COMPARISONS: ReadonlySet<string> = new Set(['==', '!=', '<', '<=', '>', '>=']);
const RULE_KINDS: ReadonlySet<string> = new Set(['allow', 'deny', 'require', 'audit']);
// Verbs, resources and classes may be called `policy`, `audit`, ...; only these would be ambiguous.
const NOT_PATTERN_NAMES: ReadonlySet<string> = new Set(['if', 'for']);

class Parser {
  private readonly lexer: Lexer;
  private readonly lookahead: Token[] = [];
  private depth = 0;

  constructor(
    text: string,
    private readonly file: string,
  ) {
    this.lexer = new Lexer(text, file);
  }

  parseFile(): PolicyFile {
    const policies: PolicyAst[] = [];
    const seen = new Map<string, Span>();
    while (this.peek().kind !== 'eof') {
      const policy = this.parsePolicy();
      const first = seen.get(policy.name);
      if (first) {
        throw this.errorAt(policy.span, `a policy name not used before (first at ${first.line}:${first.column})`, `policy '${policy.name}'`);
      }
      seen.set(policy.name, policy.span);
      policies.push(policy);
    }
    return { file: this.file, policies };
  }

  private parsePolicy(): PolicyAst {
    this.expectKeyword('policy', "'policy'");
    const nameToken = this.peek();
    const name = this.expectName('a policy name');
    this.expectPunct('{');
    const rules: RuleAst[] = [];
    while (!this.atPunct('}')) rules.push(this.parseRule());
    this.take();
    return { name, file: this.file, span: spanOf(nameToken), rules };
  }

  private parseRule(): RuleAst {
    const token = this.peek();
    if (token.kind !== 'identifier' || !RULE_KINDS.has(token.text)) {
      throw this.errorAt(token, "a rule (allow:, deny:, require: or audit:) or '}'", describeToken(token));
    }
    this.take();
    this.expectPunct(':');
    const span = spanOf(token);
    if (token.text === 'require') {
      const listed = this.atPunct('[');
      const requirements = listed ? this.parseList(() => this.parseRequirement(), true) : [this.parseRequirement()];
      return { kind: 'require', span, requirements, listed, condition: this.parseCondition() };
    }
    const kind = token.text as 'allow' | 'deny' | 'audit';
    return { kind, span, target: this.parseTarget(), condition: this.parseCondition() };
  }

  private parseCondition(): ExprAst | null {
    if (!this.atKeyword('if')) return null;
    this.take();
    return this.parseExpression();
  }

  private parseTarget(): PatternAst[] {
    if (this.atPunct('[')) return this.parseList(() => this.parsePattern(), false);
    return [this.parsePattern()];
  }

  private parsePattern(): PatternAst {
    const token = this.peek();
    const name = this.expectPatternName(token);
    if (!this.atPunct('(')) {
      return name === 'any' ? { kind: 'any', span: spanOf(token) } : { kind: 'class', name, span: spanOf(token) };
    }
    this.take();
    const resource = this.expectPatternName(this.peek());
    this.expectPunct(')');
    return { kind: 'action', verb: name, resource, span: spanOf(token) };
  }

  private expectPatternName(token: Token): string {
    if (token.kind !== 'identifier' || NOT_PATTERN_NAMES.has(token.text)) {
      throw this.errorAt(token, 'a target (verb(resource), an action class or any)', describeToken(token));
    }
    this.take();
    return token.text;
  }

  private parseRequirement(): RequirementAst {
    const token = this.peek();
    if (token.kind === 'identifier' && !KEYWORDS.has(token.text)) {
      const second = this.peek(1);
      if (second.kind === 'punct' && second.text === '=') {
        this.take();
        this.take();
        return { kind: 'obligation', name: token.text, value: this.parseLiteral(), span: spanOf(token) };
      }
      if (second.kind === 'identifier' && second.text === 'for') {
        if (token.text === 'approval') {
          throw this.errorAt(token, 'an approver name before _approval (NAME_approval)', describeToken(token));
        }
        this.take();
        this.take();
        return { kind: 'for', name: token.text, target: this.parseTarget(), span: spanOf(token) };
      }
    }
    return { kind: 'expression', expression: this.parseExpression(), span: spanOf(token) };
  }

  /** Obligation values are literals so that a decision's conditions never depend on evaluation. */
  private parseLiteral(): JsonValue {
    const token = this.peek();
    if (token.kind === 'string' || token.kind === 'number') {
      this.take();
      return token.kind === 'string' ? token.text : token.number;
    }
    if (this.atPunct('-')) return this.parseNegativeNumber().value;
    if (this.atKeyword('true') || this.atKeyword('false')) {
      this.take();
      return token.text === 'true';
    }
    if (this.atPunct('[')) return this.nested(() => this.parseList(() => this.parseLiteral(), true));
    throw this.errorAt(token, 'a literal (string, number, true, false or a list)', describeToken(token));
  }

  /** `[item, item, ...]` with an optional trailing comma; `[]` only where `allowEmpty`. */
  private parseList<T>(item: () => T, allowEmpty: boolean): T[] {
    this.expectPunct('[');
    const items: T[] = [];
    while (!this.atPunct(']')) {
      items.push(item());
      if (this.atPunct(',')) {
        this.take();
        continue;
      }
      if (!this.atPunct(']')) throw this.errorAt(this.peek(), "',' or ']'", describeToken(this.peek()));
    }
    if (items.length === 0 && !allowEmpty) throw this.errorAt(this.peek(), 'a target (verb(resource), an action class or any)', "']'");
    this.take();
    return items;
  }

  // Expressions, loosest first: `||`, `&&`, one comparison, `!` and `-`, `.member` and `.contains(x)`.

  parseExpression(): ExprAst {
    return this.nested(() => this.parseOr());
  }

  private parseOr(): ExprAst {
    return this.parseChain('||', () => this.parseAnd());
  }

  private parseAnd(): ExprAst {
    return this.parseChain('&&', () => this.parseComparison());
  }

  private parseChain(operator: '||' | '&&', operand: () => ExprAst): ExprAst {
    const saved = this.depth;
    let left = operand();
    while (this.atPunct(operator)) {
      const token = this.take();
      // Each operator adds a level to the left-leaning tree: count it against the depth bound.
      this.enter(this.peek());
      left = { kind: 'binary', operator, left, right: operand(), span: spanOf(token) };
    }
    this.depth = saved;
    return left;
  }

  private parseComparison(): ExprAst {
    const left = this.parseUnary();
    const token = this.peek();
    if (token.kind !== 'punct' || !COMPARISONS.has(token.text)) return left;
    this.take();
    const right = this.parseUnary();
    const next = this.peek();
    if (next.kind === 'punct' && COMPARISONS.has(next.text)) {
      throw this.errorAt(next, "'&&' or '||' (comparisons do not chain)", describeToken(next));
    }
    return { kind: 'binary', operator: token.text as BinaryOperator, left, right, span: spanOf(token) };
  }

  private parseUnary(): ExprAst {
    const token = this.peek();
    if (this.atPunct('!')) {
      this.take();
      return { kind: 'not', operand: this.nested(() => this.parseUnary()), span: spanOf(token) };
    }
    if (this.atPunct('-')) return this.parseNegativeNumber();
    return this.parsePostfix();
  }

  private parseNegativeNumber(): ExprAst & { kind: 'literal'; value: number } {
    const minus = this.take();
    const token = this.peek();
    if (token.kind !== 'number') throw this.errorAt(token, "a number after '-'", describeToken(token));
    this.take();
    return { kind: 'literal', value: -token.number, span: spanOf(minus) };
  }

  private parsePostfix(): ExprAst {
    let expression = this.parsePrimary();
    while (this.atPunct('.')) {
      this.take();
      const token = this.peek();
      if (token.kind !== 'identifier') throw this.errorAt(token, "an attribute name after '.'", describeToken(token));
      this.take();
      if (!this.atPunct('(')) {
        expression = { kind: 'member', object: expression, property: token.text, span: spanOf(token) };
        continue;
      }
      if (token.text !== 'contains') throw this.errorAt(token, "'contains' (the only method)", describeToken(token));
      this.take();
      const argument = this.parseExpression();
      this.expectPunct(')');
      expression = { kind: 'contains', object: expression, argument, span: spanOf(token) };
    }
    return expression;
  }

  private parsePrimary(): ExprAst {
    const token = this.peek();
    const span = spanOf(token);
    switch (token.kind) {
      case 'string':
        this.take();
        return { kind: 'literal', value: token.text, span };
      case 'number':
        this.take();
        return { kind: 'literal', value: token.number, span };
      case 'identifier':
        if (token.text === 'true' || token.text === 'false') {
          this.take();
          return { kind: 'literal', value: token.text === 'true', span };
        }
        if (token.text === 'any' || token.text === 'all') return this.parseQuantifier(token.text);
        if (KEYWORDS.has(token.text)) break;
        this.take();
        return { kind: 'name', name: token.text, span };
      case 'punct':
        if (token.text === '(') {
          this.take();
          const inner = this.parseExpression();
          this.expectPunct(')');
          return inner;
        }
        if (token.text === '[') {
          const items = this.nested(() => this.parseList(() => this.parseExpression(), true));
          return { kind: 'list', items, span };
        }
        break;
      case 'eof':
        break;
      default: {
        const never: never = token.kind;
        return never;
      }
    }
    throw this.errorAt(token, 'an expression', describeToken(token));
  }

  /** `any(list, |x| condition)` and `all(list, |x| condition)`. */
  private parseQuantifier(quantifier: 'any' | 'all'): ExprAst {
    const token = this.take();
    this.expectPunct('(');
    const list = this.parseExpression();
    this.expectPunct(',');
    this.expectPunct('|');
    const parameter = this.expectName('a parameter name');
    this.expectPunct('|');
    const body = this.parseExpression();
    this.expectPunct(')');
    return { kind: 'quantifier', quantifier, list, parameter, body, span: spanOf(token) };
  }

  private nested<T>(parse: () => T): T {
    const saved = this.depth;
    this.enter(this.peek());
    try {
      return parse();
    } finally {
      this.depth = saved;
    }
  }

  private enter(at: Token): void {
    this.depth++;
    if (this.depth > MAX_EXPRESSION_DEPTH) {
      throw this.errorAt(at, `at most ${MAX_EXPRESSION_DEPTH} nested expressions`, describeToken(at));
    }
  }

  // Tokens.

  private peek(ahead = 0): Token {
    while (this.lookahead.length <= ahead) this.lookahead.push(this.lexer.next());
    return this.lookahead[ahead] as Token;
  }

  private take(): Token {
    const token = this.peek();
    this.lookahead.shift();
    return token;
  }

  private atPunct(text: string): boolean {
    const token = this.peek();
    return token.kind === 'punct' && token.text === text;
  }

  private atKeyword(text: string): boolean {
    const token = this.peek();
    return token.kind === 'identifier' && token.text === text;
  }

  private expectPunct(text: string): Token {
    const token = this.peek();
    if (token.kind !== 'punct' || token.text !== text) throw this.errorAt(token, `'${text}'`, describeToken(token));
    return this.take();
  }

  private expectKeyword(text: string, expected: string): Token {
    const token = this.peek();
    if (token.kind !== 'identifier' || token.text !== text) throw this.errorAt(token, expected, describeToken(token));
    return this.take();
  }

  private expectName(expected: string): string {
    const token = this.peek();
    if (token.kind !== 'identifier' || KEYWORDS.has(token.text)) throw this.errorAt(token, expected, describeToken(token));
    this.take();
    return token.text;
  }

  private errorAt(at: Span, expected: string, found: string): PolicyParseError {
    return new PolicyParseError({ file: this.file, line: at.line, column: at.column }, expected, found);
  }
}

function spanOf(token: Token): Span {
  return { line: token.line, column: token.column };
}
