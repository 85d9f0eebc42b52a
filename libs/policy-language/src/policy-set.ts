import { createHash } from 'node:crypto';
import type { PolicyAst } from './ast.js';
import { compileRules } from './compile.js';
import type { Decision, DenyDecision } from './decision.js';
import { PolicyParseError } from './errors.js';
import { Evaluator } from './evaluator.js';
import { checkLevels, DEFAULT_LEVELS } from './levels.js';
import { parsePolicies } from './parser.js';
import { printPolicy } from './printer.js';
import { RequestKeys, type RequestKey } from './request-key.js';

export interface PolicySetOptions {
  /** A label for this set (e.g. the ledger sequence of its last change); by default a digest prefix. */
  readonly version?: string;
  /** Classification levels, lowest first (default `public < internal < confidential < secret < top_secret`). */
  readonly levels?: readonly string[];
}

/** A parsed policy and its version (the service counts versions per policy: register = 1, each update + 1). */
export interface PolicyEntry {
  readonly ast: PolicyAst;
  readonly version?: number;
}

/** Policy text and where it comes from. */
export interface PolicySource {
  readonly text: string;
  readonly file?: string;
  /** The version of every policy in this text (default 1). */
  readonly version?: number;
}

export interface PolicySummary {
  readonly name: string;
  readonly version: number;
  readonly file: string;
  readonly rules: number;
}

/**
 * A compiled, immutable set of policies. A service swaps sets atomically by assigning one
 * reference (`current = next`); an evaluation in progress finishes on the set it started
 * with. Decisions name `version`, and `DecisionCache` keeps entries per set, so a swap
 * never serves a decision of the previous set.
 */
export class PolicySet {
  readonly version: string;
  /** SHA-256 of the levels and every policy's name, version and normal form. */
  readonly digest: string;
  readonly levels: readonly string[];
  readonly policies: readonly PolicySummary[];
  /**
   * True when a policy may read `caller` (the authenticated principal, which the policy service
   * binds as `context.caller = { id }` over anything the request says). An over-approximation
   * (the word anywhere in a policy's normal form): binding it needlessly only costs a parse.
   */
  readonly readsCaller: boolean;
  readonly #evaluator: Evaluator;
  readonly #keys: RequestKeys;

  /** Use `compilePolicySet` or `compilePolicySources`. */
  constructor(entries: readonly PolicyEntry[], options: PolicySetOptions = {}) {
    const levels = checkLevels(options.levels ?? DEFAULT_LEVELS);
    const inputs = entries.map((entry) => ({ ast: entry.ast, version: entry.version ?? 1 }));
    checkUniqueNames(inputs.map((input) => input.ast));
    for (const input of inputs) {
      if (!Number.isSafeInteger(input.version) || input.version < 1) {
        throw new PolicyParseError({ file: input.ast.file, ...input.ast.span }, 'a policy version that is a positive integer', String(input.version));
      }
    }
    const hash = createHash('sha256');
    hash.update(JSON.stringify(levels));
    for (const input of inputs) hash.update(JSON.stringify([input.ast.name, input.version, printPolicy(input.ast)]));
    this.digest = hash.digest('hex');
    this.readsCaller = inputs.some((input) => /\bcaller\b/.test(printPolicy(input.ast)));
    this.version = options.version ?? this.digest.slice(0, 16);
    this.levels = levels;
    this.policies = Object.freeze(
      inputs.map((input) => Object.freeze({ name: input.ast.name, version: input.version, file: input.ast.file, rules: input.ast.rules.length })),
    );
    const rules = compileRules(inputs, levels, this.version);
    const evaluator = new Evaluator(rules, this.version);
    this.#evaluator = evaluator;
    const patterns = [rules.denies, rules.allows, rules.audits, rules.fors].flatMap((kind) => kind.flatMap((rule) => rule.patterns));
    this.#keys = new RequestKeys(patterns, (target) => evaluator.readsFor(target), () => evaluator.evaluating);
    Object.freeze(this);
  }

  /** Decides one request (README "Semantics"). Never throws: a bad request or a failing rule denies. */
  evaluate(request: unknown): Decision {
    return this.#evaluator.evaluate(request, false);
  }

  /** The same decision by scanning every rule instead of the index: the reference, for tests and audits. */
  evaluateByScan(request: unknown): Decision {
    return this.#evaluator.evaluate(request, true);
  }

  /**
   * The decision cache's key for `request` (README "Cache"): the request projected on what
   * this set can read for its target, which gets the same decision. Undefined when the
   * request has no key (wrong shape, read parts that are not plain JSON): decide it uncached.
   */
  cacheKeyOf(request: unknown): RequestKey | undefined {
    return this.#keys.key(request);
  }

  /** The Deny for a request that could not be read at all (not JSON, not decryptable): `invalid request: <why>`. */
  denyInvalid(why: string): DenyDecision {
    return this.#evaluator.denyInvalid(why);
  }

  evaluateBatch(requests: readonly unknown[]): Decision[] {
    return requests.map((request) => this.#evaluator.evaluate(request, false));
  }
}

export function compilePolicySet(entries: readonly PolicyEntry[], options: PolicySetOptions = {}): PolicySet {
  return new PolicySet(entries, options);
}

/** Parses and compiles texts into one set; throws the first `PolicyParseError`. */
export function compilePolicySources(sources: readonly PolicySource[], options: PolicySetOptions = {}): PolicySet {
  const entries: PolicyEntry[] = [];
  for (const source of sources) {
    const parsed = parsePolicies(source.text, source.file === undefined ? {} : { file: source.file });
    for (const ast of parsed.policies) entries.push({ ast, version: source.version ?? 1 });
  }
  return new PolicySet(entries, options);
}

function checkUniqueNames(policies: readonly PolicyAst[]): void {
  const seen = new Map<string, PolicyAst>();
  for (const policy of policies) {
    const first = seen.get(policy.name);
    if (first) {
      throw new PolicyParseError(
        { file: policy.file, ...policy.span },
        `a policy name not used before (first in ${first.file}:${first.span.line}:${first.span.column})`,
        `policy '${policy.name}'`,
      );
    }
    seen.set(policy.name, policy);
  }
}
