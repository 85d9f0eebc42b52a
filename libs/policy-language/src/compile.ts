import type { PolicyAst, RuleAst } from './ast.js';
import { compileCondition, ErrorSink, type Closure, type ExpressionCompiler } from './compile-expression.js';
import type { AllowRule, AuditRule, CompiledPolicy, DenyRule, ForRule, RequireRule } from './compiled.js';
import type { AllowDecision, AllowWithConditionsDecision, Condition, DenyDecision, RuleRef } from './decision.js';
import { PolicyParseError } from './errors.js';
import { printExpression, printRuleHead } from './printer.js';
import { collectReads, type ReadPath } from './reads.js';

const NONE: readonly never[] = Object.freeze([]);
const APPROVAL_SUFFIX = '_approval';

export interface CompiledRules {
  readonly policies: readonly CompiledPolicy[];
  readonly denies: readonly DenyRule[];
  readonly allows: readonly AllowRule[];
  readonly audits: readonly AuditRule[];
  readonly fors: readonly ForRule[];
  readonly sink: ErrorSink;
  readonly slotCount: number;
}

export interface CompileInput {
  readonly ast: PolicyAst;
  readonly version: number;
}

/**
 * Turns syntax trees into rules with closures, numbered in evaluation order (policy order,
 * then rule order; the items of a `require:` list in list order). Decisions that do not
 * depend on the request are built here once, frozen, and returned as they are.
 */
export function compileRules(inputs: readonly CompileInput[], levels: readonly string[], setVersion: string): CompiledRules {
  const sink = new ErrorSink();
  const rank = new Map(levels.map((level, i) => [level, i] as const));
  const levelOrder = levels.join(' < ');
  const denies: DenyRule[] = [];
  const allows: AllowRule[] = [];
  const audits: AuditRule[] = [];
  const fors: ForRule[] = [];
  const policies: CompiledPolicy[] = [];
  let ordinal = 0;
  let slotCount = 0;

  for (const [index, { ast, version }] of inputs.entries()) {
    const compiler: ExpressionCompiler = { file: ast.file, levels: rank, levelOrder, sink, slotCount: 0 };
    const requireRules: RequireRule[] = [];
    const policy: CompiledPolicy = {
      index,
      name: ast.name,
      version,
      requireRules,
      alwaysMet: true,
      staticConditions: null,
      requirementsEpoch: 0,
      requirementsResult: null,
      allowedEpoch: 0,
    };
    const policyAllows: AllowRule[] = [];
    // What checking this policy's requirements can read; every allow of the policy reads it too.
    const requirementReads: ReadPath[] = [];
    for (const [i, rule] of ast.rules.entries()) {
      const ref: RuleRef = Object.freeze({ policy: ast.name, version, rule: i + 1, ruleText: printRuleHead(rule) });
      const condition = rule.condition ? compileCondition(rule.condition, compiler) : null;
      const reads: ReadPath[] = [];
      if (rule.condition) collectReads(rule.condition, reads);
      switch (rule.kind) {
        case 'deny':
          denies.push({ ordinal: ordinal++, policy, ref, patterns: rule.target, condition, reads, decision: denyDecision(ref, setVersion) });
          break;
        case 'allow': {
          const allow = { ordinal: ordinal++, policy, ref, patterns: rule.target, condition, reads, decision: allowDecision(ref, setVersion), conditionalDecision: null };
          allows.push(allow);
          policyAllows.push(allow);
          break;
        }
        case 'audit':
          audits.push({ ordinal: ordinal++, policy, ref, patterns: rule.target, condition, reads });
          break;
        case 'require': {
          const compiled = compileRequire(rule, ref, condition, compiler);
          if (compiled.requirements.length > 0 || compiled.obligations.length > 0) requireRules.push(compiled);
          for (const path of reads) requirementReads.push(path);
          for (const item of rule.requirements) if (item.kind === 'expression') collectReads(item.expression, requirementReads);
          for (const item of rule.requirements) {
            if (item.kind !== 'for') continue;
            fors.push({
              ordinal: ordinal++,
              policy,
              ref,
              patterns: item.target,
              condition,
              reads,
              approver: approverOf(item.name, ast.file, item.span),
              obligation: Object.freeze({ name: item.name, value: true, policy: ast.name, version, rule: i + 1 }),
            });
          }
          break;
        }
        default: {
          const never: never = rule;
          return never;
        }
      }
    }
    const alwaysMet = requireRules.every((r) => r.condition === null && r.requirements.length === 0);
    const unconditional = requireRules.every((r) => r.condition === null);
    const staticConditions = unconditional ? Object.freeze(requireRules.flatMap((r) => r.obligations)) : null;
    Object.assign(policy, { alwaysMet, staticConditions });
    if (staticConditions && staticConditions.length > 0) {
      for (const allow of policyAllows) Object.assign(allow, { conditionalDecision: conditionalDecision(allow.ref, staticConditions, setVersion) });
    }
    for (const allow of policyAllows) Object.freeze(Object.assign(allow, { reads: [...allow.reads, ...requirementReads] }));
    policies.push(policy);
    slotCount = Math.max(slotCount, compiler.slotCount);
  }
  return { policies, denies, allows, audits, fors, sink, slotCount };
}

function compileRequire(rule: RuleAst & { kind: 'require' }, ref: RuleRef, condition: Closure | null, compiler: ExpressionCompiler): RequireRule {
  const requirements: { text: string; check: Closure }[] = [];
  const obligations: Condition[] = [];
  for (const item of rule.requirements) {
    if (item.kind === 'expression') {
      requirements.push({ text: printExpression(item.expression), check: compileCondition(item.expression, compiler) });
    } else if (item.kind === 'obligation') {
      obligations.push(Object.freeze({ name: item.name, value: item.value, policy: ref.policy, version: ref.version, rule: ref.rule }));
    }
  }
  return { ref, condition, requirements, obligations: Object.freeze(obligations), appliedEpoch: 0 };
}

/** `supervisor_approval` names the approver `supervisor`; any other name is an obligation. */
function approverOf(name: string, file: string, at: { line: number; column: number }): string | null {
  if (!name.endsWith(APPROVAL_SUFFIX)) return null;
  const approver = name.slice(0, -APPROVAL_SUFFIX.length);
  if (approver.length === 0) throw new PolicyParseError({ file, ...at }, 'an approver name before _approval (NAME_approval)', `identifier '${name}'`);
  return approver;
}

function denyDecision(ref: RuleRef, setVersion: string): DenyDecision {
  return Object.freeze({
    decision: 'Deny',
    reason: `denied by policy ${ref.policy} rule ${ref.rule} (${ref.ruleText})`,
    ...ref,
    setVersion,
    audit: NONE,
    diagnostics: NONE,
  });
}

function allowDecision(ref: RuleRef, setVersion: string): AllowDecision {
  return Object.freeze({ decision: 'Allow', ...ref, setVersion, audit: NONE, diagnostics: NONE });
}

function conditionalDecision(ref: RuleRef, conditions: readonly Condition[], setVersion: string): AllowWithConditionsDecision {
  return Object.freeze({ decision: 'AllowWithConditions', conditions, ...ref, setVersion, audit: NONE, diagnostics: NONE });
}
