import type { CryptoProvider } from '@bulwark/crypto';
import { lengthPrefixed, textEncoder } from './bytes.js';
import { EnvelopeError } from './errors.js';
import { decodeId, encodeId } from './ids.js';
import type { Clock } from './options.js';

/**
 * A principal as the key-manager publishes it, signed by the root Ed25519 key (DESIGN §3, §8).
 * Times are Unix milliseconds; the entry is valid for notBefore <= now < notAfter, unless revoked.
 */
export interface DirectoryEntry {
  readonly id: string;
  readonly ed25519PublicKey: Uint8Array;
  readonly x25519PublicKey: Uint8Array;
  /** Increases with every rotation; a lower version never replaces a higher one. */
  readonly keyVersion: number;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly revoked: boolean;
}

export interface SignedDirectoryEntry {
  readonly entry: DirectoryEntry;
  /** Ed25519 by the root key over `encodeDirectoryEntry(entry)`. */
  readonly signature: Uint8Array;
}

/**
 * What sessions, sealed streams and channels ask about a peer. `lookup` returns only entries
 * that verified against the pinned root key and are valid now (not revoked, not expired);
 * anything else is `undefined`. It is synchronous: the directory is held in memory
 * (`TrustedDirectory`, fed by the bus from NATS KV), so the per-frame check costs a map lookup.
 */
export interface Directory {
  lookup(id: string): DirectoryEntry | undefined;
  /**
   * The entry a key rotation of `id` replaced a moment ago (a higher, unrevoked version), while
   * its short grace lasts: sealed receivers accept frames `id` sealed under it before it
   * switched (in flight on a stream). Undefined when there is none (optional: none at all).
   */
  superseded?(id: string): DirectoryEntry | undefined;
}

const ENTRY_TAG = lengthPrefixed(textEncoder.encode('bulwark/directory-entry/v1'));
const KEY_LENGTH = 32;
const SIGNATURE_LENGTH = 64;
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/**
 * Canonical bytes of an entry, the exact input of the root signature. Fixed order, explicit
 * lengths, little-endian integers (README "Directory entry encoding"):
 *   tag (u8 len + "bulwark/directory-entry/v1") | id (u8 len + ASCII) | ed25519 (u8 32 + 32)
 *   | x25519 (u8 32 + 32) | key version u32 | not_before u64 ms | not_after u64 ms | revoked u8 (0|1)
 */
export function encodeDirectoryEntry(entry: DirectoryEntry): Uint8Array {
  checkEntry(entry);
  const id = lengthPrefixed(encodeId(entry.id, 'directory entry id'));
  const out = new Uint8Array(ENTRY_TAG.length + id.length + 2 * (1 + KEY_LENGTH) + 4 + 8 + 8 + 1);
  const view = new DataView(out.buffer);
  let at = 0;
  out.set(ENTRY_TAG, at);
  at += ENTRY_TAG.length;
  out.set(id, at);
  at += id.length;
  for (const key of [entry.ed25519PublicKey, entry.x25519PublicKey]) {
    out[at++] = KEY_LENGTH;
    out.set(key, at);
    at += KEY_LENGTH;
  }
  view.setUint32(at, entry.keyVersion, true);
  view.setBigUint64(at + 4, BigInt(entry.notBefore), true);
  view.setBigUint64(at + 12, BigInt(entry.notAfter), true);
  out[at + 20] = entry.revoked ? 1 : 0;
  return out;
}

