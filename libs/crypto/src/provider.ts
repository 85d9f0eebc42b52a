/**
 * One interface for every primitive Bulwark uses (DESIGN §1, libs/crypto).
 * Three implementations: `sodium` (libsodium where it is faster, else OpenSSL), `node`
 * (node:crypto / OpenSSL) and `noble` (the @noble packages).
 * All byte strings are raw `Uint8Array`s; key encodings live in `encoding.ts`.
 */
import type { FrameCipher } from './frame-cipher.js';

export type CryptoProviderName = 'sodium' | 'node' | 'noble';

export interface Ed25519KeyPair {
  /** 32-byte RFC 8032 seed. */
  readonly secretKey: Uint8Array;
  /** 32-byte encoded public point. */
  readonly publicKey: Uint8Array;
}

export interface X25519KeyPair {
  /** 32-byte scalar (RFC 7748 encoding, clamped on use). */
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface CryptoProvider {
  readonly name: CryptoProviderName;

  /** Cryptographically secure random bytes. */
  randomBytes(length: number): Uint8Array;

  ed25519: {
    generateKeyPair(): Ed25519KeyPair;
    publicKey(secretKey: Uint8Array): Uint8Array;
    sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array;
    /** Strict RFC 8032 verification: false (never a throw) on any malformed input. */
    verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  };

  x25519: {
    generateKeyPair(): X25519KeyPair;
    publicKey(secretKey: Uint8Array): Uint8Array;
    /** Throws CryptoError E_LOW_ORDER when the shared secret is all zeros. */
    sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  };

  /** RFC 8439 AEAD: 32-byte key, 12-byte nonce; output is ciphertext || 16-byte tag. */
  chacha20poly1305: {
    seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array;
    /** Throws CryptoError E_AEAD on a bad tag. */
    open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array;
    /**
     * `seal`, written into `output` at `offset` (ciphertext || tag, plaintext.length + 16 bytes)
     * instead of a new buffer: a frame encoder saves an allocation and a copy per message.
     * Returns the bytes written. E_LENGTH if they do not fit, or if the range overlaps `plaintext`.
     */
    sealInto(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array | undefined, output: Uint8Array, offset: number): number;
  };

  /** AES-256-GCM: 32-byte key, 12-byte nonce; output is ciphertext || 16-byte tag. */
  aes256gcm: {
    seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array;
    open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array;
  };

  sha256(data: Uint8Array | readonly Uint8Array[]): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array | readonly Uint8Array[]): Uint8Array;
  /** RFC 5869. */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;

  /** Constant-time equality; false for different lengths (length is not secret). */
  equal(a: Uint8Array, b: Uint8Array): boolean;

  /** SecureChannel v1's data-frame seal and open (frame-cipher.ts): native where built, else composed. */
  readonly frames: FrameCipher;
}
