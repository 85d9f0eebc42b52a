/**
 * The `node` provider: node:crypto, i.e. OpenSSL 3. Fast, and the default (see README for
 * the measurements). KeyObjects are built through JWK, ~10x faster than DER on OpenSSL 3, and
 * cached (key-cache.ts).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hash as oneShotHash,
  hkdfSync,
  randomBytes as nodeRandomBytes,
  sign as nodeSign,
  timingSafeEqual,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from './errors.js';
import { preferredFrameCipher } from './frame-cipher.js';
import { asBytes, fromBase64Url, toBase64Url } from './encoding.js';
import { PublicKeyObjectCache, SecretKeyCache } from './key-cache.js';
import { requireLength, requireOutputLength, requireOutputRange, requireSealed, sizes } from './lengths.js';
import type { CryptoProvider, Ed25519KeyPair, X25519KeyPair } from './provider.js';
import { MAX_RANDOM_BYTES, isAllZero, lowOrder } from './shared.js';

export interface NodeCryptoProviderOptions {
  /** Public KeyObjects kept per curve (least recently used out). Default 1024. */
  readonly publicKeyCacheSize?: number;
}

type OkpCurve = 'Ed25519' | 'X25519';

/**
 * Results leave as plain Uint8Arrays (Buffer's `slice` shares memory, Uint8Array's copies; a
 * caller must get one behaviour whichever provider runs). Measured: copying a small Buffer costs
 * about half as much as wrapping it, since a wrapper must materialise its ArrayBuffer; for large
 * ones the wrapper wins.
 */
function plain(buffer: Buffer): Uint8Array {
  return buffer.length <= 64 ? new Uint8Array(buffer) : asBytes(buffer);
}

/*
 * A JWK private key import uses `d` only (OpenSSL derives the public half; node checks only that
 * `x` is a string), so `x` is left empty rather than computed. The vector tests pin this.
 */
function secretKeyObject(crv: OkpCurve, raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv, d: toBase64Url(raw), x: '' }, format: 'jwk' });
}

function publicKeyObject(crv: OkpCurve, raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: toBase64Url(raw) }, format: 'jwk' });
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const x = key.export({ format: 'jwk' }).x;
  if (x === undefined) throw new CryptoError('E_KEY', 'node:crypto exported a public key without x');
  return fromBase64Url(x);
}

/*
 * KEYGEN_DEADLOCK: on Node 20.20 (OpenSSL 3.0), exporting as JWK a key that generateKeyPairSync
 * just made can hang the process for good: the export holds the key's mutex while it allocates,
 * the allocation runs a GC, and the GC finalises the spent key-generation job, whose destructor
 * takes the same mutex (seen with gdb: ExportJWKEdKey -> GC -> ~KeyGenJob -> uv_mutex_lock; a loop
 * of generateKeyPairSync('ed25519') + export({ format: 'jwk' }) hung here within a minute). So key
 * pairs are made from random bytes and imported, which has no job to finalise.
 */

type AeadCipher = 'chacha20-poly1305' | 'aes-256-gcm';
type AeadName = 'chacha20poly1305' | 'aes256gcm';

function aeadSeal(cipherName: AeadCipher, name: AeadName, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  requireLength(key, sizes.aeadKey, `${name} key`);
  requireLength(nonce, sizes.aeadNonce, `${name} nonce`);
  // The casts pick one createCipheriv overload; both modes take the same options.
  const cipher = createCipheriv(cipherName as 'aes-256-gcm', key, nonce, { authTagLength: sizes.aeadTag });
  if (aad !== undefined) cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  return plain(Buffer.concat([body, tail, cipher.getAuthTag()]));
}

/** One allocation (the cipher's output) and one copy fewer than `aeadSeal` + copying its result. */
function aeadSealInto(
  cipherName: AeadCipher,
  name: AeadName,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array | undefined,
  output: Uint8Array,
  offset: number,
): number {
  requireLength(key, sizes.aeadKey, `${name} key`);
  requireLength(nonce, sizes.aeadNonce, `${name} nonce`);
  const length = plaintext.length + sizes.aeadTag;
  requireOutputRange(output, offset, length, plaintext, `${name} sealInto`);
  const cipher = createCipheriv(cipherName as 'aes-256-gcm', key, nonce, { authTagLength: sizes.aeadTag });
  if (aad !== undefined) cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  output.set(body, offset);
  // Stream ciphers flush nothing on final(); the check keeps the written length exact regardless.
  const tail = cipher.final();
  if (body.length + tail.length !== plaintext.length) throw new CryptoError('E_LENGTH', `${name} sealInto: cipher produced ${body.length + tail.length} bytes for ${plaintext.length}`, {});
  if (tail.length > 0) output.set(tail, offset + body.length);
  output.set(cipher.getAuthTag(), offset + plaintext.length);
  return length;
}

function aeadOpen(cipherName: AeadCipher, name: AeadName, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  requireLength(key, sizes.aeadKey, `${name} key`);
  requireLength(nonce, sizes.aeadNonce, `${name} nonce`);
  requireSealed(sealed, `${name} open`);
  const tagStart = sealed.length - sizes.aeadTag;
  const decipher = createDecipheriv(cipherName as 'aes-256-gcm', key, nonce, { authTagLength: sizes.aeadTag });
  decipher.setAuthTag(sealed.subarray(tagStart));
  if (aad !== undefined) decipher.setAAD(aad);
  const body = decipher.update(sealed.subarray(0, tagStart));
  try {
    const tail = decipher.final();
    return plain(tail.length === 0 ? body : Buffer.concat([body, tail]));
  } catch (cause) {
    // OpenSSL decrypts before it checks the tag: wipe the unauthenticated plaintext.
    body.fill(0);
    throw new CryptoError('E_AEAD', `${name} open: authentication failed (wrong key, nonce, associated data, or a forged message)`, {}, { cause });
  }
}