/** The inverse of `encodeDirectoryEntry`; throws E_ENTRY_SHAPE on any deviation (so re-encoding is identical). */
export function decodeDirectoryEntry(bytes: Uint8Array): DirectoryEntry {
  const fail = (why: string): EnvelopeError => new EnvelopeError('E_ENTRY_SHAPE', `directory entry: ${why}`, { length: bytes.length });
  if (bytes.length < ENTRY_TAG.length + 2 || !ENTRY_TAG.every((b, i) => bytes[i] === b)) throw fail('missing the bulwark/directory-entry/v1 tag');
  let at = ENTRY_TAG.length;
  const idLength = bytes[at]!;
  const id = decodeId(bytes, at + 1, idLength);
  if (id === undefined) throw fail('bad id');
  at += 1 + idLength;
  if (bytes.length !== at + 2 * (1 + KEY_LENGTH) + 21) throw fail(`length ${bytes.length} does not fit an entry for '${id}'`);
  const keys: Uint8Array[] = [];
  for (let i = 0; i < 2; i++) {
    if (bytes[at] !== KEY_LENGTH) throw fail('key length is not 32');
    keys.push(bytes.slice(at + 1, at + 1 + KEY_LENGTH));
    at += 1 + KEY_LENGTH;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const notBefore = view.getBigUint64(at + 4, true);
  const notAfter = view.getBigUint64(at + 12, true);
  const revoked = bytes[at + 20];
  if (notBefore > BigInt(MAX_TIME) || notAfter > BigInt(MAX_TIME)) throw fail('validity beyond 2^53 ms');
  if (revoked !== 0 && revoked !== 1) throw fail('revoked flag is not 0 or 1');
  const entry: DirectoryEntry = {
    id,
    ed25519PublicKey: keys[0]!,
    x25519PublicKey: keys[1]!,
    keyVersion: view.getUint32(at, true),
    notBefore: Number(notBefore),
    notAfter: Number(notAfter),
    revoked: revoked === 1,
  };
  checkEntry(entry, fail);
  return entry;
}

export function signDirectoryEntry(provider: CryptoProvider, rootSecretKey: Uint8Array, entry: DirectoryEntry): SignedDirectoryEntry {
  return { entry, signature: provider.ed25519.sign(rootSecretKey, encodeDirectoryEntry(entry)) };
}

/** Wire form of a signed entry (what the bus stores in KV): u16 LE entry length | entry | 64-byte signature. */
export function encodeSignedDirectoryEntry(signed: SignedDirectoryEntry): Uint8Array {
  const entry = encodeDirectoryEntry(signed.entry);
  if (signed.signature.length !== SIGNATURE_LENGTH) throw new EnvelopeError('E_ENTRY_SHAPE', `directory entry '${signed.entry.id}': signature is not 64 bytes`, {});
  const out = new Uint8Array(2 + entry.length + SIGNATURE_LENGTH);
  new DataView(out.buffer).setUint16(0, entry.length, true);
  out.set(entry, 2);
  out.set(signed.signature, 2 + entry.length);
  return out;
}

export function decodeSignedDirectoryEntry(bytes: Uint8Array): SignedDirectoryEntry {
  if (bytes.length < 2) throw new EnvelopeError('E_ENTRY_SHAPE', 'signed directory entry: shorter than its length prefix', {});
  const entryLength = bytes[0]! | (bytes[1]! << 8);
  if (bytes.length !== 2 + entryLength + SIGNATURE_LENGTH) {
    throw new EnvelopeError('E_ENTRY_SHAPE', `signed directory entry: ${bytes.length} bytes, expected ${2 + entryLength + SIGNATURE_LENGTH}`, {});
  }
  return { entry: decodeDirectoryEntry(bytes.subarray(2, 2 + entryLength)), signature: bytes.slice(2 + entryLength) };
}

export type EntryRejectionReason =
  | 'E_ENTRY_SHAPE'
  | 'E_ENTRY_SIGNATURE'
  | 'E_ENTRY_NOT_YET_VALID'
  | 'E_ENTRY_EXPIRED'
  | 'E_ENTRY_REVOKED'
  | 'E_ENTRY_ROLLBACK';

export type EntryVerdict =
  | { readonly ok: true; readonly entry: DirectoryEntry }
  | { readonly ok: false; readonly reason: EntryRejectionReason; readonly detail: string };

function entryRejection(reason: EntryRejectionReason, detail: string): EntryVerdict {
  return { ok: false, reason, detail };
}

/** Signature under the pinned root key only; validity in time is checked separately. */
function verifySignature(provider: CryptoProvider, rootPublicKey: Uint8Array, signed: SignedDirectoryEntry): EntryVerdict {
  let encoded: Uint8Array;
  try {
    encoded = encodeDirectoryEntry(signed.entry);
  } catch (error) {
    return entryRejection('E_ENTRY_SHAPE', error instanceof Error ? error.message : 'malformed entry');
  }
  if (!provider.ed25519.verify(rootPublicKey, encoded, signed.signature)) {
    return entryRejection('E_ENTRY_SIGNATURE', `directory entry '${signed.entry.id}' is not signed by the root key`);
  }
  return { ok: true, entry: signed.entry };
}

function checkValidity(entry: DirectoryEntry, now: number): EntryVerdict {
  if (entry.revoked) return entryRejection('E_ENTRY_REVOKED', `directory entry '${entry.id}' v${entry.keyVersion} is revoked`);
  if (now < entry.notBefore) return entryRejection('E_ENTRY_NOT_YET_VALID', `directory entry '${entry.id}' is valid from ${entry.notBefore}, now is ${now}`);
  if (now >= entry.notAfter) return entryRejection('E_ENTRY_EXPIRED', `directory entry '${entry.id}' expired at ${entry.notAfter}, now is ${now}`);
  return { ok: true, entry };
}

/** Accept an entry only if the pinned root key signed it and it is valid at `now`. */
export function verifyDirectoryEntry(provider: CryptoProvider, rootPublicKey: Uint8Array, signed: SignedDirectoryEntry, now: number): EntryVerdict {
  const signature = verifySignature(provider, rootPublicKey, signed);
  return signature.ok ? checkValidity(signature.entry, now) : signature;
}

export interface TrustedDirectoryOptions {
  readonly provider: CryptoProvider;
  /** The root Ed25519 public key, pinned from configuration: the only key trusted to sign entries. */
  readonly rootPublicKey: Uint8Array;
  readonly clock?: Clock;
}

/**
 * The in-memory directory: `put` admits signed entries (signature checked once, on the way in),
 * `lookup` serves the ones valid at the moment of the lookup. Revocation is an entry like any
 * other (revoked = true), and a lower key version or an un-revocation never replaces what is held.
 */
export class TrustedDirectory implements Directory {
  readonly #provider: CryptoProvider;
  readonly #root: Uint8Array;
  readonly #clock: Clock;
  readonly #entries = new Map<string, DirectoryEntry>();

  constructor(options: TrustedDirectoryOptions) {
    if (options.rootPublicKey.length !== KEY_LENGTH) throw new EnvelopeError('E_ENTRY_SHAPE', 'trusted directory: root public key is not 32 bytes', {});
    this.#provider = options.provider;
    this.#root = options.rootPublicKey.slice();
    this.#clock = options.clock ?? Date.now;
  }

  /** Admit an entry from the wire (bytes from `encodeSignedDirectoryEntry`) or already decoded. */
  put(signed: SignedDirectoryEntry | Uint8Array): EntryVerdict {
    if (signed instanceof Uint8Array) {
      try {
        signed = decodeSignedDirectoryEntry(signed);
      } catch (error) {
        return entryRejection('E_ENTRY_SHAPE', error instanceof Error ? error.message : 'malformed entry');
      }
    }
    const verdict = verifySignature(this.#provider, this.#root, signed);
    if (!verdict.ok) return verdict;
    const entry = verdict.entry;
    const held = this.#entries.get(entry.id);
    if (held !== undefined) {
      const older = entry.keyVersion < held.keyVersion;
      const sameVersion = entry.keyVersion === held.keyVersion;
      const keysDiffer = sameVersion && !(this.#provider.equal(entry.x25519PublicKey, held.x25519PublicKey) && this.#provider.equal(entry.ed25519PublicKey, held.ed25519PublicKey));
      if (older || keysDiffer || (sameVersion && held.revoked && !entry.revoked)) {
        return entryRejection('E_ENTRY_ROLLBACK', `directory entry '${entry.id}' v${entry.keyVersion}${entry.revoked ? ' (revoked)' : ''} cannot replace v${held.keyVersion}${held.revoked ? ' (revoked)' : ''}`);
      }
    }
    this.#entries.set(entry.id, copyEntry(entry));
    return { ok: true, entry };
  }

  lookup(id: string): DirectoryEntry | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    // Per frame: plain comparisons, no verdict object (checkValidity says the same, with reasons).
    const now = this.#clock();
    return !entry.revoked && entry.notBefore <= now && now < entry.notAfter ? entry : undefined;
  }

  /** Why `lookup` would refuse an id, for diagnostics. */
  explain(id: string): string {
    const entry = this.#entries.get(id);
    if (entry === undefined) return `no directory entry for '${id}'`;
    const verdict = checkValidity(entry, this.#clock());
    return verdict.ok ? `directory entry '${id}' v${entry.keyVersion} is valid` : verdict.detail;
  }
}

function copyEntry(entry: DirectoryEntry): DirectoryEntry {
  return { ...entry, ed25519PublicKey: entry.ed25519PublicKey.slice(), x25519PublicKey: entry.x25519PublicKey.slice() };
}

function checkEntry(entry: DirectoryEntry, fail = (why: string) => new EnvelopeError('E_ENTRY_SHAPE', `directory entry '${entry.id}': ${why}`, {})): void {
  if (entry.ed25519PublicKey.length !== KEY_LENGTH || entry.x25519PublicKey.length !== KEY_LENGTH) throw fail('public keys must be 32 bytes');
  if (!Number.isInteger(entry.keyVersion) || entry.keyVersion < 0 || entry.keyVersion > 0xffff_ffff) throw fail('key version must be a u32');
  for (const time of [entry.notBefore, entry.notAfter]) {
    if (!Number.isSafeInteger(time) || time < 0) throw fail('validity times must be non-negative integer milliseconds');
  }
  if (entry.notAfter <= entry.notBefore) throw fail('not_after must be later than not_before');
}
