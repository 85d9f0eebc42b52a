import { FAILED, QUANTIFIER_STEP_BUDGET, type Context, type ErrorSink, type Slots } from './compile-expression.js';
import type { CompiledRules } from './compile.js';
import type { AllowRule, AuditRule, CompiledPolicy, DenyRule, ForRule, UnmetRequirement } from './compiled.js';
import type { Condition, Decision, DenyDecision, RuleRef } from './decision.js';
import { PolicyEvalError } from './errors.js';
import type { ReadPath } from './reads.js';
import { requestProblem } from './request.js';
import { RuleIndex, type ActionRequest, type Targeted } from './rule-index.js';

const NONE: readonly never[] = Object.freeze([]);
const EMPTY_CONTEXT: Context = Object.freeze({});

/**
 * The decision procedure of README "Semantics", step by step:
 *   1. denies, in order: the first whose condition holds or fails decides Deny;
 *   2. allows, in order: an allow counts when its condition holds and its policy's
 *      requirements are met; none counts → Deny (the first unmet requirement, else default);
 *   3. `NAME for target` items whose target matches: approvals give RequireApproval,
 *      other names and the allowing policies' `name = value` become conditions;
 *   4. audits: every audit rule whose condition holds (or fails) is listed on the decision.
 * Every step visits only the rules whose target matches the request (`RuleIndex`).
 *
 * One evaluator belongs to one policy set and keeps its scratch state between calls;
 * `evaluate` is synchronous, so calls never interleave.
 */
export class Evaluator {
  private readonly denies: RuleIndex<DenyRule>;
  private readonly allows: RuleIndex<AllowRule>;
  private readonly audits: RuleIndex<AuditRule>;
  private readonly fors: RuleIndex<ForRule>;
  private readonly sink: ErrorSink;
  private readonly slots: Slots;
  private readonly request = { action: '', resource: '', classes: NONE as readonly string[] };
  private readonly scratch = { denies: [] as DenyRule[], allows: [] as AllowRule[], audits: [] as AuditRule[], fors: [] as ForRule[] };
  private readonly allowed: CompiledPolicy[] = [];
  private epoch = 0;
  private busy = false;
  private scan = false;
  private diagnostics: PolicyEvalError[] | null = null;
  private audited: RuleRef[] | null = null;

  constructor(
    rules: CompiledRules,
    private readonly setVersion: string,
  ) {
    this.denies = new RuleIndex(rules.denies);
    this.allows = new RuleIndex(rules.allows);
    this.audits = new RuleIndex(rules.audits);
    this.fors = new RuleIndex(rules.fors);
    this.sink = rules.sink;
    this.slots = new Array<unknown>(rules.slotCount).fill(undefined);
  }

  /** `byScan` visits every rule instead of the indexed candidates: the reference the index is tested against. */
  evaluate(input: unknown, byScan = false): Decision {
    // A getter in the request calling back into this set would overwrite the scratch state
    // of the evaluation in progress: refuse the inner call rather than decide on mixed state.
    if (this.busy) return this.deny('invalid request: evaluation re-entered from inside the request', null);
    this.busy = true;
    try {
      return this.evaluateOnce(input, byScan);
    } finally {
      this.busy = false;
    }
  }

  private evaluateOnce(input: unknown, byScan: boolean): Decision {
    this.epoch++;
    this.scan = byScan;
    this.diagnostics = null;
    this.audited = null;
    this.sink.steps = QUANTIFIER_STEP_BUDGET;
    try {
      const problem = this.readRequest(input);
      if (problem !== null) return this.finish(this.deny(`invalid request: ${problem}`, null));
      const context = ((input as { context?: Context }).context ?? EMPTY_CONTEXT) as Context;
      const decision = this.decide(context);
      this.audit(context);
      return this.finish(decision);
    } catch (err) {
      // Unreachable by design (closures report failures as values); if it happens, deny.
      const message = err instanceof Error ? err.message : String(err);
      const error = new PolicyEvalError('internal', `internal evaluation error: ${message}`, null);
      (this.diagnostics ??= []).push(error);
      return this.finish(this.deny(error.detail, null));
    }
  }

