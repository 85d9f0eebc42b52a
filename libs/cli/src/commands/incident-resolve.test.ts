import { describe, expect, it } from 'vitest';
import { formatDuration } from './incident-format.js';
import { planOf } from './incident-resolve.js';

describe('bulwark incident resolve options', () => {
  it('makes the recovery plan the options ask for', () => {
    expect(planOf({})).toBeUndefined();
    expect(planOf({ reenroll: true })).toEqual({ reenroll: true, policy: 'keep' });
    expect(planOf({ rollbackPolicy: true })).toEqual({ policy: 'rollback' });
    expect(planOf({ keepPolicy: true, healthCheck: true })).toEqual({ policy: 'keep' });
  });

  it('refuses keeping and rolling back the policy at once', () => {
    expect(() => planOf({ keepPolicy: true, rollbackPolicy: true })).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
  });

  it('prints durations a person reads at a glance', () => {
    expect([formatDuration(undefined), formatDuration(850), formatDuration(12_340), formatDuration(270_000), formatDuration(7_200_000)]).toEqual(['-', '850 ms', '12.3 s', '4.5 min', '2.0 h']);
  });
});
