/**
 * The providers are independent implementations (OpenSSL, the @noble packages, and libsodium
 * for the primitives the sodium provider takes from it): on random inputs they must produce
 * the same bytes and accept each other's output. 1,000 cases per primitive; fast-check prints
 * the seed and the shrunk input of any disagreement.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes } from './encoding.js';
import { CryptoError } from './errors.js';
import { createNobleCryptoProvider } from './noble-provider.js';
import { createNodeCryptoProvider } from './node-provider.js';
import { createSodiumCryptoProvider } from './sodium-provider.js';

const node = createNodeCryptoProvider();
const noble = createNobleCryptoProvider();
const sodium = createSodiumCryptoProvider();
const RUNS = { numRuns: 1000 };

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const key32 = bytes(32, 32);
const chunks = fc.array(bytes(0, 200), { maxLength: 4 });

function aeadCode(open: () => Uint8Array): string {
  try {
    open();
    return 'opened';
  } catch (error) {
    return error instanceof CryptoError ? error.code : String(error);
  }
}

describe('node, noble and sodium providers agree', () => {
  it('on Ed25519 public keys and signatures, and verify each other (1,000 cases)', () => {
    fc.assert(
      fc.property(key32, bytes(0, 300), (seed, message) => {
        const publicKey = node.ed25519.publicKey(seed);
        expect(noble.ed25519.publicKey(seed)).toEqual(publicKey);
        expect(sodium.ed25519.publicKey(seed)).toEqual(publicKey);
        const signature = noble.ed25519.sign(seed, message);
        expect(node.ed25519.sign(seed, message)).toEqual(signature);
        expect(sodium.ed25519.sign(seed, message)).toEqual(signature);
        expect(node.ed25519.verify(publicKey, message, signature)).toBe(true);
        expect(noble.ed25519.verify(publicKey, message, signature)).toBe(true);
        expect(sodium.ed25519.verify(publicKey, message, signature)).toBe(true);
      }),
      RUNS,
    );
  });

  // noble's verification is the slowest step here (~3 ms on the CI machine), so the forgery
  // property runs fewer cases; the Wycheproof invalid cases cover rejection on both providers too.
  it('on refusing an Ed25519 signature, message or key with one bit flipped (300 cases)', () => {
    fc.assert(
      fc.property(key32, bytes(1, 100), fc.nat(), fc.constantFrom('signature', 'message', 'key'), (seed, message, flip, target) => {
        const publicKey = node.ed25519.publicKey(seed);
        const signature = node.ed25519.sign(seed, message);
        const forged = { signature: signature.slice(), message: message.slice(), key: publicKey.slice() };
        const victim = forged[target];
        victim[flip % victim.length]! ^= 1 << (flip % 8);
        expect(node.ed25519.verify(forged.key, forged.message, forged.signature)).toBe(false);
        expect(noble.ed25519.verify(forged.key, forged.message, forged.signature)).toBe(false);
        expect(sodium.ed25519.verify(forged.key, forged.message, forged.signature)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('on X25519 public keys and shared secrets, each side computed by the other provider (1,000 cases)', () => {
    fc.assert(
      fc.property(key32, key32, (a, b) => {
        const publicA = node.x25519.publicKey(a);
        const publicB = noble.x25519.publicKey(b);
        expect(noble.x25519.publicKey(a)).toEqual(publicA);
        expect(sodium.x25519.publicKey(a)).toEqual(publicA);
        expect(node.x25519.publicKey(b)).toEqual(publicB);
        expect(sodium.x25519.publicKey(b)).toEqual(publicB);
        // One side per provider: equal only if both compute the same X25519 function.
        const shared = node.x25519.sharedSecret(a, publicB);
        expect(noble.x25519.sharedSecret(b, publicA)).toEqual(shared);
        expect(sodium.x25519.sharedSecret(b, publicA)).toEqual(shared);
      }),
      RUNS,
    );
  });

  for (const aead of ['chacha20poly1305', 'aes256gcm'] as const) {
    it(`on ${aead} ciphertexts, open each other's, and both refuse a tampered one (1,000 cases)`, () => {
      fc.assert(
        fc.property(key32, bytes(12, 12), bytes(0, 600), fc.option(bytes(0, 64), { nil: undefined }), fc.nat(), (key, nonce, plaintext, aad, flip) => {
          const sealed = node[aead].seal(key, nonce, plaintext, aad);
          expect(noble[aead].seal(key, nonce, plaintext, aad)).toEqual(sealed);
          expect(noble[aead].open(key, nonce, sealed, aad)).toEqual(plaintext);
          expect(node[aead].open(key, nonce, sealed, aad)).toEqual(plaintext);
          const forged = sealed.slice();
          forged[flip % forged.length]! ^= 1 << (flip % 8);
          expect(aeadCode(() => node[aead].open(key, nonce, forged, aad))).toBe('E_AEAD');
          expect(aeadCode(() => noble[aead].open(key, nonce, forged, aad))).toBe('E_AEAD');
          if (aead === 'chacha20poly1305') {
            expect(sodium[aead].seal(key, nonce, plaintext, aad)).toEqual(sealed);
            expect(sodium[aead].open(key, nonce, sealed, aad)).toEqual(plaintext);
            expect(aeadCode(() => sodium[aead].open(key, nonce, forged, aad))).toBe('E_AEAD');
          }
        }),
        RUNS,
      );
    });
  }

  it('on chacha20poly1305 either side of the size where sodium hands large messages to OpenSSL', () => {
    const key = new Uint8Array(32).fill(7);
    const nonce = new Uint8Array(12).fill(3);
    const aad = new Uint8Array([1, 2, 3]);
    for (const size of [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 64 * 1024]) {
      const plaintext = new Uint8Array(size).map((_, i) => i * 31);
      const sealed = noble.chacha20poly1305.seal(key, nonce, plaintext, aad);
      expect(sodium.chacha20poly1305.seal(key, nonce, plaintext, aad)).toEqual(sealed);
      expect(sodium.chacha20poly1305.open(key, nonce, sealed, aad)).toEqual(plaintext);
      const output = new Uint8Array(sealed.length + 5);
      expect(sodium.chacha20poly1305.sealInto(key, nonce, plaintext, aad, output, 5)).toBe(sealed.length);
      expect(output.subarray(5)).toEqual(sealed);
      const forged = sealed.slice();
      forged[size >> 1]! ^= 0x80;
      expect(aeadCode(() => sodium.chacha20poly1305.open(key, nonce, forged, aad))).toBe('E_AEAD');
    }
  });

  it('on chacha20poly1305 sealInto: the bytes seal returns, written at any offset, nothing else touched (1,000 cases)', () => {
    fc.assert(
      fc.property(key32, bytes(12, 12), bytes(0, 600), fc.option(bytes(0, 64), { nil: undefined }), fc.nat(40), fc.nat(40), (key, nonce, plaintext, aad, offset, slack) => {
        const sealed = node.chacha20poly1305.seal(key, nonce, plaintext, aad);
        for (const provider of [node, noble, sodium]) {
          const output = new Uint8Array(offset + sealed.length + slack).fill(0xa5);
          expect(provider.chacha20poly1305.sealInto(key, nonce, plaintext, aad, output, offset)).toBe(sealed.length);
          expect(output.subarray(offset, offset + sealed.length)).toEqual(sealed);
          expect(output.subarray(0, offset).every((b) => b === 0xa5)).toBe(true);
          expect(output.subarray(offset + sealed.length).every((b) => b === 0xa5)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('on chacha20poly1305 sealInto, both refuse a range that does not fit or overlaps the plaintext', () => {
    const key = new Uint8Array(32).fill(1);
    const nonce = new Uint8Array(12);
    const shared = new Uint8Array(200);
    const plaintext = shared.subarray(0, 64);
    for (const provider of [node, noble, sodium]) {
      const into = (output: Uint8Array, offset: number, input = plaintext) => {
        const code = aeadCode(() => (provider.chacha20poly1305.sealInto(key, nonce, input, undefined, output, offset), output));
        return code === 'opened' ? undefined : code;
      };
      expect(into(new Uint8Array(79), 0)).toBe('E_LENGTH');
      expect(into(new Uint8Array(80), 1)).toBe('E_LENGTH');
      expect(into(new Uint8Array(80), -1)).toBe('E_LENGTH');
      expect(into(new Uint8Array(100), 0.5)).toBe('E_LENGTH');
      expect(into(shared, 63)).toBe('E_LENGTH');
      expect(into(shared, 64)).toBeUndefined();
      expect(into(shared.subarray(100), 0, shared.subarray(100 - 64, 100))).toBeUndefined();
      expect(into(shared.subarray(100), 0, shared.subarray(101 - 64, 101))).toBe('E_LENGTH');
    }
  });

  it('on SHA-256, over one buffer or the same bytes in chunks (1,000 cases)', () => {
    fc.assert(
      fc.property(chunks, (parts) => {
        const digest = node.sha256(parts);
        expect(noble.sha256(parts)).toEqual(digest);
        expect(noble.sha256(concatBytes(...parts))).toEqual(digest);
        expect(node.sha256(concatBytes(...parts))).toEqual(digest);
      }),
      RUNS,
    );
  });

  it('on HMAC-SHA256, including keys longer than the block (1,000 cases)', () => {
    fc.assert(
      fc.property(bytes(0, 130), chunks, (key, parts) => {
        const tag = node.hmacSha256(key, parts);
        expect(noble.hmacSha256(key, parts)).toEqual(tag);
        expect(noble.hmacSha256(key, concatBytes(...parts))).toEqual(tag);
        expect(sodium.hmacSha256(key, parts)).toEqual(tag);
        expect(sodium.hmacSha256(key, concatBytes(...parts))).toEqual(tag);
      }),
      RUNS,
    );
  });

  it('on HKDF-SHA256 up to the RFC 5869 maximum length (1,000 cases)', () => {
    // Mostly short outputs (what Bulwark derives), one case in ten up to the maximum.
    const length = fc.oneof(
      { arbitrary: fc.integer({ min: 1, max: 100 }), weight: 9 },
      { arbitrary: fc.integer({ min: 1, max: 255 * 32 }), weight: 1 },
    );
    fc.assert(
      fc.property(bytes(0, 80), bytes(0, 80), bytes(0, 80), length, (ikm, salt, info, size) => {
        const okm = node.hkdfSha256(ikm, salt, info, size);
        expect(okm).toHaveLength(size);
        expect(noble.hkdfSha256(ikm, salt, info, size)).toEqual(okm);
      }),
      RUNS,
    );
  });

  it('on constant-time equality (1,000 cases)', () => {
    fc.assert(
      fc.property(bytes(0, 40), bytes(0, 40), fc.boolean(), (a, b, same) => {
        const other = same ? a.slice() : b;
        const expected = a.length === other.length && a.every((byte, i) => byte === other[i]);
        expect(node.equal(a, other)).toBe(expected);
        expect(noble.equal(a, other)).toBe(expected);
      }),
      RUNS,
    );
  });
});
