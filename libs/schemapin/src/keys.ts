/**
 * ECDSA P-256 keys as SchemaPin uses them (protocol note §2): public keys as SPKI PEM,
 * private keys as PKCS#8 PEM, and the key fingerprint `sha256:<hex>` over the SPKI DER
 * (not the PEM text). Anything that is not a P-256 EC key is refused.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ErrorCode, SchemaPinError } from './errors.js';

export const PUBLIC_KEY_PEM_HEADER = '-----BEGIN PUBLIC KEY-----';
const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;

export interface LoadedPublicKey {
  readonly key: KeyObject;
  readonly pem: string;
  /** `sha256:` + hex SHA-256 of the SPKI DER. */
  readonly fingerprint: string;
}

function assertP256(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new SchemaPinError(ErrorCode.keyNotFound, `Failed to load public key: ${what} is not an ECDSA P-256 key`);
  }
}

// Parsing a PEM costs more than a verification's hash; discovery keys repeat, so the parsed
// key and its fingerprint are kept per PEM text (bounded; oldest dropped first).
const cache = new Map<string, LoadedPublicKey>();
const CACHE_LIMIT = 256;

/** Parses an SPKI PEM public key, refusing anything but P-256, and computes its fingerprint. */
export function loadPublicKey(pem: string): LoadedPublicKey {
  const hit = cache.get(pem);
  if (hit !== undefined) return hit;
  if (typeof pem !== 'string' || !pem.includes(PUBLIC_KEY_PEM_HEADER)) {
    throw new SchemaPinError(ErrorCode.discoveryInvalid, 'Discovery document missing or invalid public_key_pem');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new SchemaPinError(ErrorCode.keyNotFound, `Failed to load public key: ${(cause as Error).message}`, {}, { cause });
  }
  assertP256(key, 'the public key');
  const der = key.export({ type: 'spki', format: 'der' });
  const loaded: LoadedPublicKey = { key, pem, fingerprint: `sha256:${createHash('sha256').update(der).digest('hex')}` };
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(pem, loaded);
  return loaded;
}

/** The SDK's `calculateKeyFingerprint(pem)`. */
export function keyFingerprint(pem: string): string {
  return loadPublicKey(pem).fingerprint;
}

export function isFingerprint(value: unknown): value is string {
  return typeof value === 'string' && FINGERPRINT.test(value);
}

/** Parses a PKCS#8 (or SEC1) PEM private key, refusing anything but P-256. */
export function loadPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new SchemaPinError(ErrorCode.keyNotFound, `Failed to load private key: ${(cause as Error).message.split('\n')[0]}`, {}, { cause });
  }
  assertP256(key, 'the private key');
  return key;
}

/** The SPKI PEM of a private key's public half, as the SDK exports it. */
export function publicPemOf(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string;
}

/** A new P-256 key pair as PEM (PKCS#8 private, SPKI public), like the SDK's `generateKeypair`. */
export function generateKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}
