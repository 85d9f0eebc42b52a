import { describe, expect, it } from 'vitest';
import { readVectorJson } from '@bulwark/testkit';
import { fromHex, toHex } from './encoding.js';
import { CryptoError } from './errors.js';
import { createNobleCryptoProvider } from './noble-provider.js';
import { createNodeCryptoProvider } from './node-provider.js';
import { createSodiumCryptoProvider } from './sodium-provider.js';

interface Rfc8032File {
  vectors: { name: string; secret_key: string; public_key: string; message: string; signature: string }[];
}
interface WycheproofFile<G> {
  numberOfTests: number;
  testGroups: G[];
}
interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
}
type EddsaGroup = { publicKey: { pk: string }; tests: (WycheproofTest & { msg: string; sig: string })[] };
type XdhGroup = { tests: (WycheproofTest & { public: string; private: string; shared: string })[] };
type AeadGroup = { ivSize: number; tests: (WycheproofTest & { key: string; iv: string; aad: string; msg: string; ct: string; tag: string })[] };
type MacGroup = { tagSize: number; tests: (WycheproofTest & { key: string; msg: string; tag: string })[] };

const rfc8032 = readVectorJson<Rfc8032File>('ed25519', 'rfc8032-ed25519.json');
const wpEd25519 = readVectorJson<WycheproofFile<EddsaGroup>>('ed25519', 'wycheproof', 'ed25519_test.json');
const wpX25519 = readVectorJson<WycheproofFile<XdhGroup>>('ed25519', 'wycheproof', 'x25519_test.json');
const wpChaCha = readVectorJson<WycheproofFile<AeadGroup>>('ed25519', 'wycheproof', 'chacha20_poly1305_test.json');
const wpHmac = readVectorJson<WycheproofFile<MacGroup>>('ed25519', 'wycheproof', 'hmac_sha256_test.json');

function flatten<G extends { tests: WycheproofTest[] }>(file: WycheproofFile<G>): { group: G; test: G['tests'][number] }[] {
  const cases = file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
  // Guards against a truncated or swapped vector file passing vacuously.
  expect(cases).toHaveLength(file.numberOfTests);
  return cases;
}

/*
 * AES-256-GCM has no Wycheproof file among the shared vectors. These are Test Cases 13-16
 * (the 256-bit-key cases) of McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)",
 * Appendix B, the specification NIST adopted in SP 800-38D. The differential test covers the rest.
 */
const GCM_SPEC_PT =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255';
const GCM_SPEC_CT =
  '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad';
const aesGcmSpecVectors = [
  { name: 'Test Case 13', key: '00'.repeat(32), iv: '00'.repeat(12), aad: '', pt: '', ct: '', tag: '530f8afbc74536b9a963b4f1c4cb738b' },
  {
    name: 'Test Case 14',
    key: '00'.repeat(32),
    iv: '00'.repeat(12),
    aad: '',
    pt: '00'.repeat(16),
    ct: 'cea7403d4d606b6e074ec5d3baf39d18',
    tag: 'd0d1c8a799996bf0265b98b5d48ab919',
  },
  {
    name: 'Test Case 15',
    key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    iv: 'cafebabefacedbaddecaf888',
    aad: '',
    pt: GCM_SPEC_PT,
    ct: GCM_SPEC_CT,
    tag: 'b094dac5d93471bdec1a502270e3cc6c',
  },
  {
    name: 'Test Case 16',
    key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    iv: 'cafebabefacedbaddecaf888',
    aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    pt: GCM_SPEC_PT.slice(0, 120),
    ct: GCM_SPEC_CT.slice(0, 120),
    tag: '76fc6ece0f4e1768cddf8853bb2d551b',
  },
];

const providers = [createSodiumCryptoProvider(), createNodeCryptoProvider(), createNobleCryptoProvider()];

function errorCode(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return error instanceof CryptoError ? error.code : `not a CryptoError: ${String(error)}`;
  }
  return undefined;
}

