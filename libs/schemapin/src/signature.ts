/**
 * Signatures as the JS SDK makes them (protocol note §2): ECDSA P-256 with SHA-256, DER
 * `SEQUENCE{r,s}`, standard Base64. For schemas and skills the message given to
 * ECDSA-with-SHA-256 is the 32-byte SHA-256 digest of the canonical text (so the curve
 * signs SHA-256(SHA-256(canonical)): `crypto.sign('sha256', digest, key)`); for trust
 * bundles it is the canonical bytes themselves (single hash). Go's schema signatures
 * (single hash) are not accepted, as the JS and Python verifiers do not accept them.
 */
import { sign, verify, type KeyObject } from 'node:crypto';

// Standard alphabet with padding (with the length a multiple of 4, this is exactly the
// groups-of-four form, at half the regex cost); a DER P-256 signature is 8..72 bytes.
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_SIGNATURE_B64 = 128;

/** ECDSA-P256-SHA256 over `message`, DER, Base64. */
export function signMessage(message: Uint8Array, privateKey: KeyObject): string {
  return sign('sha256', message, { key: privateKey, dsaEncoding: 'der' }).toString('base64');
}

/**
 * Verifies a Base64 DER signature over `message`. Returns false, never throws, for
 * anything malformed (bad Base64, P1363 r||s, wrong length), as the SDK's verifier does.
 */
export function verifyMessage(message: Uint8Array, signatureB64: unknown, publicKey: KeyObject): boolean {
  if (typeof signatureB64 !== 'string' || signatureB64.length === 0 || signatureB64.length > MAX_SIGNATURE_B64) return false;
  if (signatureB64.length % 4 !== 0 || !BASE64.test(signatureB64)) return false;
  try {
    return verify('sha256', message, { key: publicKey, dsaEncoding: 'der' }, Buffer.from(signatureB64, 'base64'));
  } catch {
    return false;
  }
}

/** The SDK's `signSchemaHash(hash, key)`: the digest is the message. */
export const signSchemaHash = (digest: Uint8Array, privateKey: KeyObject): string => signMessage(digest, privateKey);
/** The SDK's `verifySchemaSignature(hash, b64, key)`. */
export const verifySchemaHash = (digest: Uint8Array, signatureB64: unknown, publicKey: KeyObject): boolean => verifyMessage(digest, signatureB64, publicKey);
