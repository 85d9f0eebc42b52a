import { SandboxInputError } from '../errors.js';
import { riskScore, type RiskAssessment } from './assessment.js';

/** Tier 1: an OCI container (runc); Tier 2: gVisor's user-space kernel (runsc). S1.2. */
export type Tier = 1 | 2;
export type RiskLevel = 'low' | 'medium' | 'high';

/** Scores from `medium` up are medium, from `high` up high, anything below `medium` low. */
export interface RiskThresholds {
  readonly medium: number;
  readonly high: number;
}

/** Defaults: [0, 0.3) low, [0.3, 0.6) medium, [0.6, 1] high. */
export const DEFAULT_THRESHOLDS: RiskThresholds = { medium: 0.3, high: 0.6 };

export function parseThresholds(input: { medium?: unknown; high?: unknown }): RiskThresholds {
  const medium = input.medium ?? DEFAULT_THRESHOLDS.medium;
  const high = input.high ?? DEFAULT_THRESHOLDS.high;
  if (typeof medium !== 'number' || typeof high !== 'number' || !Number.isFinite(medium) || !Number.isFinite(high) || medium <= 0 || high > 1 || medium > high) {
    throw new SandboxInputError('E_SANDBOX_THRESHOLDS', `sandbox risk thresholds: need 0 < medium ≤ high ≤ 1, got medium=${String(medium)} high=${String(high)}`, {});
  }
  return { medium, high };
}

export function riskLevel(score: number, thresholds: RiskThresholds = DEFAULT_THRESHOLDS): RiskLevel {
  if (score >= thresholds.high) return 'high';
  if (score >= thresholds.medium) return 'medium';
  return 'low';
}

/** S1.2: low → Tier 1, medium and high → Tier 2. */
export function tierForLevel(level: RiskLevel): Tier {
  switch (level) {
    case 'low':
      return 1;
    case 'medium':
    case 'high':
      return 2;
    default: {
      const never: never = level;
      throw new SandboxInputError('E_SANDBOX_ASSESSMENT', `unknown risk level ${String(never)}`, {});
    }
  }
}

/** `SYMBIONT_DEFAULT_SANDBOX_TIER` (`[security] default_sandbox_tier`): `gvisor` makes Tier 2 the floor, `docker` Tier 1. */
export function floorTier(defaultSandboxTier: string): Tier {
  if (defaultSandboxTier === 'gvisor') return 2;
  if (defaultSandboxTier === 'docker') return 1;
  throw new SandboxInputError('E_SANDBOX_TIER', `sandbox: default tier must be gvisor or docker, got ${JSON.stringify(defaultSandboxTier)}`, {});
}

/** What a caller may ask for: `auto` (the score decides) or an explicit tier. */
export type TierRequest = 'auto' | Tier;

export function parseTierRequest(input: unknown): TierRequest {
  if (input === undefined || input === 'auto') return 'auto';
  if (input === 1 || input === '1') return 1;
  if (input === 2 || input === '2') return 2;
  throw new SandboxInputError('E_SANDBOX_TIER', `sandbox: tier must be auto, 1 or 2, got ${JSON.stringify(input) ?? String(input)}`, {});
}

export interface TierDecision {
  readonly score: number;
  readonly level: RiskLevel;
  /** The tier the score alone gives. */
  readonly riskTier: Tier;
  /** The tier the workload runs in: the highest of the risk tier, the floor and the request. */
  readonly tier: Tier;
  /** Why `tier` is above `riskTier`, if it is. */
  readonly raisedBy?: 'floor' | 'request';
}

/**
 * Chooses the tier: the score's tier, raised (never lowered) by the configured floor or by an
 * explicit request. A request for Tier 1 on a medium-risk workload still runs it in Tier 2.
 */
export function chooseTier(assessment: RiskAssessment, options: { thresholds?: RiskThresholds; floor?: Tier; request?: TierRequest } = {}): TierDecision {
  const score = riskScore(assessment);
  const level = riskLevel(score, options.thresholds);
  const riskTier = tierForLevel(level);
  const floor = options.floor ?? 1;
  const requested = options.request === undefined || options.request === 'auto' ? 1 : options.request;
  const tier = Math.max(riskTier, floor, requested) as Tier;
  if (tier === riskTier) return { score, level, riskTier, tier };
  return { score, level, riskTier, tier, raisedBy: floor === tier ? 'floor' : 'request' };
}
