import { describe, expect, it } from 'vitest';
import { keyRotationCheckMs } from './rotation-check.js';

describe('the key rotation check period', () => {
  it('is a tenth of the interval, at most 60 s, or SYMBIONT_KEY_ROTATION_CHECK_MS', () => {
    expect(keyRotationCheckMs(90 * 86_400_000, {})).toBe(60_000);
    expect(keyRotationCheckMs(5000, {})).toBe(500);
    expect(keyRotationCheckMs(90 * 86_400_000, { SYMBIONT_KEY_ROTATION_CHECK_MS: '200' })).toBe(200);
    expect(keyRotationCheckMs(90 * 86_400_000, { SYMBIONT_KEY_ROTATION_CHECK_MS: '60000' })).toBe(60_000);
  });

  it.each(['0', '199', '60001', '-5', '1e3', '5s', '', '300.5'])('refuses SYMBIONT_KEY_ROTATION_CHECK_MS=%j, naming it and the range', (text) => {
    expect(() => keyRotationCheckMs(5000, { SYMBIONT_KEY_ROTATION_CHECK_MS: text })).toThrow(/^SYMBIONT_KEY_ROTATION_CHECK_MS=.*from 200 to 60000$/);
  });
});
