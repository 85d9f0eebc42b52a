import { describe, expect, it } from 'vitest';
import { compilePolicySources, DecisionCache, PolicyParseError, type Decision, type PolicySetOptions } from './index.js';

function policies(text: string, options: PolicySetOptions = {}) {
  return compilePolicySources([{ text, file: 't.policy' }], options);
}

function decide(text: string, request: Record<string, unknown>, options: PolicySetOptions = {}): Decision {
  const set = policies(text, options);
  const decision = set.evaluate({ classes: [], context: {}, ...request });
  expect(set.evaluateByScan({ classes: [], context: {}, ...request })).toEqual(decision);
  return decision;
}

const read = { action: 'read', resource: 'file' };

describe('evaluate', () => {
  it('denies by default', () => {
    expect(decide('', read)).toMatchObject({ decision: 'Deny', reason: 'no rule allows read(file)', policy: null, rule: null });
    expect(decide('policy p { allow: write(file) }', read).decision).toBe('Deny');
  });

  it('lets a matching deny win over an allow, whichever comes first', () => {
    const deny = decide('policy a { allow: read(file) } policy b { deny: read(any) }', read);
    expect(deny).toMatchObject({ decision: 'Deny', policy: 'b', rule: 1, reason: 'denied by policy b rule 1 (deny read(any))' });
    expect(decide('policy b { deny: any } policy a { allow: read(file) }', read).decision).toBe('Deny');
  });

  it('matches targets by verb, resource, class, list and any', () => {
    expect(decide('policy p { allow: any(file) }', read).decision).toBe('Allow');
    expect(decide('policy p { allow: read(any) }', read).decision).toBe('Allow');
    expect(decide('policy p { allow: [write(x), bulk] }', { ...read, classes: ['bulk'] }).decision).toBe('Allow');
    expect(decide('policy p { allow: read }', read).decision).toBe('Deny');
  });

  it('fails secure: a failing allow does not match, a failing deny does', () => {
    const allow = decide('policy p { allow: read(file) if user.admin }', read);
    expect(allow).toMatchObject({ decision: 'Deny', reason: 'no rule allows read(file); 1 allow rule(s) could not be evaluated (see diagnostics)' });
    expect(allow.diagnostics[0]).toMatchObject({ code: 'E_POLICY_EVAL', kind: 'missing_attribute', policy: 'p', rule: 1 });
    const deny = decide('policy p { allow: read(file) deny: read(file) if user.banned }', read);
    expect(deny).toMatchObject({ decision: 'Deny', policy: 'p', rule: 2 });
    expect(deny.diagnostics).toHaveLength(1);
  });

  it('treats a type mismatch as an error, not as unequal', () => {
    const text = 'policy p { allow: read(file) if user.id != "root" }';
    expect(decide(text, { ...read, context: { user: { id: 'alice' } } }).decision).toBe('Allow');
    expect(decide(text, { ...read, context: { user: { id: 0 } } })).toMatchObject({ decision: 'Deny', diagnostics: [{ kind: 'type_mismatch' }] });
    const contains = 'policy p { allow: read(file) if !blocked.contains(user.id) }';
    expect(decide(contains, { ...read, context: { blocked: [123], user: { id: '123' } } }).decision).toBe('Deny');
    expect(decide(contains, { ...read, context: { blocked: ['123'], user: { id: '124' } } }).decision).toBe('Allow');
  });

  it('orders strings only as classification levels, and the levels are configurable', () => {
    const text = 'policy p { allow: read(file) if user.clearance >= data.level }';
    const at = (clearance: string, level: string, options?: PolicySetOptions) =>
      decide(text, { ...read, context: { user: { clearance }, data: { level } } }, options).decision;
    expect(at('secret', 'confidential')).toBe('Allow');
    expect(at('confidential', 'internal')).toBe('Allow');
    expect(at('internal', 'confidential')).toBe('Deny');
    expect(at('Secret', 'public')).toBe('Deny');
    expect(at('green', 'amber', { levels: ['green', 'amber', 'red'] })).toBe('Deny');
    expect(at('red', 'amber', { levels: ['green', 'amber', 'red'] })).toBe('Allow');
    expect(() => policies('policy p { allow: read(file) if user.clearance >= "secrett" }')).toThrow(PolicyParseError);
  });

  it('evaluates any and all over lists, empty included', () => {
    const text = 'policy p { allow: read(file) if any(xs, |x| x > 2) && all(ys, |y| y.ok) }';
    const at = (xs: unknown, ys: unknown) => decide(text, { ...read, context: { xs, ys } }).decision;
    expect(at([1, 3], [{ ok: true }])).toBe('Allow');
    expect(at([1, 2], [{ ok: true }])).toBe('Deny');
    expect(at([3], [])).toBe('Allow');
    expect(at([], [])).toBe('Deny');
    expect(at([3], [{ ok: 'yes' }])).toBe('Deny');
  });

  it('never reaches the prototype through attribute names', () => {
    const text = 'policy p { allow: read(file) if user.constructor == user.constructor && user.__proto__ == user.__proto__ }';
    expect(decide(text, { ...read, context: { user: {} } })).toMatchObject({ decision: 'Deny', diagnostics: [{ kind: 'missing_attribute' }] });
  });

  it("gates a policy's allows by its requirements and names the unmet one", () => {
    const text = 'policy p { allow: read(file) require: [session.mfa, user.trained] } policy q { allow: write(file) }';
    expect(decide(text, { ...read, context: { session: { mfa: true }, user: { trained: true } } }).decision).toBe('Allow');
    const unmet = decide(text, { ...read, context: { session: { mfa: true }, user: { trained: false } } });
    expect(unmet).toMatchObject({ decision: 'Deny', policy: 'p', rule: 2, reason: 'requirement user.trained (policy p rule 2) not met: it is false' });
    // q's allow is not gated by p's requirements.
    expect(decide(text, { action: 'write', resource: 'file' }).decision).toBe('Allow');
  });

  it('lets an allow of another policy stand when one policy has an unmet requirement', () => {
    const text = 'policy p { allow: read(file) require: false } policy q { allow: read(any) }';
    expect(decide(text, read)).toMatchObject({ decision: 'Allow', policy: 'q', rule: 1 });
  });

  it('applies a require rule only when its if holds (or fails)', () => {
    const text = 'policy p { allow: read(file) require: session.mfa if user.remote }';
    expect(decide(text, { ...read, context: { user: { remote: false } } }).decision).toBe('Allow');
    expect(decide(text, { ...read, context: { user: { remote: true }, session: { mfa: false } } }).decision).toBe('Deny');
    expect(decide(text, { ...read, context: { session: { mfa: true } } })).toMatchObject({ decision: 'Allow', diagnostics: [{ kind: 'missing_attribute' }] });
  });

  it("attaches a policy's obligations to its own allows, and X for T to any allowed request in T", () => {
    const text = `
      policy p { allow: read(file) require: [trail = "detailed", retention = [30, "days"]] }
      policy q { allow: write(file) require: watermark for [read(any), export(any)] }`;
    expect(decide(text, read)).toMatchObject({
      decision: 'AllowWithConditions',
      policy: 'p',
      rule: 1,
      conditions: [
        { name: 'trail', value: 'detailed', policy: 'p', rule: 2 },
        { name: 'retention', value: [30, 'days'] },
        { name: 'watermark', value: true, policy: 'q', rule: 2 },
      ],
    });
    expect(decide(text, { action: 'write', resource: 'file' })).toMatchObject({ decision: 'Allow', policy: 'q' });
  });

  it('asks for approval only for a request something allows, and a deny still wins', () => {
    const text = 'policy p { allow: run(job) require: [ciso_approval for bulk, lead_approval for any] }';
    expect(decide(text, { action: 'run', resource: 'job', classes: ['bulk'] })).toMatchObject({
      decision: 'RequireApproval',
      approver: 'ciso',
      approvers: ['ciso', 'lead'],
      rule: 2,
    });
    expect(decide(text, { action: 'stop', resource: 'job', classes: ['bulk'] }).decision).toBe('Deny');
    expect(decide(`${text} policy d { deny: bulk }`, { action: 'run', resource: 'job', classes: ['bulk'] }).decision).toBe('Deny');
  });

  it('lists the audit rules that match on any decision', () => {
    const text = 'policy p { allow: read(file) audit: any audit: read(file) if user.vip deny: write(any) }';
    expect(decide(text, { ...read, context: { user: { vip: false } } }).audit).toEqual([{ policy: 'p', version: 1, rule: 2, ruleText: 'audit any' }]);
    expect(decide(text, { action: 'write', resource: 'x' })).toMatchObject({ decision: 'Deny', audit: [{ rule: 2 }] });
    // An audit condition that fails counts as matching: auditing too much is the safe side.
    expect(decide(text, read)).toMatchObject({ decision: 'Allow', audit: [{ rule: 2 }, { rule: 3 }], diagnostics: [{ rule: 3 }] });
  });

  it('denies a malformed request and never throws', () => {
    const set = policies('policy p { allow: any if user.ok }');
    for (const bad of [null, 42, 'read', [], { action: 'read' }, { action: 1, resource: 'x' }, { action: 'a', resource: 'b', context: [] }]) {
      expect(set.evaluate(bad)).toMatchObject({ decision: 'Deny', policy: null });
    }
    const hostile = { get ok(): boolean {
      throw new Error('boom');
    } };
    expect(set.evaluate({ action: 'a', resource: 'b', context: { user: hostile } })).toMatchObject({
      decision: 'Deny',
      reason: 'internal evaluation error: boom',
    });
  });

  it('refuses an evaluation re-entered from inside the request', () => {
    const set = policies('policy p { allow: any if user.ok }');
    const sneaky = {
      get ok(): boolean {
        return set.evaluate({ action: 'x', resource: 'y', context: { user: { ok: true } } }).decision === 'Allow';
      },
    };
    // The inner call is denied, so the outer condition is false: nothing allows.
    expect(set.evaluate({ action: 'a', resource: 'b', context: { user: sneaky } }).decision).toBe('Deny');
    expect(set.evaluate({ action: 'a', resource: 'b', context: { user: { ok: true } } }).decision).toBe('Allow');
  });

  it('compares lists of literals and list expressions', () => {
    const text = 'policy p { allow: read(file) if [1, 2].contains(n) && [n, m] == [1, 2] }';
    expect(decide(text, { ...read, context: { n: 1, m: 2 } }).decision).toBe('Allow');
    expect(decide(text, { ...read, context: { n: 2, m: 2 } }).decision).toBe('Deny');
  });

  it('evaluates a batch in order and denies an unreadable request', () => {
    const set = policies('policy p { allow: read(file) }');
    expect(set.evaluateBatch([read, { action: 'write', resource: 'file' }, 'junk']).map((d) => d.decision)).toEqual(['Allow', 'Deny', 'Deny']);
    expect(set.denyInvalid('not decryptable')).toMatchObject({ decision: 'Deny', reason: 'invalid request: not decryptable', policy: null });
  });

  it('refuses policy versions that are not positive integers and levels that repeat', () => {
    const ast = policies('policy p { allow: any }');
    expect(ast.policies[0]?.version).toBe(1);
    expect(() => compilePolicySources([{ text: 'policy p { allow: any }', version: 0 }])).toThrow(PolicyParseError);
    expect(() => policies('policy p { allow: any }', { levels: ['a', 'b', 'a'] })).toThrow(/appears twice/);
  });

  it('names the set version and policy versions in decisions', () => {
    const set = compilePolicySources([{ text: 'policy p { allow: any }', version: 7 }], { version: 'ledger-42' });
    expect(set.evaluate(read)).toMatchObject({ decision: 'Allow', policy: 'p', version: 7, setVersion: 'ledger-42' });
    expect(Object.isFrozen(set)).toBe(true);
  });
});

