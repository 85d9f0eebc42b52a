import type { PatternAst } from './ast.js';
import type { Closure } from './compile-expression.js';
import type { AllowDecision, AllowWithConditionsDecision, Condition, DenyDecision, RuleRef } from './decision.js';
import type { ReadPath } from './reads.js';

/**
 * The compiled form of a policy set: what evaluation walks. Built once by `compilePolicySet`;
 * the only fields that change afterwards are the per-evaluation memo stamps (`*Epoch`).
 */

export interface CompiledPolicy {
  readonly index: number;
  readonly name: string;
  readonly version: number;
  readonly requireRules: readonly RequireRule[];
  /** No requirement expression and no `if` on a `require:` rule: the policy's allows always count. */
  readonly alwaysMet: boolean;
  /** The policy's `name = value` obligations when none depends on an `if`; otherwise null. */
  readonly staticConditions: readonly Condition[] | null;
  /** Memo of the requirement check for the evaluation numbered `requirementsEpoch`. */
  requirementsEpoch: number;
  requirementsResult: UnmetRequirement | null;
  /** The evaluation in which one of this policy's allows counted. */
  allowedEpoch: number;
}

interface GuardedRule {
  readonly ordinal: number;
  readonly policy: CompiledPolicy;
  readonly ref: RuleRef;
  readonly patterns: readonly PatternAst[];
  /** Returns true, false or FAILED; null when the rule has no `if`. */
  readonly condition: Closure | null;
  /**
   * The context paths evaluating this rule can read (README "Cache"): its `if`, and for an
   * allow also its policy's `require:` rules, which are checked when the allow holds.
   */
  readonly reads: readonly ReadPath[];
}

export interface DenyRule extends GuardedRule {
  readonly decision: DenyDecision;
}

export interface AllowRule extends GuardedRule {
  readonly decision: AllowDecision;
  /** The decision when this policy alone allows and only its static obligations apply. */
  readonly conditionalDecision: AllowWithConditionsDecision | null;
}

export type AuditRule = GuardedRule;

/** One `NAME for target` item of a `require:` rule; `condition` is the rule's `if`. */
export interface ForRule extends GuardedRule {
  readonly approver: string | null;
  readonly obligation: Condition;
}

/** The requirement expressions and `name = value` obligations of one `require:` rule. */
export interface RequireRule {
  readonly ref: RuleRef;
  readonly condition: Closure | null;
  readonly requirements: readonly { readonly text: string; readonly check: Closure }[];
  readonly obligations: readonly Condition[];
  /** The evaluation in which this rule's `if` held (or failed), so its obligations apply. */
  appliedEpoch: number;
}

export interface UnmetRequirement {
  readonly rule: RequireRule;
  readonly text: string;
  /** Why it could not be evaluated; null when it was simply false. */
  readonly failure: string | null;
}
