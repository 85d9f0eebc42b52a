import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKey } from './cache-key.js';
import { compilePolicySources, DecisionCache, type PolicySet } from './index.js';
import { KeyLru } from './key-lru.js';
import { keyText, sameKey, type RequestKey } from './request-key.js';

// Conditions over a small vocabulary of paths, with the language's traps: nested access, a
// parameter that shadows a context name, quantifiers and `contains` reading lists whole,
// attributes named like Object.prototype members, comparisons across types.
const condition = fc.constantFrom(
  '',
  ' if u.a',
  ' if !u.a',
  ' if u.a == w.a',
  ' if u.a.b == 1',
  ' if u.n > 2',
  ' if u.s == "x"',
  ' if u.s >= "secret"',
  ' if xs.contains(u.a)',
  ' if any(xs, |x| x.a)',
  ' if all(xs, |u| u == 1)',
  ' if any(xs, |x| x == u.n) || w.b',
  ' if u.__proto__.a',
  ' if u.constructor == 1',
  ' if w.tags.contains("t")',
  ' if [u.a, w.b].contains(true)',
  ' if u.a.b.c == "1"',
  ' if w == u',
  ' if u.a && (w.b || !u.c)',
);
const pattern = fc.constantFrom('any', 'r(a)', 'r(any)', 'any(b)', 'w(b)', 'c1', 'c2');
const target = fc.array(pattern, { minLength: 1, maxLength: 2 }).map((ps) => (ps.length === 1 ? (ps[0] as string) : `[${ps.join(', ')}]`));
const requirement = fc.oneof(
  fc.constantFrom('u.a', 'w.b == true', 'u.n > 0', 'trail = "d"'),
  fc.tuple(fc.constantFrom('boss_approval', 'mark'), target).map(([n, t]) => `${n} for ${t}`),
);
const rule = fc.oneof(
  fc.tuple(fc.constantFrom('allow', 'deny', 'audit'), target, condition).map(([kind, t, c]) => `${kind}: ${t}${c}`),
  fc.tuple(fc.array(requirement, { minLength: 1, maxLength: 3 }), condition).map(([items, c]) => `require: [${items.join(', ')}]${c}`),
);
const policies = fc.array(fc.array(rule, { maxLength: 4 }), { maxLength: 4 });

function compile(sets: readonly (readonly string[])[]): PolicySet {
  return compilePolicySources([{ text: sets.map((rules, i) => `policy p${i} {\n${rules.join('\n')}\n}`).join('\n'), file: 'keys.policy' }]);
}

/** Objects built from entries, so that a `__proto__` key is an own property as JSON.parse makes it. */
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<unknown>(true, false, 0, -0, 1, 2.5, 3, '1', 'x', 'secret', 't', '', null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc
      .array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'n', 's', 'tags', '__proto__', 'constructor'), tie('value')), { maxLength: 4 })
      .map((entries) => Object.fromEntries(entries)),
  ),
}));
const objectOf = (attributes: readonly string[]) =>
  fc.array(fc.tuple(fc.constantFrom(...attributes), value), { maxLength: 5 }).map((entries) => Object.fromEntries(entries) as Record<string, unknown>);
/** Contexts mostly of the shape the conditions read, sometimes not (missing, another type). */
const context = fc.record(
  {
    u: fc.oneof({ weight: 4, arbitrary: objectOf(['a', 'b', 'c', 'n', 's', '__proto__', 'constructor']) }, { weight: 1, arbitrary: value }),
    w: fc.oneof({ weight: 4, arbitrary: objectOf(['a', 'b', 'tags']) }, { weight: 1, arbitrary: value }),
    xs: fc.oneof({ weight: 4, arbitrary: fc.array(value, { minLength: 1, maxLength: 3 }) }, { weight: 1, arbitrary: value }),
    other: value,
  },
  { requiredKeys: [] },
);
const request = fc.record(
  {
    action: fc.constantFrom('r', 'w', 'x'),
    resource: fc.constantFrom('a', 'b', 'z'),
    classes: fc.subarray(['c1', 'c2', 'c3']),
    context,
  },
  { requiredKeys: ['action', 'resource'] },
);

