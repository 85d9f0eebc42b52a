/**
 * Settling a rotation whose outcome the holder does not know (issue 12): the new keys were
 * staged durably before `bulwark.keys.rotate` went out (`RotationStaging`), then the call failed
 * or timed out, or the process stopped before it stored them. The key manager may have committed
 * the rotation anyway (its reply lost): then its directory serves the new version, and a holder
 * that did not adopt it fails every handshake made to it. So the holder asks which it is:
 *
 * - the directory (root-signed, checked against the pinned root) serves the staged version with
 *   exactly the staged public keys: `adopt` (store them as the new version, switch);
 * - the directory serves that version (or a later one) with other keys: `conflict` (drop the
 *   staged keys, report: they were never certified and never will be);
 * - the directory still serves the current version: the key manager is asked (`keys.get`, over a
 *   session as the current version, which it still accepts while its directory has not moved):
 *   no such version: `absent` (send the same rotation again: same version, same keys; its proof
 *   of possession names the version, so it can never certify a second one); the version with the
 *   staged keys: `adopt` once the directory serves its entry (published just after the commit);
 *   with other keys: `conflict`.
 *
 * Anything else (the key manager unreachable, the entry not served in time) is an error and the
 * staged keys stay: the next check settles again.
 */
import type { Ed25519KeyPair, X25519KeyPair } from '@bulwark/crypto';
import type { Directory, DirectoryEntry } from '@bulwark/envelope';
import { BulwarkError } from '@bulwark/errors';
import type { KeyView } from './keys.js';

/** A rotation's new keys, staged before the key manager is asked to certify them. */
export interface StagedRotation {
  readonly version: number;
  readonly ed25519: Ed25519KeyPair;
  readonly x25519: X25519KeyPair;
  /** The new NATS user's raw 32-byte seed. */
  readonly natsRaw: Uint8Array;
}

/**
 * Where the holder keeps staged keys durably, under the same protection as its stored keys
 * (a `@bulwark/keystore` file store's pending slot: `pendingRotationSlot(store, principal)`).
 */
export interface RotationStaging {
  stage(keys: StagedRotation): Promise<void>;
  load(): Promise<StagedRotation | undefined>;
  drop(): Promise<void>;
}

export type Settlement =
  | { readonly kind: 'adopt'; readonly entry: DirectoryEntry }
  | { readonly kind: 'absent' }
  | { readonly kind: 'conflict'; readonly reason: string };

export interface SettleOptions {
  readonly principal: string;
  readonly staged: StagedRotation;
  readonly directory: Directory;
  /** `keys.get` of the principal as its current version; undefined when it is not in the key book (made by `bulwark init`). */
  readonly keyView: () => Promise<KeyView | undefined>;
  /** How long to wait for the directory to serve a version the key manager holds (default 5000 ms). */
  readonly entryWaitMs?: number;
}

const sameKey = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** What the directory says of the staged version: undefined while it still serves an earlier one. */
function fromEntry(entry: DirectoryEntry | undefined, staged: StagedRotation): Settlement | undefined {
  if (entry === undefined || entry.keyVersion < staged.version) return undefined;
  if (entry.keyVersion > staged.version) return { kind: 'conflict', reason: `the directory serves version ${entry.keyVersion}, past the staged version ${staged.version}` };
  if (sameKey(entry.ed25519PublicKey, staged.ed25519.publicKey) && sameKey(entry.x25519PublicKey, staged.x25519.publicKey)) return { kind: 'adopt', entry };
  return { kind: 'conflict', reason: `the directory's version ${staged.version} carries other keys than the staged ones` };
}

export async function settleRotation(options: SettleOptions): Promise<Settlement> {
  const { principal, staged, directory } = options;
  const served = fromEntry(directory.lookup(principal), staged);
  if (served !== undefined) return served;
  const view = await options.keyView();
  const held = view?.versions.find((v) => v.version === staged.version);
  if (held === undefined) return { kind: 'absent' };
  if (held.ed25519 !== b64(staged.ed25519.publicKey) || held.x25519 !== b64(staged.x25519.publicKey)) return { kind: 'conflict', reason: `the key manager's version ${staged.version} carries other keys than the staged ones` };
  // Committed with our keys: adopted only on the root-signed entry, which follows the commit.
  const deadline = Date.now() + (options.entryWaitMs ?? 5000);
  for (;;) {
    const now = fromEntry(directory.lookup(principal), staged);
    if (now !== undefined) return now;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new BulwarkError('E_ROTATION_UNSETTLED', `${principal}: the key manager holds version ${staged.version} with the staged keys, but the directory did not serve its entry within ${options.entryWaitMs ?? 5000} ms; settled again at the next check`, { principal, version: staged.version });
}
