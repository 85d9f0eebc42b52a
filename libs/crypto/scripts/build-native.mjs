// Builds the native frame cipher (native/frame-cipher.c) with node-gyp. Where it cannot be
// built (no C compiler, no Node headers), the package still works: frames use the composed
// cipher, and this prints one line saying so. Under CI the native build must succeed.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
const run = spawnSync(process.execPath, [nodeGyp, 'rebuild', '--loglevel=error'], { encoding: 'utf8' });
if (run.status === 0) process.exit(0);
const output = `${run.stdout ?? ''}${run.stderr ?? ''}${run.error ? String(run.error) : ''}`.trim();
if (process.env['CI']) {
  console.error(output);
  console.error('@bulwark/crypto: the native frame cipher did not build, and CI requires it');
  process.exit(1);
}
const reason = output.split('\n').find((line) => /error/i.test(line)) ?? `node-gyp exited with ${String(run.status)}`;
console.error(`@bulwark/crypto: native frame cipher not built (${reason.trim()}); frames use the composed cipher, which is slower`);
