import { describe, expect, it } from 'vitest';
import { parseAssessment, riskScore, type RiskAssessment } from './assessment.js';
import { chooseTier, floorTier, parseThresholds, parseTierRequest, riskLevel, tierForLevel } from './tier.js';

const base: RiskAssessment = { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false };
const seedScore = (a: RiskAssessment): number => {
  // The seed's Rust, transcribed: base_score + access_penalty, min 1.0.
  const b = a.data_sensitivity * 0.4 + (1.0 - a.code_trust_level) * 0.3;
  const p = (a.network_access ? 0.1 : 0.0) + (a.filesystem_access ? 0.1 : 0.0) + (a.external_apis ? 0.1 : 0.0);
  return Math.min(b + p, 1.0);
};

describe('riskScore (S1.1)', () => {
  it('is 0 for public data, verified code and no access', () => {
    expect(riskScore(base)).toBe(0);
  });
  it('weighs sensitivity 0.4, distrust 0.3 and each flag 0.1', () => {
    expect(riskScore({ ...base, data_sensitivity: 1 })).toBeCloseTo(0.4, 12);
    expect(riskScore({ ...base, code_trust_level: 0 })).toBeCloseTo(0.3, 12);
    expect(riskScore({ ...base, network_access: true })).toBeCloseTo(0.1, 12);
    expect(riskScore({ ...base, filesystem_access: true })).toBeCloseTo(0.1, 12);
    expect(riskScore({ ...base, external_apis: true })).toBeCloseTo(0.1, 12);
  });
  it('is capped at 1.0 (0.4 + 0.3 + 0.3 = 1.0 exactly, never more)', () => {
    const worst = { data_sensitivity: 1, code_trust_level: 0, network_access: true, filesystem_access: true, external_apis: true };
    expect(riskScore(worst)).toBe(1);
  });
  it('equals the seed formula on every combination of a grid', () => {
    const steps = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1];
    for (const s of steps) for (const t of steps) for (let flags = 0; flags < 8; flags++) {
      const a = { data_sensitivity: s, code_trust_level: t, network_access: (flags & 1) !== 0, filesystem_access: (flags & 2) !== 0, external_apis: (flags & 4) !== 0 };
      expect(riskScore(a)).toBe(seedScore(a));
    }
  });
});

describe('parseAssessment', () => {
  it('accepts the boundaries 0 and 1', () => {
    expect(parseAssessment({ ...base, data_sensitivity: 1, code_trust_level: 0 })).toEqual({ ...base, data_sensitivity: 1, code_trust_level: 0 });
  });
  it.each([
    ['NaN', { ...base, data_sensitivity: Number.NaN }, /data_sensitivity must be a number from 0 to 1, got NaN/],
    ['Infinity', { ...base, code_trust_level: Number.POSITIVE_INFINITY }, /code_trust_level must be a number from 0 to 1/],
    ['just above 1', { ...base, data_sensitivity: 1.0000001 }, /data_sensitivity must be a number from 0 to 1/],
    ['just below 0', { ...base, code_trust_level: -Number.EPSILON }, /code_trust_level must be a number from 0 to 1/],
    ['a numeric string', { ...base, data_sensitivity: '0.5' }, /got "0.5"/],
    ['a flag as 1', { ...base, network_access: 1 }, /network_access must be true or false, got 1/],
    ['a flag as "true"', { ...base, external_apis: 'true' }, /external_apis must be true or false/],
    ['a missing level', { code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false }, /data_sensitivity is missing/],
    ['a missing flag', { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false }, /external_apis is missing/],
    ['an unknown field', { ...base, tier: 1 }, /unknown field "tier"/],
    ['null', null, /expected an object/],
    ['an array', [], /expected an object/],
  ])('refuses %s', (_name, input, message) => {
    expect(() => parseAssessment(input)).toThrow(message);
    try {
      parseAssessment(input);
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_SANDBOX_ASSESSMENT');
    }
  });
});

describe('risk levels and tiers (S1.2)', () => {
  it('places scores at the default thresholds: 0.3 is medium, just below is low; 0.6 is high', () => {
    expect(riskLevel(0.3 - 1e-9)).toBe('low');
    expect(riskLevel(0.3)).toBe('medium');
    expect(riskLevel(0.6 - 1e-9)).toBe('medium');
    expect(riskLevel(0.6)).toBe('high');
    expect(riskLevel(1)).toBe('high');
    expect(riskLevel(0)).toBe('low');
  });
  it('sends low to Tier 1 and medium and high to Tier 2', () => {
    expect(tierForLevel('low')).toBe(1);
    expect(tierForLevel('medium')).toBe(2);
    expect(tierForLevel('high')).toBe(2);
  });
  it('uses configured thresholds', () => {
    const t = parseThresholds({ medium: 0.5, high: 0.8 });
    expect(riskLevel(0.49, t)).toBe('low');
    expect(riskLevel(0.5, t)).toBe('medium');
    expect(riskLevel(0.8, t)).toBe('high');
  });
  it('refuses thresholds out of order or out of range', () => {
    expect(() => parseThresholds({ medium: 0.7, high: 0.6 })).toThrow(/0 < medium ≤ high ≤ 1/);
    expect(() => parseThresholds({ medium: 0, high: 0.6 })).toThrow(/0 < medium/);
    expect(() => parseThresholds({ medium: 0.3, high: 1.5 })).toThrow(/high ≤ 1/);
    expect(() => parseThresholds({ medium: Number.NaN })).toThrow(/medium=NaN/);
  });
  it('untrusted code alone scores exactly 0.3: medium, Tier 2; one flag on trusted code, 0.1: Tier 1', () => {
    const a = { ...base, code_trust_level: 0 };
    expect(riskScore(a)).toBe(0.3);
    expect(chooseTier(a)).toEqual({ score: 0.3, level: 'medium', riskTier: 2, tier: 2 });
    expect(chooseTier({ ...base, filesystem_access: true }).tier).toBe(1);
  });
  it('a workload scoring 0.2 runs in Tier 1 with the docker floor, Tier 2 with the gvisor floor', () => {
    const a = { ...base, network_access: true, external_apis: true };
    expect(chooseTier(a, { floor: floorTier('docker') })).toEqual({ score: riskScore(a), level: 'low', riskTier: 1, tier: 1 });
    expect(chooseTier(a, { floor: floorTier('gvisor') })).toMatchObject({ level: 'low', riskTier: 1, tier: 2, raisedBy: 'floor' });
  });
  it('moves a workload up on request but never down', () => {
    expect(chooseTier(base, { request: 2 })).toMatchObject({ riskTier: 1, tier: 2, raisedBy: 'request' });
    const risky = { ...base, code_trust_level: 0, data_sensitivity: 0.5 };
    expect(chooseTier(risky, { request: 1 })).toMatchObject({ level: 'medium', tier: 2 });
    expect(chooseTier(risky, { request: 1 }).raisedBy).toBeUndefined();
  });
  it('refuses an unknown tier or floor', () => {
    expect(() => parseTierRequest(3)).toThrow(/tier must be auto, 1 or 2, got 3/);
    expect(() => parseTierRequest('gvisor')).toThrow(/got "gvisor"/);
    expect(() => floorTier('firecracker')).toThrow(/default tier must be gvisor or docker/);
    expect(parseTierRequest(undefined)).toBe('auto');
    expect(parseTierRequest('2')).toBe(2);
  });
});
