/**
 * Handshake admission tags: how a responder tells, before any per-handshake key work, that a
 * handshake init comes from the principal it names (DESIGN §3a: "Handshake budgets are charged
 * to a principal only once its handshake authenticates").
 *
 * A Noise IK responder learns whether the initiator holds the static key it claims only after
 * two X25519 operations (es, then ss). So an init that merely *names* a principal cannot be
 * charged to that principal: anyone can name anyone. The initiator therefore sends beside the
 * init frame (header `Bulwark-Admission`) a tag
 *
 *   k_adm = HKDF-SHA256(ikm = X25519(own static, peer static), salt = empty,
 *                       info = "bulwark/bus/v1 handshake admission" || lp(initiator) || lp(responder))
 *   tag   = HMAC-SHA256(k_adm, init frame)[0..16]
 *
 * The static-static secret is the one Noise IK mixes in as `ss`; only the two principals can
 * compute it. Each side derives k_adm once per directory entry of the other (one X25519, cached
 * against the entry object, so a key rotation or revocation derives anew), and a tag then costs
 * one HMAC. The tag covers the whole init frame (ids, session id, timestamp, Noise message).
 *
 * The tag only gates admission (the responder's budgets); the session's authentication and
 * keys are still Noise IK's. A tag does not survive a replay: the responder also refuses a
 * session id it admitted before, within the frame's acceptance window.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import type { Directory, DirectoryEntry, LocalIdentity } from '@bulwark/envelope';

export const ADMISSION_TAG_LENGTH = 16;
const INFO_LABEL = new TextEncoder().encode('bulwark/bus/v1 handshake admission');

type RoleKeys = { readonly [R in 'initiator' | 'responder']: WeakMap<DirectoryEntry, Uint8Array | null> };

/** Derives and caches admission keys between this principal and its peers. */
export class AdmissionKeys {
  readonly #provider: CryptoProvider;
  readonly #self: LocalIdentity;
  readonly #directory: Directory;
  /** Per role, keyed by the directory's entry object: one derivation per entry version, freed with it. */
  #keys: RoleKeys = { initiator: new WeakMap(), responder: new WeakMap() };
  /** Our own key pair the cached keys were derived with: our own rotation (a new pair in `self`) derives them all anew. */
  #selfKey: LocalIdentity['x25519'];
  /** Responder keys under our most recent other key (`previousX25519[0]`: the next key while a rotation settles, then the replaced one), keyed like `#keys`. */
  #alternate = new WeakMap<DirectoryEntry, Uint8Array | null>();
  #alternateKey: LocalIdentity['x25519'] | undefined;

  constructor(options: { readonly provider: CryptoProvider; readonly self: LocalIdentity; readonly directory: Directory }) {
    this.#provider = options.provider;
    this.#self = options.self;
    this.#directory = options.directory;
    this.#selfKey = options.self.x25519;
  }

  #current(): RoleKeys {
    if (this.#self.x25519 !== this.#selfKey) {
      this.#selfKey = this.#self.x25519;
      this.#keys = { initiator: new WeakMap(), responder: new WeakMap() };
    }
    return this.#keys;
  }

  /** The directory's current entry for `peer`, if it has a valid one. */
  entry(peer: string): DirectoryEntry | undefined {
    return this.#directory.lookup(peer);
  }

  /** True when our responder key for this entry is derived already (checking a tag then costs no key work). */
  cached(entry: DirectoryEntry): boolean {
    return this.#current().responder.has(entry);
  }

  /**
   * The admission key between us and `entry`'s principal, in the role given (`initiator`: we
   * start the handshake). Undefined when the peer's key gives no usable shared secret.
   */
  key(entry: DirectoryEntry, role: 'initiator' | 'responder'): Uint8Array | undefined {
    const keys = this.#current()[role];
    let key = keys.get(entry);
    if (key === undefined) {
      key = derive(this.#provider, this.#self, entry, role);
      keys.set(entry, key);
    }
    return key ?? undefined;
  }

  /** The tag an initiator sends with `frame` to `entry`'s principal. */
  tag(entry: DirectoryEntry, frame: Uint8Array): Uint8Array | undefined {
    const key = this.key(entry, 'initiator');
    return key === undefined ? undefined : this.#provider.hmacSha256(key, frame).subarray(0, ADMISSION_TAG_LENGTH);
  }

  /**
   * Whether `tag` is the tag `entry`'s principal would send with `frame` to us (constant time):
   * under our key, or under our most recent other one (a peer that made it from our entry of just
   * before, or just after, our own rotation). One derivation per entry and key, as for `#keys`.
   */
  verify(entry: DirectoryEntry, frame: Uint8Array, tag: Uint8Array): boolean {
    if (tag.length !== ADMISSION_TAG_LENGTH) return false;
    const matches = (key: Uint8Array | undefined | null): boolean => key != null && this.#provider.equal(this.#provider.hmacSha256(key, frame).subarray(0, ADMISSION_TAG_LENGTH), tag);
    if (matches(this.key(entry, 'responder'))) return true;
    const other = this.#self.previousX25519?.[0];
    if (other === undefined) return false;
    if (other !== this.#alternateKey) {
      this.#alternateKey = other;
      this.#alternate = new WeakMap();
    }
    let key = this.#alternate.get(entry);
    if (key === undefined) {
      key = derive(this.#provider, { id: this.#self.id, x25519: other }, entry, 'responder');
      this.#alternate.set(entry, key);
    }
    return matches(key);
  }
}

function derive(provider: CryptoProvider, self: LocalIdentity, peer: DirectoryEntry, role: 'initiator' | 'responder'): Uint8Array | null {
  let shared: Uint8Array;
  try {
    shared = provider.x25519.sharedSecret(self.x25519.secretKey, peer.x25519PublicKey);
  } catch {
    // A low-order peer key (E_LOW_ORDER): no tag can be made or checked with it.
    return null;
  }
  const [initiator, responder] = role === 'initiator' ? [self.id, peer.id] : [peer.id, self.id];
  const info = concat([INFO_LABEL, lp(initiator), lp(responder)]);
  return provider.hkdfSha256(shared, new Uint8Array(0), info, 32);
}

function lp(id: string): Uint8Array {
  const bytes = new TextEncoder().encode(id);
  return concat([Uint8Array.of(bytes.length), bytes]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Header value: base64url of the tag. */
export function encodeAdmissionTag(tag: Uint8Array): string {
  return Buffer.from(tag.buffer, tag.byteOffset, tag.byteLength).toString('base64url');
}

/** Undefined unless `value` is exactly a base64url tag of the right length. */
export function decodeAdmissionTag(value: string | undefined): Uint8Array | undefined {
  if (value === undefined || value.length !== 22 || !/^[A-Za-z0-9_-]+$/.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64url');
  return bytes.length === ADMISSION_TAG_LENGTH ? new Uint8Array(bytes) : undefined;
}
