import { describe, expect, it } from 'vitest';
import { MAX_ROTATION_CHECK_MS, rotationCheckMs, rotationTrigger } from './rotation-check.js';

describe("a holder's rotation check", () => {
  it('answers a requested rotation (on_demand) before the interval, and nothing when neither', () => {
    const requested = { at: '2026-01-01T00:00:00.000Z', reason: 'compromise' as const, by: 'analyst.admin' };
    expect(rotationTrigger({ rotationDue: true, rotationRequested: requested })).toBe('on_demand');
    // A view from a key manager that reports the request but not (yet) as due still rotates.
    expect(rotationTrigger({ rotationDue: false, rotationRequested: { ...requested, reason: 'on_demand' } })).toBe('on_demand');
    expect(rotationTrigger({ rotationDue: true, rotationRequested: null })).toBe('interval');
    expect(rotationTrigger({ rotationDue: false, rotationRequested: null })).toBeUndefined();
  });

  it('checks every tenth of the interval, at most every 60 s', () => {
    expect(rotationCheckMs(5000)).toBe(500);
    expect(rotationCheckMs(90 * 86_400_000)).toBe(MAX_ROTATION_CHECK_MS);
    expect(MAX_ROTATION_CHECK_MS).toBe(60_000);
  });
});
