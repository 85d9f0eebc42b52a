/** `npm run vectors -w @bulwark/envelope`: rewrite vectors/*.json from scripts/vector-set.ts. */
import { writeFileSync } from 'node:fs';
import { createCryptoProvider } from '@bulwark/crypto';
import { buildVectorSets } from './vector-set.js';

const sets = buildVectorSets(createCryptoProvider('node'));
for (const [name, set] of Object.entries(sets)) {
  const path = new URL(`../vectors/${name}.json`, import.meta.url);
  writeFileSync(path, `${JSON.stringify(set, null, 2)}\n`);
  console.log(`wrote ${path.pathname}`);
}
