import { BulwarkError } from '@bulwark/errors';

/** Where a piece of policy text is: 1-based line and column (UTF-16 code units). */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/**
 * A policy text that is not valid: the one error a parse or compile can raise. The
 * message is the line `file:line:col: expected X, found Y` the CLI prints as is.
 */
export class PolicyParseError extends BulwarkError {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly expected: string;
  readonly found: string;

  constructor(at: SourcePosition, expected: string, found: string) {
    super('E_POLICY_PARSE', `${at.file}:${at.line}:${at.column}: expected ${expected}, found ${found}`, {
      file: at.file,
      line: at.line,
      column: at.column,
      expected,
      found,
    });
    this.file = at.file;
    this.line = at.line;
    this.column = at.column;
    this.expected = expected;
    this.found = found;
  }
}

/** Why a condition or requirement could not be evaluated against a request. */
export type EvalErrorKind = 'missing_attribute' | 'type_mismatch' | 'not_a_level' | 'limit_exceeded' | 'internal';

/**
 * A rule that could not be evaluated. Never thrown out of `evaluate`: it is reported in
 * the decision's `diagnostics`, and the rule counts as not matching for an allow and as
 * matching for a deny (fail secure).
 */
export class PolicyEvalError extends BulwarkError {
  readonly kind: EvalErrorKind;
  readonly policy: string | null;
  readonly version: number | null;
  readonly rule: number | null;
  readonly detail: string;

  constructor(kind: EvalErrorKind, detail: string, where: { policy: string; version: number; rule: number; ruleText: string } | null) {
    const prefix = where ? `policy ${where.policy} rule ${where.rule} (${where.ruleText}): ` : '';
    super('E_POLICY_EVAL', `${prefix}${detail}`, {
      kind,
      policy: where?.policy ?? null,
      version: where?.version ?? null,
      rule: where?.rule ?? null,
    });
    this.kind = kind;
    this.policy = where?.policy ?? null;
    this.version = where?.version ?? null;
    this.rule = where?.rule ?? null;
    this.detail = detail;
  }

  /** Decisions are printed and logged as JSON; an Error's own fields are not enumerable. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, kind: this.kind, policy: this.policy, version: this.version, rule: this.rule, message: this.message };
  }
}
