import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '@bulwark/errors';
import {
  concatBytes,
  fromBase64,
  fromBase64Url,
  fromHex,
  keyAlgorithms,
  publicKeyFromPem,
  publicKeyFromSpki,
  publicKeyToPem,
  publicKeyToSpki,
  secretKeyFromPem,
  secretKeyFromPkcs8,
  secretKeyToPem,
  secretKeyToPkcs8,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
  utf8Decode,
} from './encoding.js';
import { createNobleCryptoProvider } from './noble-provider.js';

function rawOf(key: KeyObject, part: 'x' | 'd'): Uint8Array {
  return new Uint8Array(Buffer.from(key.export({ format: 'jwk' })[part] ?? '', 'base64url'));
}

function encodingCode(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return error instanceof InputError ? error.code : `not an InputError: ${String(error)}`;
  }
  return undefined;
}

describe('byte encodings', () => {
  it('round-trips hex, base64 and base64url for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromHex(toHex(bytes))).toEqual(bytes);
        expect(fromBase64(toBase64(bytes))).toEqual(bytes);
        expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
        expect(toHex(bytes)).toBe(Buffer.from(bytes).toString('hex'));
      }),
      { numRuns: 300 },
    );
  });

  it('rejects malformed hex that Buffer would silently truncate', () => {
    expect(encodingCode(() => fromHex('abc'))).toBe('E_ENCODING');
    expect(encodingCode(() => fromHex('zz00'))).toBe('E_ENCODING');
    expect(encodingCode(() => fromHex('00zz'))).toBe('E_ENCODING');
    expect(fromHex('ABcd')).toEqual(new Uint8Array([0xab, 0xcd]));
  });

  it('accepts only canonical padded base64 and unpadded base64url', () => {
    expect(toBase64(utf8('hi!?'))).toBe('aGkhPw==');
    expect(toBase64Url(utf8('hi!?'))).toBe('aGkhPw');
    expect(encodingCode(() => fromBase64('aGkhPw'))).toBe('E_ENCODING'); // missing padding
    expect(encodingCode(() => fromBase64('aGkhPx=='))).toBe('E_ENCODING'); // non-zero pad bits
    expect(encodingCode(() => fromBase64('aGkh Pw=='))).toBe('E_ENCODING');
    expect(encodingCode(() => fromBase64('aGkh-w=='))).toBe('E_ENCODING'); // base64url alphabet
    expect(encodingCode(() => fromBase64Url('aGkhPw=='))).toBe('E_ENCODING');
    expect(encodingCode(() => fromBase64Url('aGkhPx'))).toBe('E_ENCODING');
    expect(encodingCode(() => fromBase64Url('a'))).toBe('E_ENCODING');
  });

  it('encodes UTF-8, decodes it strictly, and concatenates bytes', () => {
    expect(toHex(utf8('é€'))).toBe('c3a9e282ac');
    expect(utf8Decode(fromHex('c3a9e282ac'))).toBe('é€');
    expect(encodingCode(() => utf8Decode(fromHex('c3')))).toBe('E_ENCODING');
    expect(concatBytes(fromHex('01'), new Uint8Array(0), fromHex('0203'))).toEqual(fromHex('010203'));
  });
});

