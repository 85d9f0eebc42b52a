import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKey, MAX_KEY_DEPTH } from './cache-key.js';

/** The same value with every object's keys in another order. */
function permuted(value: unknown, rnd: () => number): unknown {
  if (Array.isArray(value)) return value.map((v) => permuted(v, rnd));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  // fromEntries defines own properties, so a "__proto__" key stays a key (assignment would set the prototype).
  return Object.fromEntries(entries.map(([k, v]) => [k, permuted(v, rnd)]));
}

const json = fc.jsonValue({ maxDepth: 4 });

describe('cacheKey', () => {
  it('gives key-permuted equal values one key, the same as canonicalize decides equality', () => {
    fc.assert(
      fc.property(json, fc.integer(), (value, seed) => {
        let s = seed;
        const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
        expect(cacheKey(permuted(value, rnd))).toBe(cacheKey(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('gives different JSON values different keys exactly when canonicalize does', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        expect(cacheKey(a) === cacheKey(b)).toBe(canonicalize(a) === canonicalize(b));
      }),
      { numRuns: 3000 },
    );
  });

  it('tells apart values that differ in one small place', () => {
    const pairs: [unknown, unknown][] = [
      [{ a: 1 }, { a: '1' }],
      [{ a: [1, 2] }, { a: [2, 1] }],
      [{ a: null }, {}],
      [{ 'a,b': 1 }, { a: 1, b: 1 }],
      [['a', 'b'], ['a,b']],
      ['\ud800', '\ufffd'],
      [1, 1.0000000000000002],
      [{ a: { b: 1 } }, { 'a.b': 1 }],
    ];
    for (const [a, b] of pairs) expect(cacheKey(a)).not.toBe(cacheKey(b));
  });

  it('round-trips: the key is JSON text for the same value', () => {
    fc.assert(
      fc.property(json, (value) => {
        expect(canonicalize(JSON.parse(cacheKey(value)!))).toBe(canonicalize(value));
      }),
      { numRuns: 1000 },
    );
  });

  it('has no key for values that are not plain JSON', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    let deep: unknown = 1;
    for (let i = 0; i <= MAX_KEY_DEPTH; i++) deep = [deep];
    for (const value of [undefined, NaN, Infinity, 1n, () => 1, Symbol('s'), new Date(0), new Map(), { a: undefined }, new Array<number>(3), cyclic, deep]) {
      expect(cacheKey(value)).toBeUndefined();
    }
    expect(cacheKey(-0)).toBe('0');
    expect(cacheKey(Object.assign(Object.create(null) as object, { b: 1, a: 2 }))).toBe('{"a":2,"b":1}');
  });
});
