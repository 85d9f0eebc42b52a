/**
 * Tool use (issue 13): before any tool runs, the tool is checked with the schemapin service
 * (`bulwark.tools.verify`: signature by a trusted key, key and content pins) and the action
 * with the policy service (`invoke(<tool>)`), both at once. Either failing denies: an
 * unverified tool is a Deny naming the verdict whatever the policy says, and a missing, late
 * or malformed answer from either service is a Deny.
 */
import { failureDeny, permits } from './decision.js';
import type { AllowDecision, AllowWithConditionsDecision, PolicyDecision } from './policy-wire.js';

/** The signed tool as the provider ships it (SchemaPin's `{ schema, signature, ... }`). */
export interface SignedToolInput {
  readonly schema: unknown;
  readonly signature: string;
  readonly expires_at?: string;
  readonly canonicalization?: string;
  readonly schema_version?: string;
  readonly previous_hash?: string;
}

export interface ToolUseInput {
  readonly toolId: string;
  readonly domain: string;
  readonly signed: SignedToolInput;
  /** The name the policy sees (`invoke(<tool>)`); default the tool id. */
  readonly tool?: string;
  readonly context?: { readonly [name: string]: unknown };
  readonly classes?: readonly string[];
}

/** The schemapin service's verdict, as `bulwark.tools.verify` answers it. */
export interface ToolVerdict {
  readonly verdict: 'Trusted' | 'SignatureInvalid' | 'UnknownProvider' | 'KeyPinMismatch' | 'KeyRevoked' | 'ToolChanged' | 'PendingApproval' | 'Invalid' | 'Unavailable';
  readonly valid: boolean;
  readonly error_code: string | null;
  readonly error_message?: string;
  readonly key_fingerprint?: string | null;
  readonly content_hash?: string | null;
  readonly review_id?: string;
}

/** The reply checked strictly: only `{ verdict: 'Trusted', valid: true }` lets a tool through. */
export function readToolVerdict(value: unknown): ToolVerdict {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return unavailable('the reply is not a JSON object');
  const v = value as Record<string, unknown>;
  if (typeof v['verdict'] !== 'string' || typeof v['valid'] !== 'boolean') return unavailable('the reply has no verdict');
  if (v['valid'] === true && v['verdict'] !== 'Trusted') return unavailable(`a valid reply with verdict ${String(v['verdict'])}`);
  return value as ToolVerdict;
}

export function unavailable(why: string): ToolVerdict {
  return { verdict: 'Unavailable', valid: false, error_code: 'E_TOOLS_UNAVAILABLE', error_message: why };
}

/** Combines the two answers: the tool must be Trusted and the policy must permit. */
export function toolUseDecision(input: ToolUseInput, verdict: ToolVerdict, decision: PolicyDecision): PolicyDecision {
  if (!(verdict.valid && verdict.verdict === 'Trusted')) {
    return failureDeny(`E_TOOL_${verdict.verdict.toUpperCase()}`, `tool ${input.toolId}@${input.domain} is not trusted: ${verdict.verdict}${verdict.error_code ? ` (${verdict.error_code}${verdict.error_message ? `: ${verdict.error_message}` : ''})` : ''}`);
  }
  return decision;
}

/** What a checked tool invocation gave: the tool ran (its result), or it did not (the decision says why). */
export type ToolInvocation<T> = { readonly ran: true; readonly decision: AllowDecision | AllowWithConditionsDecision; readonly result: T } | { readonly ran: false; readonly decision: PolicyDecision };

/** Runs the tool only after `check` permitted it (Allow, or AllowWithConditions: the conditions go to `run`). */
export async function runIfPermitted<T>(check: () => Promise<PolicyDecision>, run: (decision: AllowDecision | AllowWithConditionsDecision) => Promise<T> | T): Promise<ToolInvocation<T>> {
  const decision = await check();
  if (!permits(decision)) return { ran: false, decision };
  const allowed = decision as AllowDecision | AllowWithConditionsDecision;
  return { ran: true, decision: allowed, result: await run(allowed) };
}
