/**
 * The key-version model (DESIGN §8, issue 12), after Vault's transit engine: every principal
 * key has numbered versions, each in one state, and a `minVerifyVersion` below which no
 * version verifies whatever its state says. Pure and immutable: every transition takes a key
 * and returns a new one, or throws `KeyLifecycleError` and changes nothing. The service runs
 * the same transitions twice: once to check a command before it becomes a ledger event, and
 * again when the committed event comes back (the state is what the ledger says, never what a
 * command hoped).
 *
 * States and transitions:
 *
 * | from \ to        | active | verify_only | disabled | revoked | pending_deletion | deleted |
 * |------------------|--------|-------------|----------|---------|------------------|---------|
 * | active           |   —    | rotate      | disable  | revoke  |        —         |    —    |
 * | verify_only      |   —    |     —       | disable  | revoke  | schedule         |    —    |
 * | disabled         | enable | enable      |    —     | revoke  | schedule         |    —    |
 * | revoked          |   —    |     —       |    —     |    —    | schedule         |    —    |
 *
 * (`enable` returns to what the version was: active only if no newer version exists since;
 * `cancel` returns to verify-only, disabled, or revoked, whichever it was.)
 * | pending_deletion |   —    | cancel      | cancel   | revoke  |        —         | destroy (window over) |
 * | deleted          | terminal                                                                |
 *
 * - Revocation is irreversible and carries a reason (RFC 5280 §5.3.1 names): once a version
 *   has a revocation, no transition removes it (a scheduled deletion of a revoked version is
 *   cancelled back to revoked). Revoking version v raises `minVerifyVersion` to v + 1: every
 *   older version stops verifying too (a compromise of v says nothing good about v − 1).
 * - An active version is never scheduled for deletion (rotate first), and the deletion
 *   window is 7 to 30 days (a mistake can be undone inside it).
 * - `minVerifyVersion` only rises; lowering it would bring old keys back.
 */
import { KeyLifecycleError } from './errors.js';

export const KEY_STATES = ['active', 'verify_only', 'disabled', 'revoked', 'pending_deletion', 'deleted'] as const;
export type KeyState = (typeof KEY_STATES)[number];

export const REVOCATION_REASONS = ['key_compromise', 'superseded', 'cessation_of_operation', 'privilege_withdrawn'] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export const MIN_DELETION_DAYS = 7;
export const MAX_DELETION_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

/** The public half of one version: what the directory entry certifies. */
export interface VersionKeys {
  /** base64 of the 32-byte Ed25519 public key. */
  readonly ed25519: string;
  /** base64 of the 32-byte X25519 public key. */
  readonly x25519: string;
}

export interface Revocation {
  readonly reason: RevocationReason;
  /** Unix ms. */
  readonly at: number;
}

export interface KeyVersion {
  readonly version: number;
  readonly state: KeyState;
  readonly keys: VersionKeys;
  /** Unix ms. */
  readonly created: number;
  /** Present once revoked, forever. */
  readonly revocation?: Revocation;
  /** For `disabled` and `pending_deletion`: the state `enable` / `cancelDeletion` returns to. */
  readonly resumeState?: 'active' | 'verify_only' | 'disabled' | 'revoked';
  /** For `pending_deletion`: when the private key may be destroyed (Unix ms). */
  readonly deleteAfter?: number;
}

/** One principal's key: `svc.policy`, `agent.<uuid>`, `analyst.<name>`. */
export interface PrincipalKey {
  readonly id: string;
  /** Ascending by version, versions 1..n without holes. */
  readonly versions: readonly KeyVersion[];
  readonly minVerifyVersion: number;
}

function fail(code: string, message: string, context: Record<string, unknown>): never {
  throw new KeyLifecycleError(code, message, context);
}

function checkKeys(id: string, keys: VersionKeys): void {
  const ok = (b64: unknown): boolean => typeof b64 === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(b64) && Buffer.from(b64, 'base64').length === 32;
  if (!ok(keys.ed25519) || !ok(keys.x25519)) fail('E_KEY_MATERIAL', `${id}: a key version needs the base64 of a 32-byte Ed25519 and a 32-byte X25519 public key`, { id });
}

function checkTime(id: string, at: number): void {
  if (!Number.isSafeInteger(at) || at < 0) fail('E_KEY_TIME', `${id}: time ${String(at)} is not a Unix millisecond count`, { id });
}

/** The version, or `E_KEY_UNKNOWN`. */
export function versionOf(key: PrincipalKey, version: number): KeyVersion {
  const found = Number.isSafeInteger(version) ? key.versions[version - 1] : undefined;
  if (found === undefined) fail('E_KEY_UNKNOWN', `${key.id} has no key version ${String(version)} (versions 1..${key.versions.length})`, { id: key.id, version });
  return found;
}

