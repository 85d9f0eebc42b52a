import { describe, expect, it } from 'vitest';
import { BulwarkError, InputError, isBulwarkError } from './index.js';

describe('BulwarkError', () => {
  it('keeps its code, context and subclass name', () => {
    const err = new InputError('E_CONFIG', 'bad value', { key: 'security.crypto_provider' });
    expect(err).toBeInstanceOf(BulwarkError);
    expect(err.name).toBe('InputError');
    expect(err.code).toBe('E_CONFIG');
    expect(err.context).toEqual({ key: 'security.crypto_provider' });
    expect(isBulwarkError(err)).toBe(true);
    expect(isBulwarkError(new Error('x'))).toBe(false);
  });
});
