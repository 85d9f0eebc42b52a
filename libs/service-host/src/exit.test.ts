import { describe, expect, it } from 'vitest';
import { BulwarkError, InputError } from '@bulwark/errors';
import { exitCodeOf, failureLine } from './exit.js';

describe('exit codes', () => {
  it('is 2 for bad configuration, 1 for anything else', () => {
    expect(exitCodeOf(new InputError('E_CONFIG', 'bad'))).toBe(2);
    expect(exitCodeOf(new BulwarkError('E_BUS_CONNECT', 'down'))).toBe(1);
    expect(exitCodeOf(new Error('boom'))).toBe(1);
    expect(exitCodeOf('thrown text')).toBe(1);
  });

  it('says one line, named after the process', () => {
    expect(failureLine('policy', new Error('first\n    at frame'))).toBe('bulwark-policy: first\n');
    expect(failureLine('key-manager', 'plain')).toBe('bulwark-key-manager: plain\n');
  });
});
