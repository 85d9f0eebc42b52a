// Long fuzz run of the policy parser and compiler (issue "policy language"):
//   npx tsx scripts/fuzz-policy.ts --count 1000000 [--seed N] [--hang-ms 100]
// Prints one JSON summary line; exit 1 on any crash or hang, with the offending inputs
// (first 5 of each, truncated) on stderr so they can be turned into tests.
import { parseArgs } from 'node:util';
import { runPolicyFuzz } from '@bulwark/policy-language';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    'hang-ms': { type: 'string', default: '100' },
  },
});
const count = Number(values.count);
const seed = Number(values.seed);
const hangMs = Number(values['hang-ms']);
if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(seed) || !(hangMs > 0)) {
  console.error('fuzz-policy: --count and --seed must be positive integers, --hang-ms a positive number');
  process.exit(2);
}

const report = runPolicyFuzz({
  count,
  seed,
  hangMs,
  onProgress: (done) => console.error(`fuzz-policy: ${done} inputs`),
});
console.log(
  JSON.stringify({
    fuzz: 'policy',
    seed,
    inputs: report.inputs,
    parsed: report.parsed,
    rejected: report.rejected,
    evaluations: report.evaluations,
    crashes: report.crashes.length,
    hangs: report.hangs.length,
    retried: report.retried,
    slowestMs: Number(report.slowestMs.toFixed(2)),
    elapsedS: Number((report.elapsedMs / 1000).toFixed(1)),
  }),
);
if (report.slowest) console.error(`slowest #${report.slowest.index}: ${report.slowestMs.toFixed(1)} ms, ${report.slowest.input.length} chars: ${JSON.stringify(report.slowest.input.slice(0, 200))}`);
for (const crash of report.crashes.slice(0, 5)) console.error(`crash #${crash.index}: ${crash.error}\n  input: ${JSON.stringify(crash.input.slice(0, 300))}`);
for (const hang of report.hangs.slice(0, 5)) console.error(`hang #${hang.index}: ${hang.ms.toFixed(1)} ms\n  input: ${JSON.stringify(hang.input.slice(0, 300))}`);
process.exitCode = report.crashes.length + report.hangs.length === 0 ? 0 : 1;
