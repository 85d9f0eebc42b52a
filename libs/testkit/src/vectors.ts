import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * The public test vectors live in `shared/vectors/` beside the checkout (CI lays
 * `shared/` next to the clone); tests read them from there and never copy them in.
 */
export const sharedVectorsDir: string = fileURLToPath(new URL('../../../../shared/vectors/', import.meta.url));

export function vectorPath(...parts: string[]): string {
  return join(sharedVectorsDir, ...parts);
}

export function readVectorJson<T = unknown>(...parts: string[]): T {
  return JSON.parse(readFileSync(vectorPath(...parts), 'utf8')) as T;
}

export function readVectorText(...parts: string[]): string {
  return readFileSync(vectorPath(...parts), 'utf8');
}
