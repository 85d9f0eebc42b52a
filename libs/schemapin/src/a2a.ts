/**
 * The v1.4 A2A verification context (protocol note §11): a delegation deeper than 3 hops
 * is a2a_scope_violation before anything else; after a normal verification, the provider
 * domain must be allowed by `trustedDomains` (empty means unrestricted; `*.x.com` matches
 * subdomains of x.com, not x.com itself).
 */
import { ErrorCode } from './errors.js';
import type { VerificationResult } from './verify.js';

export const MAX_DELEGATION_DEPTH = 3;

export interface A2AContext {
  readonly callerAgentId: string;
  readonly delegationDepth: number;
  readonly originatingDomain: string;
  readonly trustedDomains: readonly string[];
}

export function a2aAllows(trustedDomains: readonly string[], domain: string): boolean {
  if (trustedDomains.length === 0) return true;
  const d = domain.toLowerCase();
  return trustedDomains.some((pattern) => {
    const p = pattern.toLowerCase();
    if (p.startsWith('*.')) return d.endsWith(p.slice(1)) && d.length > p.length - 1;
    return d === p;
  });
}

/** Runs `verify` inside the A2A scope checks. */
export function verifyForA2A(domain: string, context: A2AContext, verify: () => VerificationResult): VerificationResult {
  if (!Number.isInteger(context.delegationDepth) || context.delegationDepth < 0 || context.delegationDepth > MAX_DELEGATION_DEPTH) {
    return { valid: false, domain, error_code: ErrorCode.a2aScopeViolation, error_message: `delegation depth ${context.delegationDepth} exceeds ${MAX_DELEGATION_DEPTH}` };
  }
  const result = verify();
  if (!result.valid) return result;
  if (!a2aAllows(context.trustedDomains, domain)) {
    return { valid: false, domain, error_code: ErrorCode.a2aScopeViolation, error_message: `domain ${domain} is not in the caller's trusted domains` };
  }
  return result;
}
