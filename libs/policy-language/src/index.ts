export type {
  BinaryOperator,
  ExprAst,
  JsonValue,
  PatternAst,
  PolicyAst,
  PolicyFile,
  RequirementAst,
  RuleAst,
  Span,
} from './ast.js';
export { parsePolicies, MAX_EXPRESSION_DEPTH, MAX_POLICY_TEXT_LENGTH, type ParseOptions } from './parser.js';
export { printPolicy, printRule, printRuleHead, printExpression, printTarget } from './printer.js';
export { PolicyParseError, PolicyEvalError, type EvalErrorKind, type SourcePosition } from './errors.js';
export { DEFAULT_LEVELS } from './levels.js';
export {
  PolicySet,
  compilePolicySet,
  compilePolicySources,
  type PolicyEntry,
  type PolicySetOptions,
  type PolicySource,
  type PolicySummary,
} from './policy-set.js';
export {
  permits,
  decisionToJson,
  type AllowDecision,
  type AllowWithConditionsDecision,
  type Condition,
  type Decision,
  type DecisionKind,
  type DenyDecision,
  type RequireApprovalDecision,
  type RuleRef,
} from './decision.js';
export { DecisionCache, type DecisionCacheOptions } from './cache.js';
export { cacheKey, MAX_KEY_DEPTH } from './cache-key.js';
export { keyText, sameKey, type RequestKey } from './request-key.js';
export { parsePolicyTestFile, checkExpectation, type PolicyTestFile, type PolicyTestCase, type Expectation } from './test-file.js';
export { createPolicyFuzzer, type PolicyFuzzer } from './fuzz.js';
export { runPolicyFuzz, type FuzzReport } from './fuzz-runner.js';
export { requestProblem, type PolicyRequest } from './request.js';
