/**
 * Pinning keyed by `tool_id@domain` (seed S5.2), over the SDK verifier, and stricter:
 * - the pin is written only after the signature verified (never in the SDK's step 5);
 * - a pin holds the key fingerprint AND the tool's content hash (content.ts). The same key
 *   with a different content hash is `ToolChanged`: the tool is blocked until a reviewer
 *   approves the new version (the provider's `previous_hash` lineage is reported to them);
 * - pinning again with another key is an error (`KeyPinMismatch`), never a silent re-pin;
 * - modes: `automatic` pins on first verified use; `interactive` answers `PendingApproval`
 *   and pins only when a person approves; `strict` trusts only pre-provisioned pins
 *   (anything else is `UnknownProvider`).
 * The verdicts extend S5.2's Trusted / SignatureInvalid / UnknownProvider.
 */
import { canonicalParts, type CanonicalParts } from './canonical.js';
import { contentHash } from './content.js';
import { BulwarkError } from '@bulwark/errors';
import { ErrorCode } from './errors.js';
import type { KeyPinStore, PinCheck, PinEntry } from './pin-store.js';
import type { RevocationDocument } from './revocation.js';
import { verifySchemaOffline, type PinLookup, type VerificationResult, type VerifyOptions } from './verify.js';

export type PinMode = 'automatic' | 'interactive' | 'strict';

export type Verdict = 'Trusted' | 'SignatureInvalid' | 'UnknownProvider' | 'KeyPinMismatch' | 'KeyRevoked' | 'ToolChanged' | 'PendingApproval' | 'Invalid';

/** The SchemaPin fields of a signed tool (the SDK's demo form `{ schema, signature, ... }`). */
export interface SignedTool {
  readonly schema: unknown;
  readonly signature: string;
  readonly signed_at?: string;
  readonly expires_at?: string;
  readonly canonicalization?: string;
  readonly schema_version?: string;
  /** `sha256:<hex>` schemapin-v1 hash of the version this one replaces. */
  readonly previous_hash?: string;
}

export interface ToolCheckInput {
  readonly toolId: string;
  readonly domain: string;
  readonly signed: SignedTool;
  readonly discovery: unknown;
  readonly revocation: RevocationDocument | null;
  readonly mode?: PinMode;
  /** Record the content hash in new pins and check it on existing ones that have it (default true). */
  readonly pinContent?: boolean;
  readonly verify?: Omit<VerifyOptions, 'pinning' | 'canonicalization' | 'expiresAt'>;
}

export interface ToolCheck {
  readonly verdict: Verdict;
  /** The SDK's result; for ToolChanged/PendingApproval/UnknownProvider `valid` is false with our error_code. */
  readonly result: VerificationResult;
  readonly contentHash: string | null;
  /** `sha256:<hex>` of the schemapin-v1 canonical schema. */
  readonly schemaHash: string | null;
  /** The entry to write when the check passed and nothing was pinned yet (the caller writes it). */
  readonly newPin: PinEntry | null;
  /** For ToolChanged: whether the provider's previous_hash names the pinned version. */
  readonly lineage?: 'continues' | 'broken' | 'absent';
  readonly pinned?: PinEntry;
}

export const ToolErrorCode = { toolChanged: 'tool_changed', pendingApproval: 'pending_approval', unknownProvider: 'unknown_provider' } as const;

function verdictOf(code: string | undefined): Verdict {
  switch (code) {
    case ErrorCode.signatureInvalid:
      return 'SignatureInvalid';
    case ErrorCode.keyPinMismatch:
      return 'KeyPinMismatch';
    case ErrorCode.keyRevoked:
      return 'KeyRevoked';
    case ErrorCode.keyNotFound:
    case ErrorCode.discoveryFetchFailed:
    case ErrorCode.discoveryInvalid:
    case ErrorCode.domainMismatch:
      return 'UnknownProvider';
    default:
      return 'Invalid';
  }
}

function blocked(result: VerificationResult, code: string, message: string): VerificationResult {
  const { key_pinning: _kp, ...rest } = result;
  return { ...rest, valid: false, error_code: code as ErrorCode, error_message: message };
}

