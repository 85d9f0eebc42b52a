import { describe, expect, it } from 'vitest';
import { keyRotationIntervalMs } from './rotation.js';

describe('the key rotation interval', () => {
  it('is security.key_rotation_interval_days, or SYMBIONT_KEY_ROTATION_INTERVAL_MS (tests: seconds)', () => {
    expect(keyRotationIntervalMs(90, {})).toBe(90 * 86_400_000);
    expect(keyRotationIntervalMs(90, { SYMBIONT_KEY_ROTATION_INTERVAL_MS: '5000' })).toBe(5000);
  });

  it.each(['0', '999', '-5', '1e4', '5s', '', String(91 * 86_400_000)])('refuses SYMBIONT_KEY_ROTATION_INTERVAL_MS=%j, naming it and the range', (text) => {
    expect(() => keyRotationIntervalMs(90, { SYMBIONT_KEY_ROTATION_INTERVAL_MS: text })).toThrow(/SYMBIONT_KEY_ROTATION_INTERVAL_MS=.*from 1000 to security.key_rotation_interval_days \(7776000000\)/);
  });
});