describe.each(keyAlgorithms)('%s key encodings', (algorithm) => {
  // Imported from random bytes rather than made by generateKeyPairSync, whose keys can deadlock a
  // JWK export on Node 20 (node-provider.ts, KEYGEN_DEADLOCK).
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: algorithm === 'ed25519' ? 'Ed25519' : 'X25519', d: randomBytes(32).toString('base64url'), x: '' },
    format: 'jwk',
  });
  const generated = { privateKey, publicKey: createPublicKey(privateKey) };
  const rawPublic = rawOf(generated.publicKey, 'x');
  const rawSecret = rawOf(generated.privateKey, 'd');

  it('produces the same SPKI and PKCS#8 DER as node:crypto, byte for byte', () => {
    expect(publicKeyToSpki(algorithm, rawPublic)).toEqual(new Uint8Array(generated.publicKey.export({ format: 'der', type: 'spki' })));
    expect(secretKeyToPkcs8(algorithm, rawSecret)).toEqual(new Uint8Array(generated.privateKey.export({ format: 'der', type: 'pkcs8' })));
    expect(publicKeyToPem(algorithm, rawPublic)).toBe(generated.publicKey.export({ format: 'pem', type: 'spki' }));
    expect(secretKeyToPem(algorithm, rawSecret)).toBe(generated.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  });

  it('exports keys that node:crypto imports as the same key', () => {
    const imported = createPublicKey(publicKeyToPem(algorithm, rawPublic));
    expect(imported.asymmetricKeyType).toBe(algorithm);
    expect(rawOf(imported, 'x')).toEqual(rawPublic);
    const importedSecret = createPrivateKey({ key: Buffer.from(secretKeyToPkcs8(algorithm, rawSecret)), format: 'der', type: 'pkcs8' });
    expect(rawOf(importedSecret, 'd')).toEqual(rawSecret);
    expect(rawOf(createPublicKey(importedSecret), 'x')).toEqual(rawPublic);
  });

  it("imports node:crypto's DER and PEM exports as the raw keys", () => {
    const spki = new Uint8Array(generated.publicKey.export({ format: 'der', type: 'spki' }));
    const pkcs8 = new Uint8Array(generated.privateKey.export({ format: 'der', type: 'pkcs8' }));
    expect(publicKeyFromSpki(algorithm, spki)).toEqual(rawPublic);
    expect(secretKeyFromPkcs8(algorithm, pkcs8)).toEqual(rawSecret);
    expect(publicKeyFromPem(algorithm, generated.publicKey.export({ format: 'pem', type: 'spki' }) as string)).toEqual(rawPublic);
    expect(secretKeyFromPem(algorithm, generated.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)).toEqual(rawSecret);
    // CRLF line ends, as files written on Windows have them.
    const crlf = (generated.publicKey.export({ format: 'pem', type: 'spki' }) as string).replace(/\n/g, '\r\n');
    expect(publicKeyFromPem(algorithm, crlf)).toEqual(rawPublic);
  });

  it('refuses a key of the other algorithm, the wrong PEM label, and a bad raw length', () => {
    const other = algorithm === 'ed25519' ? 'x25519' : 'ed25519';
    expect(encodingCode(() => publicKeyFromSpki(other, publicKeyToSpki(algorithm, rawPublic)))).toBe('E_ENCODING');
    expect(encodingCode(() => secretKeyFromPkcs8(other, secretKeyToPkcs8(algorithm, rawSecret)))).toBe('E_ENCODING');
    expect(encodingCode(() => publicKeyFromPem(algorithm, secretKeyToPem(algorithm, rawSecret)))).toBe('E_ENCODING');
    expect(encodingCode(() => publicKeyFromSpki(algorithm, fromHex('3000')))).toBe('E_ENCODING');
    expect(encodingCode(() => publicKeyToSpki(algorithm, new Uint8Array(31)))).toBe('E_ENCODING');
    expect(encodingCode(() => secretKeyFromPem(algorithm, 'not a pem'))).toBe('E_ENCODING');
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
    expect(() => publicKeyFromSpki(algorithm, new Uint8Array(p256))).toThrow(/holds a ec key/);
  });
});

describe('interchange with the noble provider', () => {
  it('signs with a PEM secret key read back from node:crypto and verifies with node:crypto', async () => {
    const { verify } = await import('node:crypto');
    const noble = createNobleCryptoProvider();
    const { secretKey, publicKey } = noble.ed25519.generateKeyPair();
    const message = utf8('interchange');
    const signature = noble.ed25519.sign(secretKeyFromPem('ed25519', secretKeyToPem('ed25519', secretKey)), message);
    expect(verify(null, message, createPublicKey(publicKeyToPem('ed25519', publicKey)), signature)).toBe(true);
  });

  it('reads a PKCS#8 key with attributes (RFC 5958 §2) through the OpenSSL parser', () => {
    // The RFC 8410 §10.3 key pair and its "Curdle Chairs" attribute, as a version-0 OneAsymmetricKey.
    const seed = 'd4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842';
    const attributes = 'a01f301d060a2a864886f70d01090914310f0c0d437572646c6520436861697273';
    const der = fromHex(`304f020100300506032b657004220420${seed}${attributes}`);
    expect(toHex(secretKeyFromPkcs8('ed25519', der))).toBe(seed);
    expect(toHex(createNobleCryptoProvider().ed25519.publicKey(fromHex(seed)))).toBe(
      '19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1',
    );
  });
});