  /** Whether an evaluation is in progress (so a call now comes from a getter of its request). */
  get evaluating(): boolean {
    return this.busy;
  }

  /**
   * Every context path that evaluating a request with this target can read: the reads of
   * each rule the index offers for it (README "Cache"). Uses the index's scratch, so not
   * while evaluating (`evaluating`).
   */
  readsFor(target: ActionRequest): ReadPath[] {
    const reads: ReadPath[] = [];
    const add = (rules: readonly { reads: readonly ReadPath[] }[]): void => {
      for (const rule of rules) for (const path of rule.reads) reads.push(path);
    };
    add(this.denies.candidates(target, []));
    add(this.allows.candidates(target, []));
    add(this.fors.candidates(target, []));
    add(this.audits.candidates(target, []));
    return reads;
  }

  /** The Deny for a request that could not even be read (not JSON, not decryptable). */
  denyInvalid(why: string): DenyDecision {
    return this.deny(`invalid request: ${why}`, null);
  }

  /** README "Requests": checks the shape and copies the target fields into the scratch request. */
  private readRequest(input: unknown): string | null {
    const problem = requestProblem(input);
    if (problem !== null) return problem;
    const { action, resource, classes } = input as { action: string; resource: string; classes?: readonly string[] };
    const request = this.request;
    request.action = action;
    request.resource = resource;
    request.classes = classes ?? NONE;
    return null;
  }

  private candidates<R extends Targeted>(index: RuleIndex<R>, out: R[]): readonly R[] {
    return this.scan ? index.scan(this.request, out) : index.candidates(this.request, out);
  }

  private decide(context: Context): Decision {
    const slots = this.slots;
    // 1. A matching deny wins over every allow; a deny whose condition fails matches (fail secure).
    for (const rule of this.candidates(this.denies, this.scratch.denies)) {
      const holds = rule.condition === null ? true : rule.condition(context, slots);
      if (holds === true) return rule.decision;
      if (holds === FAILED) {
        const error = this.report(rule.ref);
        return this.deny(`${rule.decision.reason}: its condition could not be evaluated (${error.detail})`, rule.ref);
      }
    }

    // 2. Allows: the first counting allow per policy; requirements are checked once per policy.
    const epoch = this.epoch;
    const allowed = this.allowed;
    allowed.length = 0;
    let first: AllowRule | null = null;
    let unmet: UnmetRequirement | null = null;
    let failedAllows = 0;
    for (const rule of this.candidates(this.allows, this.scratch.allows)) {
      const policy = rule.policy;
      if (policy.allowedEpoch === epoch) continue;
      if (rule.condition !== null) {
        const holds = rule.condition(context, slots);
        if (holds === FAILED) {
          this.report(rule.ref);
          failedAllows++;
          continue;
        }
        if (holds === false) continue;
      }
      const missing = this.requirements(policy, context);
      if (missing !== null) {
        unmet ??= missing;
        continue;
      }
      policy.allowedEpoch = epoch;
      allowed.push(policy);
      first ??= rule;
    }
    if (first === null) {
      if (unmet !== null) {
        const why = unmet.failure === null ? 'it is false' : `it could not be evaluated (${unmet.failure})`;
        const ref = unmet.rule.ref;
        return this.deny(`requirement ${unmet.text} (policy ${ref.policy} rule ${ref.rule}) not met: ${why}`, ref);
      }
      const { action, resource } = this.request;
      const failed = failedAllows === 0 ? '' : `; ${failedAllows} allow rule(s) could not be evaluated (see diagnostics)`;
      return this.deny(`no rule allows ${action}(${resource})${failed}`, null);
    }

    // 3. Approvals and obligations for the request's target.
    let approvals: ForRule[] | null = null;
    let obligations: Condition[] | null = null;
    for (const item of this.candidates(this.fors, this.scratch.fors)) {
      if (item.condition !== null) {
        const holds = item.condition(context, slots);
        if (holds === false) continue;
        // A failed `if` applies the requirement: an obligation or an approval too many is the safe side.
        if (holds === FAILED) this.report(item.ref);
      }
      if (item.approver !== null) (approvals ??= []).push(item);
      else (obligations ??= []).push(item.obligation);
    }

    if (approvals === null && obligations === null && allowed.length === 1) {
      return first.conditionalDecision ?? (first.policy.staticConditions === null ? this.allowWith(first, this.policyConditions(allowed, null)) : first.decision);
    }
    const conditions = this.policyConditions(allowed, obligations);
    if (approvals !== null) {
      const head = approvals[0] as ForRule;
      const approvers: string[] = [];
      for (const item of approvals) if (!approvers.includes(item.approver as string)) approvers.push(item.approver as string);
      return {
        decision: 'RequireApproval',
        approver: head.approver as string,
        approvers,
        conditions,
        ...head.ref,
        setVersion: this.setVersion,
        audit: NONE,
        diagnostics: NONE,
      };
    }
    return this.allowWith(first, conditions);
  }

