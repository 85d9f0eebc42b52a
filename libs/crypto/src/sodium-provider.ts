/**
 * The `sodium` provider: the `node` provider with Ed25519, X25519, ChaCha20-Poly1305 (below
 * 16 KiB) and HMAC-SHA256 of short messages taken from libsodium (through sodium-native's
 * prebuilt addon), where it is much faster than node:crypto on this kind of machine (README,
 * "Measurements"): node:crypto builds a cipher object per AEAD call, a signing context per
 * signature, an Hmac object per MAC and a KeyObject per new X25519 key; libsodium needs none.
 * SHA-256, long HMACs, HKDF and AES-256-GCM stay with OpenSSL, which is as fast or faster for
 * them (OpenSSL's SHA-256 uses the CPU's SHA extensions; libsodium's portable one is 3-4x slower).
 */
import { createRequire } from 'node:module';
import { allocateUninitialized } from './alloc.js';
import { CryptoError } from './errors.js';
import { preferredFrameCipher } from './frame-cipher.js';
import { SecretKeyCache } from './key-cache.js';
import { requireLength, requireOutputRange, requireSealed, sizes } from './lengths.js';
import { createNodeCryptoProvider, type NodeCryptoProviderOptions } from './node-provider.js';
import { isAllZero, lowOrder } from './shared.js';
import type { CryptoProvider, Ed25519KeyPair } from './provider.js';

/**
 * The part of sodium-native this provider calls. Declared here rather than taken from
 * @types/sodium-native, which types every argument as a Buffer and lacks the detached
 * ChaCha20-Poly1305 IETF calls; the addon takes any Uint8Array (the vector tests pass plain
 * ones). Failures throw: a refused AEAD tag, a refused signature input.
 */
interface SodiumNative {
  crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void;
  crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void;
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    ciphertext: Uint8Array,
    tag: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array | null,
    nsec: null,
    nonce: Uint8Array,
    key: Uint8Array,
  ): number;
  crypto_scalarmult_base(publicKey: Uint8Array, secretKey: Uint8Array): void;
  /** Throws when the result is all zeros (a low-order peer key). */
  crypto_scalarmult(shared: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void;
  crypto_hash_sha256_init(state: Uint8Array): void;
  crypto_hash_sha256_update(state: Uint8Array, input: Uint8Array): void;
  crypto_hash_sha256_final(state: Uint8Array, output: Uint8Array): void;
  crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    plaintext: Uint8Array,
    nsec: null,
    ciphertext: Uint8Array,
    tag: Uint8Array,
    aad: Uint8Array | null,
    nonce: Uint8Array,
    key: Uint8Array,
  ): void;
}

let loaded: { sodium: SodiumNative } | { error: unknown } | undefined;

/** sodium-native, loaded once; undefined (with the reason kept) where its addon cannot load. */
function loadSodium(): SodiumNative | undefined {
  if (loaded === undefined) {
    try {
      loaded = { sodium: createRequire(import.meta.url)('sodium-native') as SodiumNative };
    } catch (error) {
      loaded = { error };
    }
  }
  return 'sodium' in loaded ? loaded.sodium : undefined;
}

/** Whether libsodium loads on this host (a prebuilt addon exists for its platform and Node ABI). */
export function isSodiumAvailable(): boolean {
  return loadSodium() !== undefined;
}

/**
 * From this plaintext size on, ChaCha20-Poly1305 goes to OpenSSL: its per-call cost (a cipher
 * object) no longer matters and its vectorised Poly1305 beats libsodium's scalar one. Seal +
 * open, CPU µs per call, here: 1 KiB node 12.4 / sodium 4.6; 16 KiB 28.4 / 26.1;
 * 32 KiB 42.1 / 51.9; 64 KiB 77.2 / 99.2. The bytes are the same either way (RFC 8439).
 */
const OPENSSL_AEAD_FROM = 16 * 1024;

