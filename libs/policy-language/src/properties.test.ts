import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicySources, type Decision } from './index.js';

// Small vocabularies, so that random targets and requests meet often.
const verb = fc.constantFrom('read', 'write', 'any');
const resource = fc.constantFrom('a', 'b', 'any');
const className = fc.constantFrom('c1', 'c2');
const pattern = fc.oneof(fc.constant('any'), fc.tuple(verb, resource).map(([v, r]) => `${v}(${r})`), className);
const target = fc.array(pattern, { minLength: 1, maxLength: 3 }).map((ps) => (ps.length === 1 ? (ps[0] as string) : `[${ps.join(', ')}]`));
const condition = fc.constantFrom(
  '',
  ' if f.x',
  ' if !f.x',
  ' if n > 2',
  ' if f.x && g.y',
  ' if f.x || n <= 1',
  ' if any(xs, |v| v > 1)',
  ' if all(xs, |v| v.ok)',
  ' if s == "a"',
  ' if lvl >= "secret"',
  ' if tags.contains("t")',
);
const requirement = fc.oneof(
  fc.constantFrom('f.x', 'g.y', 'n > 0', 'true'),
  fc.constantFrom('trail = "d"', 'k = 1'),
  fc.tuple(fc.constantFrom('ciso_approval', 'lead_approval', 'watermark'), target).map(([n, t]) => `${n} for ${t}`),
);
const targetRule = (kinds: readonly string[]) =>
  fc.tuple(fc.constantFrom(...kinds), target, condition).map(([kind, t, c]) => `${kind}: ${t}${c}`);
const requireRule = fc.tuple(fc.array(requirement, { minLength: 1, maxLength: 3 }), condition).map(([items, c]) => `require: [${items.join(', ')}]${c}`);
const rule = fc.oneof(targetRule(['allow', 'deny', 'audit']), requireRule);
const policySet = fc.array(fc.array(rule, { maxLength: 5 }), { maxLength: 5 });

const request = fc.record(
  {
    action: fc.constantFrom('read', 'write', 'delete'),
    resource: fc.constantFrom('a', 'b', 'z'),
    classes: fc.subarray(['c1', 'c2', 'c1']),
    context: fc.record(
      {
        f: fc.oneof(fc.record({ x: fc.boolean() }), fc.record({ x: fc.constant('yes') }), fc.constant({})),
        g: fc.record({ y: fc.boolean() }),
        n: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant('3')),
        xs: fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.record({ ok: fc.boolean() })), { maxLength: 3 }),
        s: fc.constantFrom('a', 'b'),
        lvl: fc.constantFrom('public', 'secret', 'top_secret', 'bogus'),
        tags: fc.array(fc.constantFrom('t', 'u'), { maxLength: 2 }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['action', 'resource'] },
);

function compile(policies: readonly (readonly string[])[]) {
  const text = policies.map((rules, i) => `policy p${i} {\n${rules.join('\n')}\n}`).join('\n');
  return compilePolicySources([{ text, file: 'property.policy' }]);
}

function isDenyRule(decision: Decision): boolean {
  return decision.decision === 'Deny' && decision.ruleText !== null && decision.ruleText.startsWith('deny ');
}

/** Inserts `item` at position `at` (modulo length + 1) without changing `items`. */
function insertAt<T>(items: readonly T[], at: number, item: T): T[] {
  const i = at % (items.length + 1);
  return [...items.slice(0, i), item, ...items.slice(i)];
}

describe('policy language properties', () => {
  it('the indexed evaluator decides exactly as a scan of every rule', () => {
    fc.assert(
      fc.property(policySet, fc.array(request, { minLength: 1, maxLength: 5 }), (policies, requests) => {
        const set = compile(policies);
        for (const r of requests) expect(set.evaluate(r)).toEqual(set.evaluateByScan(r));
      }),
      { numRuns: 500 },
    );
  });

  it('a matching deny wins over every allow, in any order of policies and rules', () => {
    fc.assert(
      fc.property(policySet, request, fc.nat(), fc.nat(), fc.nat(), (policies, r, where, at, allowAt) => {
        // An unconditional deny and an unconditional allow that both match the request.
        const matching = `${r.action}(${r.resource})`;
        const withDeny = policies.length === 0 ? [[`deny: ${matching}`]] : [...policies];
        const p = where % withDeny.length;
        withDeny[p] = insertAt(withDeny[p] as string[], at, `deny: ${matching}`);
        const q = allowAt % withDeny.length;
        withDeny[q] = insertAt(withDeny[q] as string[], allowAt, 'allow: any');
        const forwards = compile(withDeny).evaluate(r);
        const backwards = compile([...withDeny].reverse().map((rules) => [...rules].reverse())).evaluate(r);
        expect(isDenyRule(forwards)).toBe(true);
        expect(isDenyRule(backwards)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('adding an allow never turns a deny by a deny rule into anything else', () => {
    fc.assert(
      fc.property(policySet, request, targetRule(['allow']), fc.nat(), fc.nat(), (policies, r, allow, where, at) => {
        const before = compile(policies).evaluate(r);
        fc.pre(isDenyRule(before));
        const grown = [...policies, []];
        const p = where % grown.length;
        grown[p] = insertAt(grown[p] as string[], at, allow);
        expect(isDenyRule(compile(grown).evaluate(r))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a policy set with no rules denies everything', () => {
    fc.assert(
      fc.property(fc.nat({ max: 4 }), fc.oneof(request, fc.anything()), (empty, r) => {
        const set = compile(Array.from({ length: empty }, () => []));
        expect(set.evaluate(r).decision).toBe('Deny');
      }),
      { numRuns: 500 },
    );
  });
});
