import { describe, expect, it } from 'vitest';
import { createPolicyFuzzer, parsePolicies, PolicyParseError, printPolicy, runPolicyFuzz } from './index.js';

describe('parser fuzzing', () => {
  it('survives 20,000 generated and mutated inputs without a crash or a hang', () => {
    const report = runPolicyFuzz({ count: 20_000, seed: 20261126, hangMs: 100 });
    expect(report.crashes).toEqual([]);
    // A slow input on a loaded CI machine is reported with its text so it can be replayed.
    expect(report.hangs.map((h) => ({ ms: h.ms, input: h.input.slice(0, 200) }))).toEqual([]);
    // The generator must reach both outcomes, or the test proves nothing.
    expect(report.parsed).toBeGreaterThan(1_000);
    expect(report.rejected).toBeGreaterThan(1_000);
  });
});

describe('printing', () => {
  it('prints every policy the fuzzer can produce back to text that parses to the same tree', () => {
    const fuzzer = createPolicyFuzzer(7);
    let checked = 0;
    for (let i = 0; i < 2_000; i++) {
      let parsed;
      try {
        parsed = parsePolicies(fuzzer.next());
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyParseError);
        continue;
      }
      for (const policy of parsed.policies) {
        const again = parsePolicies(printPolicy(policy)).policies[0];
        expect(withoutSpans(again)).toEqual(withoutSpans(policy));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(200);
  });
});

function withoutSpans(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSpans);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'span').map(([k, v]) => [k, withoutSpans(v)]));
  }
  return value;
}