describe('DecisionCache', () => {
  it('returns the cached decision for the same canonical request and never across sets', () => {
    const cache = new DecisionCache({ max: 10 });
    const v1 = policies('policy p { allow: read(file) if user.ok }', { version: 'v1' });
    const v2 = policies('policy p { deny: read(file) }', { version: 'v2' });
    const first = cache.evaluate(v1, { action: 'read', resource: 'file', context: { user: { ok: true } } });
    const again = cache.evaluate(v1, { context: { user: { ok: true } }, resource: 'file', action: 'read' });
    expect(again).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(cache.evaluate(v2, { action: 'read', resource: 'file', context: { user: { ok: true } } }).decision).toBe('Deny');
    expect(cache.stats).toEqual({ hits: 1, misses: 2, size: 2 });
  });

  it('keys JSON text as it arrives, and denies text that is not JSON', () => {
    const cache = new DecisionCache({ max: 2 });
    const set = policies('policy p { allow: read(file) }');
    const first = cache.evaluateJson(set, '{"action":"read","resource":"file"}');
    expect(first.decision).toBe('Allow');
    expect(cache.evaluateJson(set, '{"action":"read","resource":"file"}')).toBe(first);
    // Another spelling of the same request reaches the entry of its projection.
    expect(cache.evaluateJson(set, '{ "resource": "file", "action": "read" }')).toBe(first);
    expect(cache.stats.hits).toBe(2);
    expect(cache.evaluateJson(set, '{"action": ')).toMatchObject({ decision: 'Deny', reason: expect.stringMatching(/^invalid request: not JSON/) });
    // At most `max` texts and `max` projections.
    expect(cache.stats.size).toBeLessThanOrEqual(4);
  });

  it('decides uncached a request whose read parts cannot be canonicalized, and ignores the parts no rule reads', () => {
    const cache = new DecisionCache();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const set = policies('policy p { allow: a(b) if self == self }');
    expect(cache.evaluate(set, { action: 'a', resource: 'b', context: cyclic }).decision).toBe('Allow');
    expect(cache.stats.size).toBe(0);
    expect(cache.evaluate(set, { action: 'a', resource: 'b', context: { self: true, unread: cyclic } }).decision).toBe('Allow');
    expect(cache.stats.size).toBe(1);
  });
});