/** Verifies a signed tool against `pins` (read only: the caller persists `newPin`). */
export function checkTool(pins: KeyPinStore, input: ToolCheckInput): ToolCheck {
  const mode = input.mode ?? 'automatic';
  const pinContent = input.pinContent ?? true;
  const { toolId, domain, signed } = input;
  const existing = pins.get(toolId, domain);
  // The SDK verifier sees only this tool's pin, read only: it compares, we write (newPin).
  const pinned = existing?.fingerprint;
  const compare = (_t: string, _d: string, fingerprint: string): PinCheck => (pinned === undefined ? 'first_use' : pinned === fingerprint ? 'pinned' : 'changed');
  const view: PinLookup = { check: compare, checkAndPin: compare };
  // One canonicalization pass serves the signature and, when it is needed, the content hash;
  // if it fails, the verifier reports it in the SDK's order (after the canonicalization id and
  // the key checks). Member texts are kept only when the content hash will be computed: not
  // for a pinned version that is unchanged (its schema hash is in the pin).
  const contentNeeded = pinContent && !(existing?.contentHash !== undefined && existing.schemaHash !== undefined);
  let parts: CanonicalParts | undefined;
  try {
    parts = canonicalParts(signed.schema, undefined, contentNeeded);
  } catch {
    parts = undefined;
  }
  const result = verifySchemaOffline(signed.schema, signed.signature, domain, toolId, input.discovery, input.revocation, view, {
    ...input.verify,
    ...(parts === undefined ? {} : { canonical: parts.text }),
    pinning: 'after_verify',
    canonicalization: signed.canonicalization ?? null,
    expiresAt: signed.expires_at ?? null,
  });
  if (!result.valid) return { verdict: verdictOf(result.error_code), result, contentHash: null, schemaHash: null, newPin: null };
  const schemaHash = result.schema_hash!;
  // The schemapin-v1 hash determines the content, so an unchanged pinned version needs no second hash.
  let content: string;
  try {
    content = existing?.contentHash !== undefined && existing.schemaHash === schemaHash ? existing.contentHash : contentHash(signed.schema, contentNeeded ? parts : undefined);
  } catch (err) {
    // A lone surrogate signs (the SDK's text escapes it) but has no RFC 8785 form to pin.
    if (!(err instanceof BulwarkError)) throw err;
    const why = `${toolId}@${domain}: the tool's content has no RFC 8785 form to pin: ${err.message}`;
    return { verdict: 'Invalid', result: blocked(result, ErrorCode.schemaCanonicalizationFailed, why), contentHash: null, schemaHash, newPin: null };
  }
  const fingerprint = result.key_fingerprint!;
  if (existing === undefined) {
    const newPin: PinEntry = pinContent ? { fingerprint, contentHash: content, schemaHash } : { fingerprint };
    if (mode === 'strict') {
      return { verdict: 'UnknownProvider', result: blocked(result, ToolErrorCode.unknownProvider, `strict mode: ${toolId}@${domain} has no provisioned pin`), contentHash: content, schemaHash, newPin: null };
    }
    if (mode === 'interactive') {
      return { verdict: 'PendingApproval', result: blocked(result, ToolErrorCode.pendingApproval, `first use of ${toolId}@${domain} waits for a person to approve its key`), contentHash: content, schemaHash, newPin };
    }
    return { verdict: 'Trusted', result, contentHash: content, schemaHash, newPin };
  }
  if (pinContent && existing.contentHash !== undefined && existing.contentHash !== content) {
    const lineage = signed.previous_hash === undefined ? 'absent' : existing.schemaHash !== undefined && signed.previous_hash === existing.schemaHash ? 'continues' : 'broken';
    return {
      verdict: 'ToolChanged',
      result: blocked(result, ToolErrorCode.toolChanged, `${toolId}@${domain} changed under the same key (content ${content}, pinned ${existing.contentHash}); blocked until a reviewer approves`),
      contentHash: content,
      schemaHash,
      newPin: null,
      lineage,
      pinned: existing,
    };
  }
  // Pinned by key only (the SDK's form): record the content now if asked, so later changes show.
  const newPin = pinContent && existing.contentHash === undefined ? { fingerprint, contentHash: content, schemaHash } : null;
  return { verdict: 'Trusted', result, contentHash: content, schemaHash, newPin };
}
