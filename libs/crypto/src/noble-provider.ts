/**
 * The `noble` provider: the audited pure-JavaScript @noble packages (v2). Slower than OpenSSL
 * but independent of it, which is what the differential tests lean on; also the fallback for a
 * Node built without these OpenSSL algorithms.
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { equalBytes } from '@noble/ciphers/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { randomBytes as nobleRandomBytes } from '@noble/hashes/utils.js';
import { CryptoError } from './errors.js';
import { requireLength, requireOutputLength, requireOutputRange, requireSealed, sizes } from './lengths.js';
import type { CryptoProvider, Ed25519KeyPair, X25519KeyPair } from './provider.js';
import { MAX_RANDOM_BYTES, isAllZero, lowOrder } from './shared.js';
import { composedFrameCipher } from './frame-cipher.js';

/** RFC 8032 §5.1.7 decoding (canonical encodings only), not ZIP-215's permissive one. */
const STRICT = { zip215: false } as const;

type AeadName = 'chacha20poly1305' | 'aes256gcm';
type AeadFactory = (key: Uint8Array, nonce: Uint8Array, aad?: Uint8Array) => {
  encrypt(plaintext: Uint8Array): Uint8Array;
  decrypt(sealed: Uint8Array): Uint8Array;
};

function aeadSeal(cipher: AeadFactory, name: AeadName, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  requireLength(key, sizes.aeadKey, `${name} key`);
  requireLength(nonce, sizes.aeadNonce, `${name} nonce`);
  return cipher(key, nonce, aad).encrypt(plaintext);
}

function aeadOpen(cipher: AeadFactory, name: AeadName, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  requireLength(key, sizes.aeadKey, `${name} key`);
  requireLength(nonce, sizes.aeadNonce, `${name} nonce`);
  requireSealed(sealed, `${name} open`);
  try {
    // noble checks the tag before it decrypts anything.
    return cipher(key, nonce, aad).decrypt(sealed);
  } catch (cause) {
    throw new CryptoError('E_AEAD', `${name} open: authentication failed (wrong key, nonce, associated data, or a forged message)`, {}, { cause });
  }
}


export function createNobleCryptoProvider(): CryptoProvider {
  const randomBytes = (length: number): Uint8Array => {
    requireOutputLength(length, 0, MAX_RANDOM_BYTES, 'randomBytes');
    return nobleRandomBytes(length);
  };

  const provider: Omit<CryptoProvider, 'frames'> = {
    name: 'noble',
    randomBytes,

    ed25519: {
      generateKeyPair(): Ed25519KeyPair {
        const secretKey = randomBytes(sizes.ed25519SecretKey);
        return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
      },
      publicKey(secretKey: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.ed25519SecretKey, 'ed25519 secret key');
        return ed25519.getPublicKey(secretKey);
      },
      sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.ed25519SecretKey, 'ed25519 secret key');
        return ed25519.sign(message, secretKey);
      },
      verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
        if (!(publicKey instanceof Uint8Array) || publicKey.length !== sizes.ed25519PublicKey) return false;
        if (!(signature instanceof Uint8Array) || signature.length !== sizes.ed25519Signature) return false;
        if (!(message instanceof Uint8Array)) return false;
        try {
          return ed25519.verify(signature, message, publicKey, STRICT);
        } catch {
          return false;
        }
      },
    },

    x25519: {
      generateKeyPair(): X25519KeyPair {
        const secretKey = randomBytes(sizes.x25519SecretKey);
        return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
      },
      publicKey(secretKey: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.x25519SecretKey, 'x25519 secret key');
        return x25519.getPublicKey(secretKey);
      },
      sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.x25519SecretKey, 'x25519 secret key');
        requireLength(publicKey, sizes.x25519PublicKey, 'x25519 public key');
        let shared: Uint8Array;
        try {
          shared = x25519.getSharedSecret(secretKey, publicKey);
        } catch (cause) {
          // With the lengths checked, noble throws only for the low-order public keys it refuses
          // before the ladder (those whose output would be all zeros).
          throw lowOrder(cause);
        }
        if (isAllZero(shared)) throw lowOrder();
        return shared;
      },
    },

    chacha20poly1305: {
      seal: (key, nonce, plaintext, aad) => aeadSeal(chacha20poly1305, 'chacha20poly1305', key, nonce, plaintext, aad),
      open: (key, nonce, sealed, aad) => aeadOpen(chacha20poly1305, 'chacha20poly1305', key, nonce, sealed, aad),
      sealInto(key, nonce, plaintext, aad, output, offset) {
        requireLength(key, sizes.aeadKey, 'chacha20poly1305 key');
        requireLength(nonce, sizes.aeadNonce, 'chacha20poly1305 nonce');
        const length = plaintext.length + sizes.aeadTag;
        requireOutputRange(output, offset, length, plaintext, 'chacha20poly1305 sealInto');
        // noble encrypts straight into the caller's bytes: no intermediate buffer at all.
        chacha20poly1305(key, nonce, aad).encrypt(plaintext, output.subarray(offset, offset + length));
        return length;
      },
    },

    aes256gcm: {
      seal: (key, nonce, plaintext, aad) => aeadSeal(gcm, 'aes256gcm', key, nonce, plaintext, aad),
      open: (key, nonce, sealed, aad) => aeadOpen(gcm, 'aes256gcm', key, nonce, sealed, aad),
    },

    sha256(data: Uint8Array | readonly Uint8Array[]): Uint8Array {
      if (data instanceof Uint8Array) return sha256(data);
      const hash = sha256.create();
      for (const part of data) hash.update(part);
      return hash.digest();
    },

    hmacSha256(key: Uint8Array, data: Uint8Array | readonly Uint8Array[]): Uint8Array {
      if (data instanceof Uint8Array) return hmac(sha256, key, data);
      const mac = hmac.create(sha256, key);
      for (const part of data) mac.update(part);
      return mac.digest();
    },

    hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
      requireOutputLength(length, 1, sizes.hkdfSha256MaxLength, 'hkdfSha256');
      return hkdf(sha256, ikm, salt, info, length);
    },

    equal(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && equalBytes(a, b);
    },
  };
  // Never the native cipher: noble is the all-JavaScript provider the others are checked against.
  return { ...provider, frames: composedFrameCipher(provider) };
}