/** Every path a condition above names, and a few no condition names. */
const paths = fc.constantFrom(
  ['u'], ['u', 'a'], ['u', 'a', 'b'], ['u', 'a', 'b', 'c'], ['u', 'n'], ['u', 's'], ['u', 'c'], ['u', '__proto__', 'a'], ['u', 'constructor'],
  ['w'], ['w', 'a'], ['w', 'b'], ['w', 'tags'], ['xs'], ['xs', '0'], ['xs', '0', 'a'], ['other'], ['u', 'zz'],
);

/** `r` with the value at `path` replaced (or deleted when `to` is undefined), as a fresh object. */
function withPath(r: { context?: unknown }, path: readonly string[], to: unknown): unknown {
  const copy = structuredClone(r) as { context?: unknown };
  let node = (copy.context ??= {}) as Record<string, unknown>;
  for (const name of path.slice(0, -1)) {
    const next = node[name];
    if (next === null || typeof next !== 'object') return copy;
    node = next as Record<string, unknown>;
  }
  const last = path[path.length - 1] as string;
  if (to === undefined) delete node[last];
  else Object.defineProperty(node, last, { value: to, enumerable: true, writable: true, configurable: true });
  return copy;
}

function keyOf(set: PolicySet, r: unknown): RequestKey {
  const key = set.cacheKeyOf(r);
  if (key === undefined) throw new Error(`no key for ${JSON.stringify(r)}`);
  return key;
}