describe.each(providers)('$name provider against the public vectors', (provider) => {
  it('reproduces the 5 RFC 8032 §7.1 Ed25519 vectors (public key, signature, verification)', () => {
    expect(rfc8032.vectors).toHaveLength(5);
    for (const v of rfc8032.vectors) {
      const secretKey = fromHex(v.secret_key);
      const message = fromHex(v.message);
      expect(toHex(provider.ed25519.publicKey(secretKey)), v.name).toBe(v.public_key);
      expect(toHex(provider.ed25519.sign(secretKey, message)), v.name).toBe(v.signature);
      expect(provider.ed25519.verify(fromHex(v.public_key), message, fromHex(v.signature)), v.name).toBe(true);
    }
  });

  it('accepts every valid and rejects every invalid Wycheproof Ed25519 signature (151 cases)', () => {
    const cases = flatten(wpEd25519);
    const wrong = cases.filter(({ group, test }) => {
      const accepted = provider.ed25519.verify(fromHex(group.publicKey.pk), fromHex(test.msg), fromHex(test.sig));
      return accepted !== (test.result === 'valid');
    });
    expect(wrong.map(({ test }) => `tcId ${test.tcId} (${test.result}): ${test.comment}`)).toEqual([]);
  });

  it('computes every Wycheproof X25519 shared secret, refusing exactly the all-zero ones with E_LOW_ORDER (518 cases)', () => {
    const cases = flatten(wpX25519);
    const problems: string[] = [];
    let zero = 0;
    for (const { test } of cases) {
      const secretKey = fromHex(test.private);
      const publicKey = fromHex(test.public);
      if (/^(00)+$/.test(test.shared)) {
        zero++;
        const code = errorCode(() => provider.x25519.sharedSecret(secretKey, publicKey));
        if (code !== 'E_LOW_ORDER') problems.push(`tcId ${test.tcId}: expected E_LOW_ORDER, got ${code ?? 'a result'}`);
        continue;
      }
      // valid and acceptable (twist, non-canonical, edge-case) alike: RFC 7748 defines the output.
      try {
        const shared = toHex(provider.x25519.sharedSecret(secretKey, publicKey));
        if (shared !== test.shared) problems.push(`tcId ${test.tcId} (${test.result}): wrong shared secret`);
      } catch (error) {
        problems.push(`tcId ${test.tcId} (${test.result}, ${test.flags.join(',')}): threw ${String(error)}`);
      }
    }
    expect(problems).toEqual([]);
    expect(zero).toBeGreaterThan(0);
  });

  it('seals and opens every valid Wycheproof ChaCha20-Poly1305 case and rejects every invalid one (325 cases)', () => {
    const cases = flatten(wpChaCha);
    const problems: string[] = [];
    for (const { test } of cases) {
      const key = fromHex(test.key);
      const nonce = fromHex(test.iv);
      const aad = fromHex(test.aad);
      const sealed = fromHex(test.ct + test.tag);
      if (test.result === 'valid') {
        if (toHex(provider.chacha20poly1305.seal(key, nonce, fromHex(test.msg), aad)) !== test.ct + test.tag) {
          problems.push(`tcId ${test.tcId}: seal differs`);
        }
        if (toHex(provider.chacha20poly1305.open(key, nonce, sealed, aad)) !== test.msg) problems.push(`tcId ${test.tcId}: open differs`);
        continue;
      }
      // Invalid: a modified tag must fail to open (E_AEAD); a nonce that is not 12 bytes must be refused outright (E_KEY).
      const expected = nonce.length === 12 ? 'E_AEAD' : 'E_KEY';
      const openCode = errorCode(() => provider.chacha20poly1305.open(key, nonce, sealed, aad));
      if (openCode !== expected) problems.push(`tcId ${test.tcId}: open gave ${openCode ?? 'plaintext'}, expected ${expected}`);
      if (nonce.length !== 12) {
        const sealCode = errorCode(() => provider.chacha20poly1305.seal(key, nonce, fromHex(test.msg), aad));
        if (sealCode !== 'E_KEY') problems.push(`tcId ${test.tcId}: seal with a ${nonce.length}-byte nonce gave ${sealCode ?? 'ciphertext'}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('matches every Wycheproof HMAC-SHA256 case, comparing the first tagSize bits (174 cases)', () => {
    const cases = flatten(wpHmac);
    const wrong = cases.filter(({ group, test }) => {
      const tag = provider.hmacSha256(fromHex(test.key), fromHex(test.msg)).subarray(0, group.tagSize / 8);
      return provider.equal(tag, fromHex(test.tag)) !== (test.result === 'valid');
    });
    expect(wrong.map(({ test }) => `tcId ${test.tcId} (${test.result}): ${test.comment}`)).toEqual([]);
  });

  it('reproduces the AES-256-GCM specification Test Cases 13-16 and rejects a flipped tag bit', () => {
    for (const v of aesGcmSpecVectors) {
      const key = fromHex(v.key);
      const nonce = fromHex(v.iv);
      const aad = v.aad === '' ? undefined : fromHex(v.aad);
      const sealed = provider.aes256gcm.seal(key, nonce, fromHex(v.pt), aad);
      expect(toHex(sealed), v.name).toBe(v.ct + v.tag);
      expect(toHex(provider.aes256gcm.open(key, nonce, sealed, aad)), v.name).toBe(v.pt);
      const forged = sealed.slice();
      forged[forged.length - 1]! ^= 0x01;
      expect(errorCode(() => provider.aes256gcm.open(key, nonce, forged, aad)), v.name).toBe('E_AEAD');
    }
  });

  it('reproduces SHA-256 of "abc" (FIPS 180-4 example) and HKDF-SHA256 RFC 5869 test case 1', () => {
    expect(toHex(provider.sha256(new TextEncoder().encode('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const okm = provider.hkdfSha256(fromHex('0b'.repeat(22)), fromHex('000102030405060708090a0b0c'), fromHex('f0f1f2f3f4f5f6f7f8f9'), 42);
    expect(toHex(okm)).toBe('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  });
});
