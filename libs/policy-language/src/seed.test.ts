import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkExpectation, compilePolicySources, parsePolicies, parsePolicyTestFile, printPolicy } from './index.js';

// The seed document, when the shared reference is checked out beside the repository.
const seedDocument = new URL('../../../../shared/reference/seed-security-model.pt.md', import.meta.url);

const examples = new URL('../examples/', import.meta.url);
const seedText = readFileSync(new URL('seed.policy', examples), 'utf8');
const table = parsePolicyTestFile(readFileSync(new URL('seed.test.json', examples), 'utf8'), 'seed.test.json');
const set = compilePolicySources([{ text: seedText, file: 'seed.policy' }]);

describe('the seed example policies', () => {
  it('parse into the three policies with their rules', () => {
    const parsed = parsePolicies(seedText, { file: 'seed.policy' });
    expect(parsed.policies.map((p) => [p.name, p.rules.map((r) => r.kind)])).toEqual([
      ['secure_data_access', ['allow', 'deny', 'require']],
      ['data_flow_control', ['allow', 'deny', 'require']],
      ['resource_governance', ['allow', 'deny', 'require']],
    ]);
  });

  it.skipIf(!existsSync(seedDocument))('are the policies of the seed document, verbatim', () => {
    const blocks = [...readFileSync(seedDocument, 'utf8').matchAll(/```rust\n(policy [\s\S]*?)```/g)].map((m) => m[1] as string);
    expect(blocks).toHaveLength(3);
    const fromSeed = blocks.flatMap((block) => parsePolicies(block).policies.map(printPolicy));
    expect(fromSeed).toEqual(parsePolicies(seedText).policies.map(printPolicy));
  });

  it('has a table of at least 40 requests', () => {
    expect(table.cases.length).toBeGreaterThanOrEqual(40);
  });

  for (const testCase of table.cases) {
    it(`decides: ${testCase.name}`, () => {
      const decision = set.evaluate(testCase.request);
      expect(checkExpectation(decision, testCase.expect)).toEqual([]);
      // The index visits fewer rules but must decide exactly as the full scan does.
      expect(set.evaluateByScan(testCase.request)).toEqual(decision);
    });
  }
});