describe('request keys: the request projected on what the set reads', () => {
  it('a cached decision is exactly the uncached one, and the projection decides as the request does', () => {
    fc.assert(
      fc.property(policies, fc.array(request, { minLength: 1, maxLength: 6 }), (sets, requests) => {
        const set = compile(sets);
        const cache = new DecisionCache({ max: 100 });
        // Twice, so that the second round is served from the cache.
        for (const r of [...requests, ...requests]) {
          const uncached = set.evaluate(r);
          expect(cache.evaluate(set, r)).toEqual(uncached);
          const text = keyText(keyOf(set, r));
          expect(set.evaluate(JSON.parse(text))).toEqual(uncached);
          expect(cacheKey(JSON.parse(text))).toBe(text);
        }
      }),
      { numRuns: 600 },
    );
  });

  it('a cached decision is the uncached one for requests that differ from a cached one in one path', () => {
    fc.assert(
      fc.property(policies, request, fc.array(fc.tuple(paths, fc.option(value, { nil: undefined })), { minLength: 1, maxLength: 8 }), (sets, base, changes) => {
        const set = compile(sets);
        const cache = new DecisionCache({ max: 100 });
        expect(cache.evaluate(set, base)).toEqual(set.evaluate(base));
        for (const [path, to] of changes) {
          const r = withPath(base, path, to);
          expect(cache.evaluate(set, r)).toEqual(set.evaluate(r));
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('two requests share a key exactly when their projections are equal, and then share a decision', () => {
    fc.assert(
      fc.property(policies, request, context, (sets, r, other) => {
        const set = compile(sets);
        const s = { ...r, context: other };
        const a = keyOf(set, r);
        const b = keyOf(set, s);
        expect(sameKey(a, b)).toBe(keyText(a) === keyText(b));
        if (sameKey(a, b)) expect(set.evaluate(s)).toEqual(set.evaluate(r));
      }),
      { numRuns: 1000 },
    );
  });

  it('never gives one key to requests that differ in a path the set reads', () => {
    const set = compile([['allow: r(a) if u.a == 1 || w.b.c == 1']]);
    fc.assert(
      fc.property(value, value, fc.constantFrom('u', 'w'), (x, y, root) => {
        fc.pre(cacheKey(x) !== undefined && cacheKey(x) !== cacheKey(y) && cacheKey(y) !== undefined);
        const at = (v: unknown) => ({ action: 'r', resource: 'a', context: root === 'u' ? { u: { a: v } } : { w: { b: { c: v } } } });
        expect(sameKey(keyOf(set, at(x)), keyOf(set, at(y)))).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('tells apart missing, undefined, null, and values of different types', () => {
    const set = compile([['allow: r(a) if u.a == 1']]);
    const at = (user: unknown) => ({ action: 'r', resource: 'a', context: user === 'no user' ? {} : { u: user } });
    const keys = [at('no user'), at({}), at({ a: null }), at({ a: 1 }), at({ a: '1' }), at({ a: true }), at({ a: [1] }), at({ a: '[1]' }), at(null), at([])].map((r) =>
      keyOf(set, r),
    );
    for (const [i, a] of keys.entries()) for (const [j, b] of keys.entries()) expect(sameKey(a, b)).toBe(i === j);
    // Present but undefined is not JSON: no key, so it is decided uncached (and fails, as evaluation says).
    expect(set.cacheKeyOf(at({ a: undefined }))).toBeUndefined();
    const cache = new DecisionCache();
    expect(cache.evaluate(set, at({ a: undefined }))).toEqual(set.evaluate(at({ a: undefined })));
    expect(cache.stats.size).toBe(0);
  });

  it('gives -0 and 0, and objects in any key order, one key', () => {
    const set = compile([['allow: r(a) if u.a == w']]);
    const r = (a: unknown, w: unknown) => ({ action: 'r', resource: 'a', context: { u: { a }, w } });
    expect(sameKey(keyOf(set, r(0, 1)), keyOf(set, r(-0, 1)))).toBe(true);
    expect(sameKey(keyOf(set, r(1, { x: 1, y: [2, { p: 1, q: 2 }] })), keyOf(set, r(1, { y: [2, { q: 2, p: 1 }], x: 1 })))).toBe(true);
    expect(sameKey(keyOf(set, r(1, [1, 2])), keyOf(set, r(1, [2, 1])))).toBe(false);
  });

  it('keeps __proto__ and constructor as the own attributes they are, never the inherited ones', () => {
    const set = compile([['allow: r(a) if u.__proto__.a == true && u.constructor == 1']]);
    const own = JSON.parse('{"action":"r","resource":"a","context":{"u":{"__proto__":{"a":true},"constructor":1}}}') as unknown;
    const inherited = { action: 'r', resource: 'a', context: { u: {} } };
    expect(set.evaluate(own).decision).toBe('Allow');
    expect(set.evaluate(inherited).decision).toBe('Deny');
    expect(keyText(keyOf(set, own))).toBe('{"action":"r","classes":[],"context":{"u":{"__proto__":{"a":true},"constructor":1}},"resource":"a"}');
    expect(sameKey(keyOf(set, own), keyOf(set, inherited))).toBe(false);
    const cache = new DecisionCache();
    expect(cache.evaluate(set, own).decision).toBe('Allow');
    expect(cache.evaluate(set, inherited).decision).toBe('Deny');
    // In an object literal `__proto__` sets the prototype: inherited, so missing.
    const literal = { action: 'r', resource: 'a', context: { u: { __proto__: { a: true }, constructor: 1 } } };
    expect(cache.evaluate(set, literal)).toEqual(set.evaluate(literal));
    expect(cache.evaluate(set, literal).decision).toBe('Deny');
  });

  it('cannot be confused by strings that look like separators or other values', () => {
    const set = compile([['allow: r(a) if u.a == u.b']]);
    const r = (a: unknown, b: unknown, action = 'r') => ({ action, resource: 'a', context: { u: { a, b } } });
    const pairs: [unknown, unknown][] = [
      [r('ab', 'c'), r('a', 'bc')],
      [r('a","b', 'c'), r('a', 'b","c')],
      [r('a\u0000b', 'c'), r('a', 'b\u0000c')],
      [r('[1]', 1), r([1], 1)],
      [r('true', 1), r(true, 1)],
      [r('null', 1), r(null, 1)],
      [r(1, 1, 'r","resource":"a'), r(1, 1)],
    ];
    for (const [a, b] of pairs) expect(sameKey(keyOf(set, a), keyOf(set, b))).toBe(false);
  });

  it('leaves out what no rule for the target reads, and misses nothing a rule reads', () => {
    const set = compile([['allow: r(a) if u.a', 'deny: w(b) if u.secret', 'require: u.ok', 'audit: c1 if u.c']]);
    const cache = new DecisionCache();
    const read = (context: object, classes: string[] = []) => ({ action: 'r', resource: 'a', classes, context });
    // u.secret is read only by w(b)'s deny, `other` by nothing: neither is part of r(a)'s key.
    const first = cache.evaluate(set, read({ u: { a: true, ok: true, secret: 1 }, other: 1 }));
    expect(first.decision).toBe('Allow');
    expect(cache.evaluate(set, read({ u: { a: true, ok: true, secret: 2 }, other: [] }))).toBe(first);
    expect(keyText(keyOf(set, read({ u: { a: true, ok: true, secret: 2 } })))).toBe(
      '{"action":"r","classes":[],"context":{"u":{"a":true,"ok":true}},"resource":"a"}',
    );
    // The requirement and, in class c1, the audit rule's condition are read.
    expect(cache.evaluate(set, read({ u: { a: true, ok: false } })).decision).toBe('Deny');
    expect(cache.evaluate(set, read({ u: { a: true, ok: true, c: true } }, ['c1'])).audit).toHaveLength(1);
    expect(cache.evaluate(set, read({ u: { a: true, ok: true, c: false } }, ['c1'])).audit).toHaveLength(0);
    expect(cache.evaluate(set, { action: 'w', resource: 'b', context: { u: { secret: true } } }).decision).toBe('Deny');
  });

  it('follows a caller that changes its object between calls (no identity caching)', () => {
    const set = compile([['allow: r(a) if u.a']]);
    const cache = new DecisionCache();
    const r = { action: 'r', resource: 'a', context: { u: { a: true } } };
    expect(cache.evaluate(set, r).decision).toBe('Allow');
    r.context.u.a = false;
    expect(cache.evaluate(set, r).decision).toBe('Deny');
    r.context.u.a = true;
    expect(cache.evaluate(set, r).decision).toBe('Allow');
  });

  it('stores the decision of what the key read, even when a getter answers otherwise the second time', () => {
    const set = compile([['allow: r(a) if u.a']]);
    const cache = new DecisionCache();
    let reads = 0;
    const fickle = { action: 'r', resource: 'a', context: { u: { get a() { return reads++ === 0 ? false : true; } } } };
    expect(cache.evaluate(set, fickle).decision).toBe('Deny');
    // The entry is the one for `a: false`: an honest request with `a: false` is still denied, one with `true` allowed.
    expect(cache.evaluate(set, { action: 'r', resource: 'a', context: { u: { a: false } } }).decision).toBe('Deny');
    expect(cache.evaluate(set, { action: 'r', resource: 'a', context: { u: { a: true } } }).decision).toBe('Allow');
  });

  it('never throws on a request whose getters throw, and never caches a call made from inside an evaluation', () => {
    const set = compile([['allow: r(a) if u.a']]);
    const cache = new DecisionCache();
    const throwing = { action: 'r', resource: 'a', context: { u: { get a(): boolean { throw new Error('boom'); } } } };
    expect(cache.evaluate(set, throwing)).toMatchObject({ decision: 'Deny' });
    const honest = { action: 'r', resource: 'a', context: { u: { a: true } } };
    let inner: unknown;
    const reentrant = { action: 'r', resource: 'a', context: { u: { get a(): boolean { inner ??= cache.evaluate(set, honest); return true; } } } };
    // Keying reads the getter once (before any evaluation: that inner call is an honest miss);
    // the evaluation of the projection calls no getter.
    expect(cache.evaluate(set, reentrant).decision).toBe('Allow');
    expect(inner).toMatchObject({ decision: 'Allow' });
    // A getter that runs during an (uncached: `v` is undefined) evaluation and asks the same
    // set gets the re-entry Deny, which is not cached for the honest request it asked about.
    const other = compile([['allow: r(a) if u.a && v == 1']]);
    const honestToo = { action: 'r', resource: 'a', context: { u: { a: true }, v: 1 } };
    let calls = 0;
    inner = undefined;
    const uncachable = {
      action: 'r',
      resource: 'a',
      context: {
        u: {
          get a(): boolean {
            if (++calls === 2) inner = cache.evaluate(other, honestToo);
            return true;
          },
        },
        v: undefined,
      },
    };
    expect(cache.evaluate(other, uncachable).decision).toBe('Deny');
    expect(inner).toMatchObject({ decision: 'Deny', reason: expect.stringMatching(/re-entered/) });
    expect(cache.evaluate(other, honestToo).decision).toBe('Allow');
  });

  it('has no key for requests of the wrong shape, which are decided (and denied) uncached', () => {
    const set = compile([['allow: any']]);
    const cache = new DecisionCache();
    for (const bad of [null, [], 'r', { action: 1, resource: 'a' }, { action: 'r', resource: 'a', classes: [1] }, { action: 'r', resource: 'a', context: [] }]) {
      expect(set.cacheKeyOf(bad)).toBeUndefined();
      expect(cache.evaluate(set, bad)).toMatchObject({ decision: 'Deny', reason: expect.stringMatching(/^invalid request/) });
    }
    expect(cache.stats.size).toBe(0);
  });

  it('compares keys of one target from two compilations of the same policies by their text', () => {
    const text = [['allow: r(a) if u.a']];
    const r = { action: 'r', resource: 'a', context: { u: { a: true } } };
    const a = keyOf(compile(text), r);
    const b = keyOf(compile(text), r);
    expect(a.plan).not.toBe(b.plan);
    // Each set hashes with its own seed; with equal hashes the texts decide.
    expect(sameKey(a, { ...b, hash: a.hash })).toBe(true);
    expect(sameKey(a, { ...keyOf(compile(text), { ...r, context: { u: { a: false } } }), hash: a.hash })).toBe(false);
  });
});

describe('KeyLru', () => {
  const set = compile([['allow: r(a) if u.a == 1']]);
  const key = (a: number, hash?: number): RequestKey => {
    const k = keyOf(set, { action: 'r', resource: 'a', context: { u: { a } } });
    return hash === undefined ? k : { ...k, hash };
  };
  const allow = set.evaluate({ action: 'r', resource: 'a', context: { u: { a: 1 } } });

  it('confirms a hash hit with the key itself', () => {
    const lru = new KeyLru(10, () => {});
    lru.set(key(1, 7), allow);
    expect(lru.get(key(1, 7))).toBe(allow);
    expect(lru.get(key(2, 7))).toBeUndefined();
  });

  it('evicts the least recently used, and caps a bucket of colliding keys', () => {
    let size = 0;
    const lru = new KeyLru(3, (delta) => void (size += delta));
    lru.set(key(1), allow);
    lru.set(key(2), allow);
    lru.set(key(3), allow);
    lru.get(key(1));
    lru.set(key(4), allow);
    expect([1, 2, 3, 4].map((a) => lru.get(key(a)) !== undefined)).toEqual([true, false, true, true]);
    expect(size).toBe(3);

    const colliding = new KeyLru(100, () => {});
    for (let a = 0; a < 20; a++) colliding.set(key(a, 42), allow);
    const stored = Array.from({ length: 20 }, (_, a) => colliding.get(key(a, 42)) !== undefined);
    expect(stored.filter(Boolean)).toHaveLength(8);
    expect(colliding.size).toBe(8);
  });
});