/** libsodium's crypto_hash_sha256_state (crypto_hash_sha256_statebytes()). */
const SHA256_STATE = 104;
/**
 * HMAC-SHA256 of messages up to this size (an envelope frame's MAC input for small requests)
 * runs on libsodium's SHA-256 from key-derived inner and outer states kept per key: no Hmac
 * object per call, which in a seal+open loop was most of node:crypto's cost (seal 7.6 → 5.5 µs,
 * open 13.2 → 8.5 µs for a 272-byte message). Longer messages stay with OpenSSL, whose
 * SHA-256 is several times faster per byte (SHA extensions).
 */
const SODIUM_HMAC_MAX = 512;


/** libsodium's secret key is seed || public key; signing with the seed alone would redo the key derivation each time. */
const EXPANDED_SECRET_KEY_LENGTH = 64;

export function createSodiumCryptoProvider(options: NodeCryptoProviderOptions = {}): CryptoProvider {
  const sodium = loadSodium();
  if (sodium === undefined) {
    const cause = loaded !== undefined && 'error' in loaded ? loaded.error : undefined;
    throw new CryptoError(
      'E_UNAVAILABLE',
      `the sodium crypto provider is not available on this host: sodium-native did not load (${cause instanceof Error ? cause.message : String(cause)}); use the node provider`,
      { platform: `${process.platform}-${process.arch}`, node: process.version },
      { cause },
    );
  }
  const base = createNodeCryptoProvider(options);

  const expanded = new SecretKeyCache<{ readonly secretKey: Uint8Array; readonly publicKey: Uint8Array }>((seed) => {
    const publicKey = new Uint8Array(sizes.ed25519PublicKey);
    const secretKey = new Uint8Array(EXPANDED_SECRET_KEY_LENGTH);
    sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed);
    return { secretKey, publicKey };
  });
  const publicKey = (seed: Uint8Array): Uint8Array => {
    requireLength(seed, sizes.ed25519SecretKey, 'ed25519 secret key');
    return expanded.get(seed).publicKey.slice();
  };

  const sealInto = (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array | undefined, output: Uint8Array, offset: number): number => {
    if (plaintext.length >= OPENSSL_AEAD_FROM) return base.chacha20poly1305.sealInto(key, nonce, plaintext, aad, output, offset);
    requireLength(key, sizes.aeadKey, 'chacha20poly1305 key');
    requireLength(nonce, sizes.aeadNonce, 'chacha20poly1305 nonce');
    const length = plaintext.length + sizes.aeadTag;
    requireOutputRange(output, offset, length, plaintext, 'chacha20poly1305 sealInto');
    const tagAt = offset + plaintext.length;
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(output.subarray(offset, tagAt), output.subarray(tagAt, tagAt + sizes.aeadTag), plaintext, aad ?? null, null, nonce, key);
    return length;
  };

  const hmacStates = new SecretKeyCache<{ readonly inner: Uint8Array; readonly outer: Uint8Array }>((key) => {
    const k = key.length > 64 ? base.sha256(key) : key;
    const pad = new Uint8Array(64);
    const state = (fill: number): Uint8Array => {
      pad.fill(fill);
      for (let i = 0; i < k.length; i++) pad[i]! ^= k[i]!;
      const st = new Uint8Array(SHA256_STATE);
      sodium.crypto_hash_sha256_init(st);
      sodium.crypto_hash_sha256_update(st, pad);
      return st;
    };
    const keyed = { inner: state(0x36), outer: state(0x5c) };
    pad.fill(0);
    return keyed;
  });
  const work = new Uint8Array(SHA256_STATE);
  const innerDigest = new Uint8Array(32);

  const hmacSha256: CryptoProvider['hmacSha256'] = (key, data) => {
    const parts = data instanceof Uint8Array ? [data] : data;
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > SODIUM_HMAC_MAX) return base.hmacSha256(key, data);
    const states = hmacStates.get(key);
    work.set(states.inner);
    for (const part of parts) sodium.crypto_hash_sha256_update(work, part);
    sodium.crypto_hash_sha256_final(work, innerDigest);
    work.set(states.outer);
    sodium.crypto_hash_sha256_update(work, innerDigest);
    const mac = new Uint8Array(32);
    sodium.crypto_hash_sha256_final(work, mac);
    innerDigest.fill(0);
    return mac;
  };

  // Noise handshakes use fresh ephemeral keys, which node:crypto must first import as KeyObjects:
  // a key pair and one DH took 91–98 µs there against 56–64 µs here (the DH alone, on keys
  // node has cached, is the same: 35–40 µs).
  const x25519PublicKey = (secretKey: Uint8Array): Uint8Array => {
    const publicKey = new Uint8Array(sizes.x25519PublicKey);
    sodium.crypto_scalarmult_base(publicKey, secretKey);
    return publicKey;
  };
  const x25519: CryptoProvider['x25519'] = {
    generateKeyPair() {
      const secretKey = base.randomBytes(sizes.x25519SecretKey);
      return { secretKey, publicKey: x25519PublicKey(secretKey) };
    },
    publicKey(secretKey) {
      requireLength(secretKey, sizes.x25519SecretKey, 'x25519 secret key');
      return x25519PublicKey(secretKey);
    },
    sharedSecret(secretKey, publicKey) {
      requireLength(secretKey, sizes.x25519SecretKey, 'x25519 secret key');
      requireLength(publicKey, sizes.x25519PublicKey, 'x25519 public key');
      const shared = new Uint8Array(sizes.x25519SharedSecret);
      try {
        sodium.crypto_scalarmult(shared, secretKey, publicKey);
      } catch (cause) {
        // libsodium refuses to return the all-zero output (RFC 7748 §6.1); nothing else fails here.
        shared.fill(0);
        throw lowOrder(cause);
      }
      if (isAllZero(shared)) throw lowOrder();
      return shared;
    },
  };

  const chacha20poly1305: CryptoProvider['chacha20poly1305'] = {
    seal(key, nonce, plaintext, aad) {
      if (plaintext.length >= OPENSSL_AEAD_FROM) return base.chacha20poly1305.seal(key, nonce, plaintext, aad);
      const output = allocateUninitialized(plaintext.length + sizes.aeadTag);
      sealInto(key, nonce, plaintext, aad, output, 0);
      return output;
    },
    open(key, nonce, sealed, aad) {
      if (sealed.length - sizes.aeadTag >= OPENSSL_AEAD_FROM) return base.chacha20poly1305.open(key, nonce, sealed, aad);
      requireLength(key, sizes.aeadKey, 'chacha20poly1305 key');
      requireLength(nonce, sizes.aeadNonce, 'chacha20poly1305 nonce');
      requireSealed(sealed, 'chacha20poly1305 open');
      const tagAt = sealed.length - sizes.aeadTag;
      const plaintext = allocateUninitialized(tagAt);
      try {
        // libsodium checks the tag before it decrypts: nothing unauthenticated is written.
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(plaintext, null, sealed.subarray(0, tagAt), sealed.subarray(tagAt), aad ?? null, nonce, key);
      } catch (cause) {
        throw new CryptoError('E_AEAD', 'chacha20poly1305 open: authentication failed (wrong key, nonce, associated data, or a forged message)', {}, { cause });
      }
      return plaintext;
    },
    sealInto,
  };

  return {
    ...base,
    name: 'sodium',
    hmacSha256,
    ed25519: {
      generateKeyPair(): Ed25519KeyPair {
        const secretKey = base.randomBytes(sizes.ed25519SecretKey);
        return { secretKey, publicKey: publicKey(secretKey) };
      },
      publicKey,
      sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.ed25519SecretKey, 'ed25519 secret key');
        const signature = new Uint8Array(sizes.ed25519Signature);
        sodium.crypto_sign_detached(signature, message, expanded.get(secretKey).secretKey);
        return signature;
      },
      verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
        if (!(key instanceof Uint8Array) || key.length !== sizes.ed25519PublicKey) return false;
        if (!(signature instanceof Uint8Array) || signature.length !== sizes.ed25519Signature) return false;
        if (!(message instanceof Uint8Array)) return false;
        try {
          return sodium.crypto_sign_verify_detached(signature, message, key);
        } catch {
          return false;
        }
      },
    },
    x25519,
    chacha20poly1305,
    frames: preferredFrameCipher({ chacha20poly1305, hmacSha256, equal: base.equal }),
  };
}
