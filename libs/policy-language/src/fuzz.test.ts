import { describe, expect, it } from 'vitest';
import { runPolicyFuzz } from './index.js';

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
