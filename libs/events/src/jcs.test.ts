import { readdirSync } from 'node:fs';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readVectorText, vectorPath } from '@bulwark/testkit';
import { canonicalJson, parseJson } from './jcs.js';

const cases = readdirSync(vectorPath('jcs', 'input')).filter((name) => name.endsWith('.json'));

function doubleFromHex(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe('RFC 8785 canonical JSON', () => {
  it('has the six reference cases of the RFC author', () => {
    expect(cases.sort()).toEqual(['arrays.json', 'french.json', 'structures.json', 'unicode.json', 'values.json', 'weird.json']);
  });

  it.each(cases)('canonicalises %s to the exact reference bytes', (name) => {
    const expected = readVectorText('jcs', 'output', name);
    const canonical = canonicalJson(parseJson(readVectorText('jcs', 'input', name)));
    expect(canonical).toBe(expected);
    const hex = readVectorText('jcs', 'outhex', name.replace('.json', '.txt')).replace(/\s+/g, '');
    expect(Buffer.from(canonical, 'utf8').toString('hex')).toBe(hex.toLowerCase());
  });

  it.each(['es6-numbers-first1000.txt', 'es6-numbers-lines2169-2668.txt'])('serialises every number of %s as ECMAScript does', (file) => {
    const lines = readVectorText('jcs', 'numbers', file).split('\n').filter((line) => line.length > 0);
    expect(lines.length).toBeGreaterThanOrEqual(500);
    const failures: string[] = [];
    for (const line of lines) {
      const [hex, expected] = line.split(',');
      const actual = canonicalJson(doubleFromHex(hex!));
      if (actual !== expected) failures.push(`${hex}: got ${actual}, want ${expected}`);
    }
    expect(failures).toEqual([]);
  });

  it('writes what the RFC author\'s reference implementation (the canonicalize package) writes, for random JSON (2,000 cases)', () => {
    const json = fc.jsonValue({ maxDepth: 6, stringUnit: 'binary' });
    fc.assert(
      fc.property(json, (value) => {
        expect(canonicalJson(value)).toBe(canonicalize(value));
      }),
      { numRuns: 2000 },
    );
    // Numbers at the edges of ECMAScript's formatting, and keys that sort differently by code point.
    for (const value of [[-0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.1 + 0.2], { '\u{10000}': 1, '\uffff': 2, a: { b: [] }, '': null }]) {
      expect(canonicalJson(value)).toBe(canonicalize(value));
    }
  });

  it('keeps an own __proto__ key (as JSON.parse makes it) like any other key', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":2}}'))).toBe('{"__proto__":{"x":2},"b":1}');
  });

  it('sorts keys by UTF-16 code units, not by code points', () => {
    // U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FB33 although its code point is larger.
    expect(canonicalJson({ '\ufb33': 1, '\u{1f600}': 2 })).toBe('{"\u{1f600}":2,"\ufb33":1}');
  });

  it.each([
    ['NaN', { a: Number.NaN }, 'value.a: is NaN'],
    ['Infinity', { a: [1, Number.POSITIVE_INFINITY] }, 'value.a[1]: is Infinity'],
    ['undefined member', { a: undefined }, 'value.a: is a undefined'],
    ['bigint', { a: 1n }, 'value.a: is a bigint'],
    ['function', { a: () => 1 }, 'value.a: is a function'],
    ['Date', { a: new Date(0) }, 'value.a: is a Date, not a plain object'],
    ['Map', { a: new Map() }, 'value.a: is a Map'],
    ['lone surrogate', { a: 'x\ud800y' }, 'value.a: contains a lone UTF-16 surrogate'],
    ['lone surrogate key', { ['\udc00']: 1 }, 'key contains a lone UTF-16 surrogate'],
    // eslint-disable-next-line no-sparse-arrays -- the hole is what is being tested
    ['sparse array', { a: [1, , 3] }, 'value.a[1]: is a hole'],
    ['symbol key', { [Symbol('s')]: 1 }, 'has symbol keys'],
  ])('refuses %s', (_name, value, message) => {
    expect(() => canonicalJson(value)).toThrow(message);
  });

  it('refuses cycles and excessive depth', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow('value.self: is a circular reference');
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    expect(() => canonicalJson(deep)).toThrow('nests deeper than 64 levels');
  });

  it('accepts the same object twice when it is not a cycle', () => {
    const shared = { x: 1 };
    expect(canonicalJson({ b: shared, a: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });

  it('refuses JSON text that does not parse, or that escapes a lone surrogate', () => {
    expect(() => parseJson('{"a":', 'details')).toThrow(/^details: not valid JSON/);
    expect(() => parseJson('{"a":"\\ud800"}', 'details')).toThrow('details.a: contains a lone UTF-16 surrogate');
  });
});
