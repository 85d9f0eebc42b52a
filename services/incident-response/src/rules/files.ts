import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { RuleSource } from './load.js';

/** The shipped rules file (`rules/default.yaml` of this package). */
export const DEFAULT_RULES_FILE = fileURLToPath(new URL('../../rules/default.yaml', import.meta.url));

export async function readRuleSources(files: readonly string[]): Promise<RuleSource[]> {
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(file, 'utf8') })));
}
