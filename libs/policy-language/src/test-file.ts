import { InputError } from '@bulwark/errors';
import type { Decision, DecisionKind } from './decision.js';

/**
 * The `bulwark policy test` format (README "Test files"): a JSON file of named requests, each
 * with the decision it must get. Only the fields an expectation names are compared.
 */
export interface PolicyTestFile {
  readonly file: string;
  readonly description: string | null;
  readonly cases: readonly PolicyTestCase[];
}

export interface PolicyTestCase {
  readonly name: string;
  readonly request: unknown;
  readonly expect: Expectation;
}

export interface Expectation {
  readonly decision: DecisionKind;
  /** The deciding policy; `null` expects the default deny (no policy). */
  readonly policy?: string | null;
  readonly rule?: number | null;
  /** A substring of the deny reason. */
  readonly reason?: string;
  readonly approver?: string;
  /** The names of the decision's conditions, in order. */
  readonly conditions?: readonly string[];
  /** How many diagnostics (rules that could not be evaluated) the decision reports. */
  readonly diagnostics?: number;
}

const DECISIONS: ReadonlySet<string> = new Set(['Allow', 'Deny', 'AllowWithConditions', 'RequireApproval']);
const EXPECTATION_KEYS: ReadonlySet<string> = new Set(['decision', 'policy', 'rule', 'reason', 'approver', 'conditions', 'diagnostics']);

/** Reads a test file; a malformed one is an `InputError` naming the file and the case. */
export function parsePolicyTestFile(text: string, file: string): PolicyTestFile {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    throw bad(file, `not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(document) || !Array.isArray(document.cases)) throw bad(file, 'expected an object with a "cases" list');
  const description = typeof document.description === 'string' ? document.description : null;
  const cases = document.cases.map((entry: unknown, i: number): PolicyTestCase => {
    const where = `case ${i + 1}`;
    if (!isObject(entry)) throw bad(file, `${where}: expected an object`);
    if (typeof entry.name !== 'string' || entry.name.length === 0) throw bad(file, `${where}: "name" must be a non-empty string`);
    if (!Object.hasOwn(entry, 'request')) throw bad(file, `${where} (${entry.name}): "request" is missing`);
    return { name: entry.name, request: entry.request, expect: readExpectation(entry.expect, file, `${where} (${entry.name})`) };
  });
  return { file, description, cases };
}

function readExpectation(value: unknown, file: string, where: string): Expectation {
  if (!isObject(value)) throw bad(file, `${where}: "expect" must be an object`);
  for (const key of Object.keys(value)) {
    // A misspelt key would otherwise be ignored and the case pass without checking it.
    if (!EXPECTATION_KEYS.has(key)) throw bad(file, `${where}: unknown expectation "${key}" (known: ${[...EXPECTATION_KEYS].join(', ')})`);
  }
  const { decision, policy, rule, reason, approver, conditions, diagnostics } = value;
  if (typeof decision !== 'string' || !DECISIONS.has(decision)) throw bad(file, `${where}: "decision" must be one of ${[...DECISIONS].join(', ')}`);
  if (policy !== undefined && policy !== null && typeof policy !== 'string') throw bad(file, `${where}: "policy" must be a string or null`);
  if (rule !== undefined && rule !== null && !Number.isSafeInteger(rule)) throw bad(file, `${where}: "rule" must be an integer or null`);
  if (reason !== undefined && typeof reason !== 'string') throw bad(file, `${where}: "reason" must be a string`);
  if (approver !== undefined && typeof approver !== 'string') throw bad(file, `${where}: "approver" must be a string`);
  if (conditions !== undefined && !(Array.isArray(conditions) && conditions.every((c) => typeof c === 'string'))) {
    throw bad(file, `${where}: "conditions" must be a list of condition names`);
  }
  if (diagnostics !== undefined && !Number.isSafeInteger(diagnostics)) throw bad(file, `${where}: "diagnostics" must be an integer`);
  return value as unknown as Expectation;
}

/** What differs between a decision and its expectation; empty when the case passes. */
export function checkExpectation(decision: Decision, expect: Expectation): string[] {
  const problems: string[] = [];
  const differs = (field: string, expected: unknown, actual: unknown): void => {
    problems.push(`${field}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  };
  if (decision.decision !== expect.decision) differs('decision', expect.decision, decision.decision);
  if (expect.policy !== undefined && decision.policy !== expect.policy) differs('policy', expect.policy, decision.policy);
  if (expect.rule !== undefined && decision.rule !== expect.rule) differs('rule', expect.rule, decision.rule);
  if (expect.reason !== undefined) {
    const reason = decision.decision === 'Deny' ? decision.reason : null;
    if (reason === null || !reason.includes(expect.reason)) differs('reason (substring)', expect.reason, reason);
  }
  if (expect.approver !== undefined) {
    const approver = decision.decision === 'RequireApproval' ? decision.approver : null;
    if (approver !== expect.approver) differs('approver', expect.approver, approver);
  }
  if (expect.conditions !== undefined) {
    const names = decision.decision === 'AllowWithConditions' || decision.decision === 'RequireApproval' ? decision.conditions.map((c) => c.name) : [];
    if (names.join('\u0000') !== expect.conditions.join('\u0000') || names.length !== expect.conditions.length) differs('conditions', expect.conditions, names);
  }
  if (expect.diagnostics !== undefined && decision.diagnostics.length !== expect.diagnostics) {
    differs('diagnostics', expect.diagnostics, decision.diagnostics.length);
  }
  return problems;
}

function bad(file: string, why: string): InputError {
  return new InputError('E_POLICY_TEST', `policy test file ${file}: ${why}`, { file });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
