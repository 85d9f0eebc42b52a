import { readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

// Tests run against each workspace package's TypeScript source, not its build output,
// so `vitest` sees a change without a rebuild. Package `@bulwark/<folder>` lives in
// libs/<folder>, services/<folder> or proto/.
const alias: Record<string, string> = { '@bulwark/proto': `${root}proto/src/index.ts` };
for (const group of ['libs', 'services']) {
  for (const folder of readdirSync(`${root}${group}`)) {
    const entry = `${root}${group}/${folder}/src/index.ts`;
    if (existsSync(entry)) alias[`@bulwark/${folder}`] = entry;
  }
}

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['libs/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', 'test/bench/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