  private allowWith(first: AllowRule, conditions: readonly Condition[]): Decision {
    if (conditions.length === 0) return first.decision;
    return { decision: 'AllowWithConditions', conditions, ...first.ref, setVersion: this.setVersion, audit: NONE, diagnostics: NONE };
  }

  /** The `name = value` obligations of every allowing policy, in policy order, then the `X for T` ones. */
  private policyConditions(allowed: CompiledPolicy[], forObligations: readonly Condition[] | null): readonly Condition[] {
    if (allowed.length > 1) allowed.sort((a, b) => a.index - b.index);
    let conditions: Condition[] | null = null;
    for (const policy of allowed) {
      if (policy.staticConditions !== null) {
        if (policy.staticConditions.length > 0) (conditions ??= []).push(...policy.staticConditions);
        continue;
      }
      for (const rule of policy.requireRules) {
        if (rule.appliedEpoch === this.epoch && rule.obligations.length > 0) (conditions ??= []).push(...rule.obligations);
      }
    }
    if (forObligations !== null) (conditions ??= []).push(...forObligations);
    return conditions ?? NONE;
  }

  /**
   * Whether the policy's requirement expressions hold, checked once per evaluation: the
   * `require:` rules in order (a rule whose `if` is false does not apply; one whose `if`
   * fails does), and in each, the expressions in order until one is not true.
   */
  private requirements(policy: CompiledPolicy, context: Context): UnmetRequirement | null {
    if (policy.alwaysMet) return null;
    const epoch = this.epoch;
    if (policy.requirementsEpoch === epoch) return policy.requirementsResult;
    let result: UnmetRequirement | null = null;
    check: for (const rule of policy.requireRules) {
      if (rule.condition !== null) {
        const holds = rule.condition(context, this.slots);
        if (holds === false) continue;
        if (holds === FAILED) this.report(rule.ref);
      }
      rule.appliedEpoch = epoch;
      for (const requirement of rule.requirements) {
        const holds = requirement.check(context, this.slots);
        if (holds === true) continue;
        const failure = holds === FAILED ? this.report(rule.ref).detail : null;
        result = { rule, text: requirement.text, failure };
        break check;
      }
    }
    policy.requirementsEpoch = epoch;
    policy.requirementsResult = result;
    return result;
  }

  private audit(context: Context): void {
    for (const rule of this.candidates(this.audits, this.scratch.audits)) {
      if (rule.condition !== null) {
        const holds = rule.condition(context, this.slots);
        if (holds === false) continue;
        if (holds === FAILED) this.report(rule.ref);
      }
      (this.audited ??= []).push(rule.ref);
    }
  }

  private report(ref: RuleRef): PolicyEvalError {
    const error = new PolicyEvalError(this.sink.kind, this.sink.detail, ref);
    (this.diagnostics ??= []).push(error);
    return error;
  }

  private deny(reason: string, ref: RuleRef | null): DenyDecision {
    return {
      decision: 'Deny',
      reason,
      policy: ref?.policy ?? null,
      version: ref?.version ?? null,
      rule: ref?.rule ?? null,
      ruleText: ref?.ruleText ?? null,
      setVersion: this.setVersion,
      audit: NONE,
      diagnostics: NONE,
    };
  }

  private finish(decision: Decision): Decision {
    if (this.diagnostics === null && this.audited === null) return decision;
    return { ...decision, audit: this.audited ?? NONE, diagnostics: this.diagnostics ?? NONE };
  }
}