export function createNodeCryptoProvider(options: NodeCryptoProviderOptions = {}): CryptoProvider {
  const publicKeyCacheSize = options.publicKeyCacheSize ?? 1024;
  const edSecret = new SecretKeyCache<KeyObject>((raw) => secretKeyObject('Ed25519', raw));
  const edPublic = new PublicKeyObjectCache((raw) => publicKeyObject('Ed25519', raw), publicKeyCacheSize);
  const xSecret = new SecretKeyCache<KeyObject>((raw) => secretKeyObject('X25519', raw));
  const xPublic = new PublicKeyObjectCache((raw) => publicKeyObject('X25519', raw), publicKeyCacheSize);

  const provider: Omit<CryptoProvider, 'frames'> = {
    name: 'node',

    randomBytes(length: number): Uint8Array {
      requireOutputLength(length, 0, MAX_RANDOM_BYTES, 'randomBytes');
      return plain(nodeRandomBytes(length));
    },

    ed25519: {
      generateKeyPair(): Ed25519KeyPair {
        // RFC 8032 §5.1.5: the secret key is 32 random bytes. Not generateKeyPairSync: see KEYGEN_DEADLOCK.
        const secretKey = new Uint8Array(nodeRandomBytes(sizes.ed25519SecretKey));
        return { secretKey, publicKey: rawPublicKey(createPublicKey(edSecret.get(secretKey))) };
      },
      publicKey(secretKey: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.ed25519SecretKey, 'ed25519 secret key');
        return rawPublicKey(createPublicKey(edSecret.get(secretKey)));
      },
      sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.ed25519SecretKey, 'ed25519 secret key');
        return plain(nodeSign(null, message, edSecret.get(secretKey)));
      },
      verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
        if (!(publicKey instanceof Uint8Array) || publicKey.length !== sizes.ed25519PublicKey) return false;
        if (!(signature instanceof Uint8Array) || signature.length !== sizes.ed25519Signature) return false;
        if (!(message instanceof Uint8Array)) return false;
        try {
          return nodeVerify(null, message, edPublic.get(publicKey), signature);
        } catch {
          return false;
        }
      },
    },

    x25519: {
      generateKeyPair(): X25519KeyPair {
        // RFC 7748 §6.1: 32 random bytes, clamped on use. Not generateKeyPairSync: see KEYGEN_DEADLOCK.
        const secretKey = new Uint8Array(nodeRandomBytes(sizes.x25519SecretKey));
        return { secretKey, publicKey: rawPublicKey(createPublicKey(xSecret.get(secretKey))) };
      },
      publicKey(secretKey: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.x25519SecretKey, 'x25519 secret key');
        return rawPublicKey(createPublicKey(xSecret.get(secretKey)));
      },
      sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
        requireLength(secretKey, sizes.x25519SecretKey, 'x25519 secret key');
        requireLength(publicKey, sizes.x25519PublicKey, 'x25519 public key');
        let shared: Uint8Array;
        try {
          const output = diffieHellman({ privateKey: xSecret.get(secretKey), publicKey: xPublic.get(publicKey) });
          shared = new Uint8Array(output);
          output.fill(0); // the copy is the only one left
        } catch (cause) {
          // OpenSSL refuses to return the all-zero output (RFC 7748 §6.1) with this error.
          if ((cause as { code?: unknown }).code === 'ERR_OSSL_FAILED_DURING_DERIVATION') throw lowOrder(cause);
          throw new CryptoError('E_KEY', `x25519 shared secret: node:crypto refused the keys (${(cause as Error).message})`, {}, { cause });
        }
        if (isAllZero(shared)) throw lowOrder();
        return shared;
      },
    },

    chacha20poly1305: {
      seal: (key, nonce, plaintext, aad) => aeadSeal('chacha20-poly1305', 'chacha20poly1305', key, nonce, plaintext, aad),
      open: (key, nonce, sealed, aad) => aeadOpen('chacha20-poly1305', 'chacha20poly1305', key, nonce, sealed, aad),
      sealInto: (key, nonce, plaintext, aad, output, offset) => aeadSealInto('chacha20-poly1305', 'chacha20poly1305', key, nonce, plaintext, aad, output, offset),
    },

    aes256gcm: {
      seal: (key, nonce, plaintext, aad) => aeadSeal('aes-256-gcm', 'aes256gcm', key, nonce, plaintext, aad),
      open: (key, nonce, sealed, aad) => aeadOpen('aes-256-gcm', 'aes256gcm', key, nonce, sealed, aad),
    },

    sha256(data: Uint8Array | readonly Uint8Array[]): Uint8Array {
      // The one-shot call skips the Hash object: measured ~25% faster for 1 KiB.
      if (data instanceof Uint8Array) return new Uint8Array(oneShotHash('sha256', data, 'buffer'));
      const hash = createHash('sha256');
      for (const part of data) hash.update(part);
      return new Uint8Array(hash.digest());
    },

    hmacSha256(key: Uint8Array, data: Uint8Array | readonly Uint8Array[]): Uint8Array {
      const mac = createHmac('sha256', key);
      if (data instanceof Uint8Array) mac.update(data);
      else for (const part of data) mac.update(part);
      return new Uint8Array(mac.digest());
    },

    hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
      requireOutputLength(length, 1, sizes.hkdfSha256MaxLength, 'hkdfSha256');
      return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
    },

    equal(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && timingSafeEqual(a, b);
    },
  };
  return { ...provider, frames: preferredFrameCipher(provider) };
}

