/**
 * The syntax tree the parser produces (README "Grammar"). Every node keeps where it starts
 * so that compile errors and decisions can point at the source.
 */

export interface Span {
  readonly line: number;
  readonly column: number;
}

/** A value in a request or a literal: what `JSON.parse` can produce. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

export interface PolicyFile {
  readonly file: string;
  readonly policies: readonly PolicyAst[];
}

export interface PolicyAst {
  readonly name: string;
  readonly file: string;
  readonly span: Span;
  readonly rules: readonly RuleAst[];
}

export type RuleAst = TargetRuleAst | RequireRuleAst;

/** `allow:`, `deny:` or `audit:` a target, optionally `if` a condition. */
export interface TargetRuleAst {
  readonly kind: 'allow' | 'deny' | 'audit';
  readonly span: Span;
  readonly target: readonly PatternAst[];
  readonly condition: ExprAst | null;
}

/** `require:` one requirement or a list of them, optionally `if` a condition. */
export interface RequireRuleAst {
  readonly kind: 'require';
  readonly span: Span;
  readonly requirements: readonly RequirementAst[];
  /** Whether the source wrote a bracketed list (kept so the printer round-trips). */
  readonly listed: boolean;
  readonly condition: ExprAst | null;
}

/** `any`, `verb(resource)` (either may be `any`) or a bare action class. */
export type PatternAst =
  | { readonly kind: 'any'; readonly span: Span }
  | { readonly kind: 'action'; readonly verb: string; readonly resource: string; readonly span: Span }
  | { readonly kind: 'class'; readonly name: string; readonly span: Span };

export type RequirementAst =
  /** An expression that must be true for the policy's allows to count. */
  | { readonly kind: 'expression'; readonly expression: ExprAst; readonly span: Span }
  /** `name = literal`: an obligation attached to the policy's allows. */
  | { readonly kind: 'obligation'; readonly name: string; readonly value: JsonValue; readonly span: Span }
  /** `name for target`: an obligation, or an approval when name is `APPROVER_approval`. */
  | { readonly kind: 'for'; readonly name: string; readonly target: readonly PatternAst[]; readonly span: Span };

export type BinaryOperator = '||' | '&&' | '==' | '!=' | '<' | '<=' | '>' | '>=';

export type ExprAst =
  | { readonly kind: 'literal'; readonly value: JsonValue; readonly span: Span }
  | { readonly kind: 'name'; readonly name: string; readonly span: Span }
  | { readonly kind: 'member'; readonly object: ExprAst; readonly property: string; readonly span: Span }
  | { readonly kind: 'contains'; readonly object: ExprAst; readonly argument: ExprAst; readonly span: Span }
  | { readonly kind: 'not'; readonly operand: ExprAst; readonly span: Span }
  | { readonly kind: 'binary'; readonly operator: BinaryOperator; readonly left: ExprAst; readonly right: ExprAst; readonly span: Span }
  | { readonly kind: 'list'; readonly items: readonly ExprAst[]; readonly span: Span }
  | {
      readonly kind: 'quantifier';
      readonly quantifier: 'any' | 'all';
      readonly list: ExprAst;
      readonly parameter: string;
      readonly body: ExprAst;
      readonly span: Span;
    };
