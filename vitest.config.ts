import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

// Tests run against each workspace package's TypeScript source, not its build output,
// so `vitest` sees a change without a rebuild. Package `@bulwark/<folder>` lives in
// libs/<folder>, services/<folder> or proto/; a subpath export `@bulwark/<folder>/<sub>`
// ("./<sub>" in its package.json) is its src/<sub>.ts. Each alias matches one whole
// specifier: vite's string aliases are prefix matches, which would send
// `@bulwark/envelope/testing` to `.../envelope/src/index.ts/testing`.
const exactly = (specifier: string, file: string) => ({ find: new RegExp(`^${specifier.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`), replacement: file });
const alias = [exactly('@bulwark/proto', `${root}proto/src/index.ts`)];
for (const group of ['libs', 'services']) {
  for (const folder of readdirSync(`${root}${group}`)) {
    const dir = `${root}${group}/${folder}`;
    if (existsSync(`${dir}/src/index.ts`)) alias.push(exactly(`@bulwark/${folder}`, `${dir}/src/index.ts`));
    if (!existsSync(`${dir}/package.json`)) continue;
    const { exports = {} } = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as { exports?: Record<string, unknown> };
    for (const sub of Object.keys(exports)) {
      const source = `${dir}/src/${sub.slice(2)}.ts`;
      if (sub.startsWith('./') && existsSync(source)) alias.push(exactly(`@bulwark/${folder}/${sub.slice(2)}`, source));
    }
  }
}

const include = ['libs/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'];
const exclude = ['**/node_modules/**', '**/dist/**', 'test/bench/**'];
// A `*.latency.test.ts` asserts a latency target (revocation within 1 s, containment within 1 s).
// On a 2-core machine the parallel suite stalls any one process for seconds, so those files run
// after it, one at a time, and measure the system rather than the suite's load.
const LATENCY = '**/*.latency.test.ts';
// A `*.paired.test.ts` starts a whole world of real services (rotations over several intervals) and
// asserts outcomes only (nothing lost, nothing accepted under a revoked version), no timing bound:
// it would stall in the parallel suite too, but it runs beside one other such file, after the latency files.
const PAIRED = '**/*.paired.test.ts';

export default defineConfig({
  resolve: { alias },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './scripts/summary-reporter.ts'],
    projects: [
      // Two files at a time: vitest's default in a run is one fewer worker than cores, which on the
      // 2-core CI machine is one file at a time, while most suite files wait on NATS, PostgreSQL and
      // child processes rather than compute.
      { extends: true, test: { name: 'suite', include, exclude: [...exclude, LATENCY, PAIRED], maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'latency', include: [LATENCY], exclude, fileParallelism: false, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'paired', include: [PAIRED], exclude, maxWorkers: 2, sequence: { groupOrder: 2 } } },
    ],
  },
});
