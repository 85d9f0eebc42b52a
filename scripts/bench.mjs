// `npm run bench -- <name> [args]`: builds the workspace, then runs test/bench/<name>.ts,
// which prints one JSON object per figure (DESIGN §11).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const [name, ...args] = process.argv.slice(2);
const available = readdirSync('test/bench').filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3));
if (!name || !existsSync(`test/bench/${name}.ts`)) {
  console.error(`bench: ${name ? `no benchmark named '${name}'` : 'name a benchmark'}; available: ${available.join(', ')}`);
  process.exit(2);
}
const build = spawnSync('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const bench = spawnSync('npx', ['tsx', `test/bench/${name}.ts`, ...args], { stdio: 'inherit' });
process.exit(bench.status ?? 1);
