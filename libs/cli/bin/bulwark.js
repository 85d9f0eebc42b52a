#!/usr/bin/env node
// The `bulwark` command as npm links it (npx bulwark, a global install): the compiled CLI,
// or one line saying how to build it when this checkout has not been built yet.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(compiled)) {
  process.stderr.write('bulwark: the CLI is not built yet: run `npm run build` (or `npm start`) in the checkout first\n');
  process.exit(2);
}
await import(compiled.href);
