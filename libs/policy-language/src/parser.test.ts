import { describe, expect, it } from 'vitest';
import { MAX_EXPRESSION_DEPTH, parsePolicies, PolicyParseError, printPolicy } from './index.js';

function parseError(text: string): PolicyParseError {
  try {
    parsePolicies(text, { file: 'p.policy' });
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyParseError);
    return err as PolicyParseError;
  }
  throw new Error('expected a parse error');
}

describe('parsePolicies', () => {
  it('parses every rule form of the grammar', () => {
    const text = `
      policy p {
        allow: [read(a), any(b), write(any), batch, any] if !(x.y == "z") || [1, -2.5e1].contains(3) && w.v
        deny: any(any) if all(xs, |x| any(x.ys, |y| y >= "secret" && x.n < 3))
        audit: delete(policy)
        require: [ok, level = "high", limits = [1, "a", true], ciso_approval for [export(any), bulk], note for any]
        require: mfa if user.role != "admin"
      }`;
    const [policy] = parsePolicies(text).policies;
    expect(policy?.rules.map((r) => r.kind)).toEqual(['allow', 'deny', 'audit', 'require', 'require']);
    const reparsed = parsePolicies(printPolicy(policy!)).policies[0];
    expect(stripSpans(reparsed)).toEqual(stripSpans(policy));
  });

  it('reports line, column, what was expected and what was found', () => {
    const error = parseError('policy p {\n  allow: read(x) if user.level >= \n}');
    expect(error.code).toBe('E_POLICY_PARSE');
    expect([error.line, error.column, error.expected, error.found]).toEqual([3, 1, 'an expression', "'}'"]);
    expect(error.message).toBe("p.policy:3:1: expected an expression, found '}'");
  });

  it.each([
    ['policy {', "1:8: expected a policy name, found '{'"],
    ['policy p { allow read(x) }', "1:18: expected ':', found identifier 'read'"],
    ['policy p { permit: read(x) }', "1:12: expected a rule (allow:, deny:, require: or audit:) or '}', found identifier 'permit'"],
    ['policy p { allow: }', "1:19: expected a target (verb(resource), an action class or any), found '}'"],
    ['policy p { allow: [] }', "1:20: expected a target (verb(resource), an action class or any), found ']'"],
    ['policy p { allow: read(x) if a < b < c }', "1:36: expected '&&' or '||' (comparisons do not chain), found '<'"],
    ['policy p { allow: read(x) if a.size(1) }', "1:32: expected 'contains' (the only method), found identifier 'size'"],
    ['policy p { allow: read(x) if "open }', '1:30: expected \'"\' to close the string, found end of input'],
    ['policy p { allow: read(x) if a @ b }', "1:32: expected a token, found character '@'"],
    ['policy p { require: approval for x }', "1:21: expected an approver name before _approval (NAME_approval), found identifier 'approval'"],
    ['policy p { require: n = user.x }', "1:25: expected a literal (string, number, true, false or a list), found identifier 'user'"],
    ['policy p { allow: read(x) if any(xs, x) }', "1:38: expected '|', found identifier 'x'"],
    ['policy p {} policy p {}', "1:20: expected a policy name not used before (first at 1:8), found policy 'p'"],
    ['policy p { /* open', "1:12: expected '*/' to close the comment, found end of input"],
    ['policy p { allow: read(x) if n > 1e999 }', '1:34: expected a finite number, found number 1e999'],
    ['policy p { allow: read(x) if allow }', "1:30: expected an expression, found 'allow'"],
  ])('rejects %j', (text, message) => {
    expect(parseError(text).message).toBe(`p.policy:${message}`);
  });

  it('bounds nesting instead of overflowing the stack', () => {
    const deep = `policy p { allow: a if ${'('.repeat(10_000)}x${')'.repeat(10_000)} }`;
    expect(parseError(deep).expected).toBe(`at most ${MAX_EXPRESSION_DEPTH} nested expressions`);
    const chain = `policy p { allow: a if ${Array.from({ length: 5_000 }, (_, i) => `x${i}`).join(' && ')} }`;
    expect(parseError(chain).expected).toBe(`at most ${MAX_EXPRESSION_DEPTH} nested expressions`);
  });

  it('accepts comments, trailing commas and keywords as verbs, resources and attributes', () => {
    const text = 'policy p { // comment\n /* block */ deny: [audit(policy), delete(any),] if x.if == true\n require: [a, b,] }';
    expect(parsePolicies(text).policies[0]?.rules).toHaveLength(2);
  });
});

function stripSpans(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripSpans);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'span').map(([k, v]) => [k, stripSpans(v)]));
  }
  return value;
}
