import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './encoding.js';
import { CryptoError } from './errors.js';
import { PublicKeyObjectCache } from './key-cache.js';
import { createNobleCryptoProvider } from './noble-provider.js';
import { createNodeCryptoProvider } from './node-provider.js';
import { createSodiumCryptoProvider } from './sodium-provider.js';
import { createPublicKey } from 'node:crypto';

const providers = [createSodiumCryptoProvider(), createNodeCryptoProvider(), createNobleCryptoProvider()];

function thrown(action: () => unknown): { code: string; message: string } | undefined {
  try {
    action();
  } catch (error) {
    if (error instanceof CryptoError) return { code: error.code, message: error.message };
    return { code: `not a CryptoError: ${String(error)}`, message: '' };
  }
  return undefined;
}

const bytes = (length: number, fill = 7) => new Uint8Array(length).fill(fill);

describe.each(providers)('$name provider contract', (p) => {
  it('generates Ed25519 key pairs whose public key matches the secret and that sign and verify', () => {
    const { secretKey, publicKey } = p.ed25519.generateKeyPair();
    expect(secretKey).toHaveLength(32);
    expect(p.ed25519.publicKey(secretKey)).toEqual(publicKey);
    const signature = p.ed25519.sign(secretKey, bytes(10));
    expect(signature).toHaveLength(64);
    expect(p.ed25519.verify(publicKey, bytes(10), signature)).toBe(true);
    expect(p.ed25519.verify(publicKey, bytes(11), signature)).toBe(false);
    expect(toHex(p.ed25519.generateKeyPair().secretKey)).not.toBe(toHex(secretKey));
  });

  it('generates X25519 key pairs that agree on a shared secret', () => {
    const alice = p.x25519.generateKeyPair();
    const bob = p.x25519.generateKeyPair();
    expect(p.x25519.publicKey(alice.secretKey)).toEqual(alice.publicKey);
    const shared = p.x25519.sharedSecret(alice.secretKey, bob.publicKey);
    expect(shared).toHaveLength(32);
    expect(p.x25519.sharedSecret(bob.secretKey, alice.publicKey)).toEqual(shared);
  });

  it('returns plain Uint8Arrays, never Buffers', () => {
    const key = bytes(32);
    const outputs = [
      p.randomBytes(8),
      p.ed25519.sign(key, bytes(1)),
      p.ed25519.publicKey(key),
      p.x25519.publicKey(key),
      p.chacha20poly1305.seal(key, bytes(12), bytes(5)),
      p.aes256gcm.open(key, bytes(12), p.aes256gcm.seal(key, bytes(12), bytes(5))),
      p.sha256(bytes(3)),
      p.hmacSha256(key, [bytes(3)]),
      p.hkdfSha256(key, bytes(0), bytes(0), 10),
    ];
    for (const output of outputs) expect(Object.getPrototypeOf(output)).toBe(Uint8Array.prototype);
  });

  it('refuses keys and nonces of the wrong length with E_KEY naming the expected length', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => p.ed25519.sign(bytes(31), bytes(1)), /ed25519 secret key: expected 32 bytes, got 31/],
      [() => p.ed25519.publicKey(bytes(64)), /ed25519 secret key: expected 32 bytes, got 64/],
      [() => p.x25519.publicKey(bytes(33)), /x25519 secret key: expected 32 bytes, got 33/],
      [() => p.x25519.sharedSecret(bytes(32), bytes(31)), /x25519 public key: expected 32 bytes, got 31/],
      [() => p.chacha20poly1305.seal(bytes(16), bytes(12), bytes(1)), /chacha20poly1305 key: expected 32 bytes, got 16/],
      [() => p.chacha20poly1305.seal(bytes(32), bytes(24), bytes(1)), /chacha20poly1305 nonce: expected 12 bytes, got 24/],
      [() => p.chacha20poly1305.open(bytes(32), bytes(8), bytes(20)), /chacha20poly1305 nonce: expected 12 bytes, got 8/],
      [() => p.aes256gcm.seal(bytes(16), bytes(12), bytes(1)), /aes256gcm key: expected 32 bytes, got 16/],
      [() => p.aes256gcm.open(bytes(32), bytes(16), bytes(20)), /aes256gcm nonce: expected 12 bytes, got 16/],
    ];
    for (const [action, message] of cases) {
      const error = thrown(action);
      expect(error?.code).toBe('E_KEY');
      expect(error?.message).toMatch(message);
    }
  });

  it('refuses out-of-range output lengths with E_LENGTH', () => {
    expect(thrown(() => p.hkdfSha256(bytes(32), bytes(0), bytes(0), 0))?.code).toBe('E_LENGTH');
    expect(thrown(() => p.hkdfSha256(bytes(32), bytes(0), bytes(0), 255 * 32 + 1))?.code).toBe('E_LENGTH');
    expect(p.hkdfSha256(bytes(32), bytes(0), bytes(0), 255 * 32)).toHaveLength(8160);
    expect(thrown(() => p.randomBytes(-1))?.code).toBe('E_LENGTH');
    expect(thrown(() => p.randomBytes(1.5))?.code).toBe('E_LENGTH');
    expect(thrown(() => p.randomBytes(65_537))?.code).toBe('E_LENGTH');
    expect(p.randomBytes(65_536)).toHaveLength(65_536);
    expect(p.randomBytes(0)).toHaveLength(0);
  });

  it('fails AEAD opens with E_AEAD for a wrong key, nonce or associated data, or a truncated message', () => {
    for (const aead of [p.chacha20poly1305, p.aes256gcm]) {
      const key = bytes(32, 1);
      const nonce = bytes(12, 2);
      const sealed = aead.seal(key, nonce, bytes(40), bytes(4));
      expect(aead.open(key, nonce, sealed, bytes(4))).toEqual(bytes(40));
      expect(thrown(() => aead.open(bytes(32, 9), nonce, sealed, bytes(4)))?.code).toBe('E_AEAD');
      expect(thrown(() => aead.open(key, bytes(12, 9), sealed, bytes(4)))?.code).toBe('E_AEAD');
      expect(thrown(() => aead.open(key, nonce, sealed, bytes(4, 9)))?.code).toBe('E_AEAD');
      expect(thrown(() => aead.open(key, nonce, sealed))?.code).toBe('E_AEAD');
      expect(thrown(() => aead.open(key, nonce, sealed.subarray(0, 15), bytes(4)))?.code).toBe('E_AEAD');
      expect(thrown(() => aead.open(key, nonce, sealed.subarray(1), bytes(4)))?.code).toBe('E_AEAD');
      // No associated data and empty associated data are the same thing (RFC 8439 §2.8, SP 800-38D).
      expect(aead.seal(key, nonce, bytes(3))).toEqual(aead.seal(key, nonce, bytes(3), new Uint8Array(0)));
    }
  });

  it('answers false, never throws, when asked to verify malformed Ed25519 input', () => {
    const { secretKey, publicKey } = p.ed25519.generateKeyPair();
    const signature = p.ed25519.sign(secretKey, bytes(3));
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
      [publicKey.subarray(1), bytes(3), signature],
      [publicKey, bytes(3), signature.subarray(1)],
      [publicKey, bytes(3), new Uint8Array([...signature, 0])],
      [bytes(32, 0xff), bytes(3), signature], // y >= p: not a canonical point encoding
      [bytes(32, 0), bytes(3), signature],
      // S = L (the group order) is not reduced: RFC 8032 §5.1.7 says reject.
      [publicKey, bytes(3), new Uint8Array([...signature.subarray(0, 32), ...fromHex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010')])],
      [null as unknown as Uint8Array, bytes(3), signature],
      [publicKey, 'abc' as unknown as Uint8Array, signature],
    ];
    for (const [key, message, sig] of cases) expect(p.ed25519.verify(key, message, sig)).toBe(false);
  });

  it('refuses the all-zero and other low-order X25519 public keys with E_LOW_ORDER', () => {
    const { secretKey } = p.x25519.generateKeyPair();
    const lowOrder = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ];
    for (const u of lowOrder) expect(thrown(() => p.x25519.sharedSecret(secretKey, fromHex(u)))?.code, u).toBe('E_LOW_ORDER');
  });

  it('compares in constant time and says false for different lengths', () => {
    expect(p.equal(bytes(4), bytes(4))).toBe(true);
    expect(p.equal(bytes(4), bytes(4, 8))).toBe(false);
    expect(p.equal(bytes(4), bytes(5))).toBe(false);
    expect(p.equal(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });
});

describe('node provider key caches', () => {
  it('signs with the new key when the caller overwrites its secret-key array in place', () => {
    const node = createNodeCryptoProvider();
    const noble = createNobleCryptoProvider();
    const secretKey = bytes(32, 1);
    expect(node.ed25519.sign(secretKey, bytes(2))).toEqual(noble.ed25519.sign(secretKey, bytes(2)));
    secretKey.fill(2);
    expect(node.ed25519.sign(secretKey, bytes(2))).toEqual(noble.ed25519.sign(secretKey, bytes(2)));
    expect(node.ed25519.publicKey(secretKey)).toEqual(noble.ed25519.publicKey(secretKey));
    expect(node.x25519.publicKey(secretKey)).toEqual(noble.x25519.publicKey(secretKey));
    secretKey.fill(3);
    expect(node.x25519.publicKey(secretKey)).toEqual(noble.x25519.publicKey(secretKey));
  });

  it('keeps verifying correctly when more public keys are seen than it caches', () => {
    const node = createNodeCryptoProvider({ publicKeyCacheSize: 2 });
    const pairs = Array.from({ length: 5 }, () => node.ed25519.generateKeyPair());
    for (let round = 0; round < 3; round++) {
      for (const [i, pair] of pairs.entries()) {
        const signature = node.ed25519.sign(pair.secretKey, bytes(1, i));
        expect(node.ed25519.verify(pair.publicKey, bytes(1, i), signature)).toBe(true);
        expect(node.ed25519.verify(pairs[(i + 1) % pairs.length]!.publicKey, bytes(1, i), signature)).toBe(false);
      }
    }
  });

  it('holds at most its capacity and evicts the least recently used key', () => {
    let builds = 0;
    const cache = new PublicKeyObjectCache((raw) => {
      builds++;
      return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
    }, 2);
    const [a, b, c] = [bytes(32, 1), bytes(32, 2), bytes(32, 3)];
    cache.get(a);
    cache.get(b);
    cache.get(a.slice()); // a hit by value, and now the most recent
    cache.get(c); // evicts b
    expect(cache.size).toBe(2);
    expect(builds).toBe(3);
    cache.get(a);
    expect(builds).toBe(3);
    cache.get(b);
    expect(builds).toBe(4);
  });
});
