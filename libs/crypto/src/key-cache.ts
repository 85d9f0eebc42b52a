/**
 * node:crypto needs a KeyObject per asymmetric operation, and building one from raw bytes
 * costs more than the operation itself (measured on Node 20 / OpenSSL 3: PKCS#8 DER import
 * ~660 us, JWK import ~45 us, Ed25519 sign ~75 us). So the node provider keeps them.
 */
import type { KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * What a provider derives from a secret key (a KeyObject, libsodium's expanded key), keyed by
 * the identity of the caller's Uint8Array, so that no secret is ever turned into a Map key
 * string, and an entry goes away with the caller's array. Each entry keeps a copy of the bytes
 * it was built from: a caller that overwrites its array (e.g. to load another key into the
 * same buffer) gets a fresh derivation, never a stale one.
 */
export class SecretKeyCache<T> {
  readonly #entries = new WeakMap<Uint8Array, { readonly bytes: Uint8Array; readonly key: T }>();
  readonly #build: (raw: Uint8Array) => T;

  constructor(build: (raw: Uint8Array) => T) {
    this.#build = build;
  }

  get(raw: Uint8Array): T {
    const hit = this.#entries.get(raw);
    if (hit !== undefined && sameBytes(hit.bytes, raw)) return hit.key;
    const key = this.#build(raw);
    this.#entries.set(raw, { bytes: raw.slice(), key });
    return key;
  }
}

/**
 * Public-key KeyObjects, keyed by the key bytes (public, so a hex string is fine): verifiers see
 * the same few peer keys again and again, each time in a new array. Least recently used first out.
 */
export class PublicKeyObjectCache {
  readonly #entries: LRUCache<string, KeyObject>;
  readonly #build: (raw: Uint8Array) => KeyObject;

  constructor(build: (raw: Uint8Array) => KeyObject, capacity: number) {
    this.#build = build;
    // A capacity below one keeps the last key, as the cache always has.
    this.#entries = new LRUCache({ max: Math.max(1, Math.floor(capacity)) });
  }

  get(raw: Uint8Array): KeyObject {
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex');
    let key = this.#entries.get(id);
    if (key === undefined) {
      key = this.#build(raw);
      this.#entries.set(id, key);
    }
    return key;
  }

  get size(): number {
    return this.#entries.size;
  }
}
