import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readVectorJson, vectorPath } from './vectors.js';

describe('shared vectors', () => {
  it('finds shared/vectors beside the checkout', () => {
    expect(existsSync(vectorPath('rfc6962', 'rfc6962-vectors.json'))).toBe(true);
    expect(readVectorJson<{ leaf_inputs: string[] }>('rfc6962', 'rfc6962-vectors.json').leaf_inputs).toHaveLength(8);
  });
});