/** The version a principal signs and handshakes with now; undefined when none is usable (revoked, disabled). */
export function activeVersion(key: PrincipalKey): KeyVersion | undefined {
  const latest = key.versions[key.versions.length - 1];
  return latest !== undefined && latest.state === 'active' && latest.version >= key.minVerifyVersion ? latest : undefined;
}

/** May a signature or frame made under `version` be accepted? Only active and verify-only versions at or above the minimum. */
export function canVerify(key: PrincipalKey, version: number): boolean {
  const v = key.versions[version - 1];
  if (v === undefined || v.revocation !== undefined || version < key.minVerifyVersion) return false;
  return v.state === 'active' || v.state === 'verify_only';
}

/** True for a version that will never verify again: revoked, below the minimum, or deleted. Disabled is not final. */
export function isFinallyRefused(key: PrincipalKey, version: number): boolean {
  const v = key.versions[version - 1];
  return v === undefined || v.revocation !== undefined || version < key.minVerifyVersion || v.state === 'deleted';
}

function replace(key: PrincipalKey, next: KeyVersion): PrincipalKey {
  return { ...key, versions: key.versions.map((v) => (v.version === next.version ? next : v)) };
}

/** Version 1 of a new principal key, active. */
export function generateKey(id: string, keys: VersionKeys, at: number): PrincipalKey {
  checkKeys(id, keys);
  checkTime(id, at);
  return { id, versions: [{ version: 1, state: 'active', keys, created: at }], minVerifyVersion: 1 };
}

/**
 * A new active version (latest + 1). The previous active version becomes verify-only (old
 * signatures still verify); a disabled one will come back as verify-only. The same public keys
 * as any earlier version are refused: a rotation that changes nothing is no rotation.
 */
export function rotateKey(key: PrincipalKey, keys: VersionKeys, at: number): PrincipalKey {
  checkKeys(key.id, keys);
  checkTime(key.id, at);
  if (key.versions.some((v) => v.keys.ed25519 === keys.ed25519 || v.keys.x25519 === keys.x25519)) {
    fail('E_KEY_DUPLICATE', `${key.id}: rotation to a public key an earlier version already had`, { id: key.id });
  }
  const version = key.versions.length + 1;
  const demoted = key.versions.map((v): KeyVersion => {
    if (v.state === 'active') return { ...v, state: 'verify_only' };
    if (v.resumeState === 'active') return { ...v, resumeState: 'verify_only' };
    return v;
  });
  return { ...key, versions: [...demoted, { version, state: 'active', keys, created: at }] };
}

/** Suspends a version (reversible): an active or verify-only one. */
export function disableVersion(key: PrincipalKey, version: number): PrincipalKey {
  const v = versionOf(key, version);
  if (v.state !== 'active' && v.state !== 'verify_only') fail('E_KEY_TRANSITION', `${key.id} v${version} is ${v.state}; only an active or verify-only version can be disabled`, { id: key.id, version, state: v.state });
  return replace(key, { ...v, state: 'disabled', resumeState: v.state });
}

/** Undoes `disableVersion`: back to what the version was (verify-only if it was active and a newer version exists since). */
export function enableVersion(key: PrincipalKey, version: number): PrincipalKey {
  const v = versionOf(key, version);
  if (v.state !== 'disabled') fail('E_KEY_TRANSITION', `${key.id} v${version} is ${v.state}, not disabled`, { id: key.id, version, state: v.state });
  if (version < key.minVerifyVersion) fail('E_KEY_TRANSITION', `${key.id} v${version} is below the minimum verify version ${key.minVerifyVersion}; it cannot be enabled`, { id: key.id, version });
  const { resumeState, ...rest } = v;
  return replace(key, { ...rest, state: resumeState === 'active' ? 'active' : 'verify_only' });
}

/**
 * Revokes a version for good, with its reason, and raises `minVerifyVersion` to version + 1.
 * Any state but revoked and deleted (a pending deletion is revoked too: it must not come back
 * by a cancel).
 */
export function revokeVersion(key: PrincipalKey, version: number, reason: RevocationReason, at: number): PrincipalKey {
  const v = versionOf(key, version);
  checkTime(key.id, at);
  if (!(REVOCATION_REASONS as readonly string[]).includes(reason)) fail('E_KEY_REASON', `${key.id}: ${JSON.stringify(String(reason))} is not a revocation reason (${REVOCATION_REASONS.join(', ')})`, { id: key.id });
  if (v.revocation !== undefined) fail('E_KEY_TRANSITION', `${key.id} v${version} is already revoked (${v.revocation.reason})`, { id: key.id, version });
  if (v.state === 'deleted') fail('E_KEY_TRANSITION', `${key.id} v${version} is deleted`, { id: key.id, version });
  const { resumeState: _r, deleteAfter: _d, ...rest } = v;
  const revoked = replace(key, { ...rest, state: 'revoked', revocation: { reason, at } });
  return { ...revoked, minVerifyVersion: Math.max(key.minVerifyVersion, version + 1) };
}

