import { SandboxInputError } from '../errors.js';

/** The seed's RiskAssessment (S1.1): what a workload touches and how far its code is trusted. */
export interface RiskAssessment {
  /** 0 = public, 1 = top secret. */
  readonly data_sensitivity: number;
  /** 0 = untrusted, 1 = verified. */
  readonly code_trust_level: number;
  /** Needs network access beyond the sandbox. */
  readonly network_access: boolean;
  /** Needs to write a filesystem. */
  readonly filesystem_access: boolean;
  /** Calls external services. */
  readonly external_apis: boolean;
}

const UNIT_FIELDS = ['data_sensitivity', 'code_trust_level'] as const;
const FLAG_FIELDS = ['network_access', 'filesystem_access', 'external_apis'] as const;
const ALL_FIELDS: readonly string[] = [...UNIT_FIELDS, ...FLAG_FIELDS];

/**
 * Validates an assessment from the outside (JSON, a bus request): every field present, the two
 * levels finite numbers in [0, 1], the three flags real booleans, nothing else. Anything else is
 * refused: a score computed from a guess would place a workload in a weaker tier than it needs.
 */
export function parseAssessment(input: unknown): RiskAssessment {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SandboxInputError('E_SANDBOX_ASSESSMENT', 'sandbox assessment: expected an object with data_sensitivity, code_trust_level, network_access, filesystem_access, external_apis', {});
  }
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!ALL_FIELDS.includes(key)) {
      throw new SandboxInputError('E_SANDBOX_ASSESSMENT', `sandbox assessment: unknown field "${key}"`, { field: key });
    }
  }
  for (const field of UNIT_FIELDS) {
    const value = record[field];
    if (value === undefined) throw new SandboxInputError('E_SANDBOX_ASSESSMENT', `sandbox assessment: ${field} is missing`, { field });
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
      throw new SandboxInputError('E_SANDBOX_ASSESSMENT', `sandbox assessment: ${field} must be a number from 0 to 1, got ${describe(value)}`, { field });
    }
  }
  for (const field of FLAG_FIELDS) {
    const value = record[field];
    if (value === undefined) throw new SandboxInputError('E_SANDBOX_ASSESSMENT', `sandbox assessment: ${field} is missing`, { field });
    if (typeof value !== 'boolean') {
      throw new SandboxInputError('E_SANDBOX_ASSESSMENT', `sandbox assessment: ${field} must be true or false, got ${describe(value)}`, { field });
    }
  }
  return {
    data_sensitivity: record['data_sensitivity'] as number,
    code_trust_level: record['code_trust_level'] as number,
    network_access: record['network_access'] as boolean,
    filesystem_access: record['filesystem_access'] as boolean,
    external_apis: record['external_apis'] as boolean,
  };
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return value === null ? 'null' : typeof value;
}

/**
 * The seed's formula (S1.1), term for term:
 * 0.4·data_sensitivity + 0.3·(1 − code_trust_level) + 0.1 per flag, capped at 1.0.
 * Accumulated in the seed's order, so scores at the thresholds compare as the seed's would.
 */
export function riskScore(a: RiskAssessment): number {
  const base = a.data_sensitivity * 0.4 + (1 - a.code_trust_level) * 0.3;
  const penalty = (a.network_access ? 0.1 : 0) + (a.filesystem_access ? 0.1 : 0) + (a.external_apis ? 0.1 : 0);
  return Math.min(base + penalty, 1);
}