/** Raises the minimum verify version (never lowers it); at most latest + 1 (then nothing verifies until a rotation). */
export function raiseMinVerifyVersion(key: PrincipalKey, min: number): PrincipalKey {
  if (!Number.isSafeInteger(min) || min < key.minVerifyVersion || min > key.versions.length + 1) {
    fail('E_KEY_TRANSITION', `${key.id}: minimum verify version ${String(min)} must be between the current ${key.minVerifyVersion} and ${key.versions.length + 1}; it never goes down`, { id: key.id, min });
  }
  return { ...key, minVerifyVersion: min };
}

/**
 * Schedules a version's private key for destruction after 7 to 30 days (cancellable until
 * then): a verify-only, revoked, or disabled version (not one disabled while active: rotate first).
 */
export function scheduleDeletion(key: PrincipalKey, version: number, days: number, at: number): PrincipalKey {
  const v = versionOf(key, version);
  checkTime(key.id, at);
  if (!Number.isInteger(days) || days < MIN_DELETION_DAYS || days > MAX_DELETION_DAYS) {
    fail('E_KEY_TRANSITION', `${key.id} v${version}: the deletion window is ${MIN_DELETION_DAYS} to ${MAX_DELETION_DAYS} days, not ${String(days)}`, { id: key.id, version, days });
  }
  const fromActive = v.state === 'active' || (v.state === 'disabled' && v.resumeState === 'active');
  if (fromActive || (v.state !== 'verify_only' && v.state !== 'disabled' && v.state !== 'revoked')) {
    fail('E_KEY_TRANSITION', `${key.id} v${version} is ${v.state}; only a verify-only, disabled or revoked version can be scheduled for deletion${fromActive ? ' (rotate first)' : ''}`, { id: key.id, version, state: v.state });
  }
  const { resumeState: _r, ...rest } = v;
  return replace(key, { ...rest, state: 'pending_deletion', resumeState: v.state === 'disabled' ? 'disabled' : v.state, deleteAfter: at + days * DAY_MS });
}

/** Cancels a scheduled deletion: back to the state before it (a revoked version stays revoked; a disabled one is disabled again). */
export function cancelDeletion(key: PrincipalKey, version: number): PrincipalKey {
  const v = versionOf(key, version);
  if (v.state !== 'pending_deletion') fail('E_KEY_TRANSITION', `${key.id} v${version} is ${v.state}, not pending deletion`, { id: key.id, version, state: v.state });
  const { resumeState, deleteAfter: _d, ...rest } = v;
  if (v.revocation !== undefined) return replace(key, { ...rest, state: 'revoked' });
  if (resumeState === 'disabled') return replace(key, { ...rest, state: 'disabled', resumeState: 'verify_only' });
  return replace(key, { ...rest, state: 'verify_only' });
}

/** Destroys a pending deletion once its window is over (the service then removes the private key). */
export function destroyVersion(key: PrincipalKey, version: number, at: number): PrincipalKey {
  const v = versionOf(key, version);
  checkTime(key.id, at);
  if (v.state !== 'pending_deletion' || v.deleteAfter === undefined) fail('E_KEY_TRANSITION', `${key.id} v${version} is ${v.state}, not pending deletion`, { id: key.id, version, state: v.state });
  if (at < v.deleteAfter) fail('E_KEY_TRANSITION', `${key.id} v${version}: its deletion window ends at ${new Date(v.deleteAfter).toISOString()}`, { id: key.id, version });
  const { resumeState: _r, deleteAfter: _d, ...rest } = v;
  return replace(key, { ...rest, state: 'deleted' });
}

/** When the active version is due to be rotated (its creation + the interval, in ms); undefined without an active version. */
export function rotateAfter(key: PrincipalKey, intervalMs: number): number | undefined {
  const active = activeVersion(key);
  return active === undefined ? undefined : active.created + intervalMs;
}

/** Is a rotation due (`key_rotation_interval_days`, default 90)? The active version's age against the interval. */
export function rotationDue(key: PrincipalKey, intervalDays: number, now: number): boolean {
  const after = rotateAfter(key, intervalDays * DAY_MS);
  return after !== undefined && now >= after;
}
