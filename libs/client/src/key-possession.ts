/**
 * Proof of possession (issue 12: the principal generates its keys where it runs, and the key
 * manager certifies only keys their holder proved): an Ed25519 signature by the new identity
 * key over what is being certified. A key manager that certified a public key nobody could
 * sign with would let anyone register someone else's key under their own name.
 *
 * signed = lp("bulwark/keys/possession/v1") ‖ lp(principal) ‖ version u32 LE ‖ ed25519 (32) ‖ x25519 (32) ‖ lp(natsUser)
 */
import type { CryptoProvider } from '@bulwark/crypto';

const LABEL = new TextEncoder().encode('bulwark/keys/possession/v1');

function lp(bytes: Uint8Array): Uint8Array[] {
  return [Uint8Array.of(bytes.length), bytes];
}

export function possessionMessage(principal: string, version: number, ed25519: Uint8Array, x25519: Uint8Array, natsUser: string): Uint8Array {
  const v = new Uint8Array(4);
  new DataView(v.buffer).setUint32(0, version, true);
  const parts = [...lp(LABEL), ...lp(new TextEncoder().encode(principal)), v, ed25519, x25519, ...lp(new TextEncoder().encode(natsUser))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function proveKeyPossession(provider: CryptoProvider, principal: string, version: number, keys: { ed25519: { secretKey: Uint8Array; publicKey: Uint8Array }; x25519PublicKey: Uint8Array; natsUser: string }): Uint8Array {
  return provider.ed25519.sign(keys.ed25519.secretKey, possessionMessage(principal, version, keys.ed25519.publicKey, keys.x25519PublicKey, keys.natsUser));
}

export function checkKeyPossession(provider: CryptoProvider, principal: string, version: number, ed25519: Uint8Array, x25519: Uint8Array, natsUser: string, proof: Uint8Array): boolean {
  return ed25519.length === 32 && x25519.length === 32 && provider.ed25519.verify(ed25519, possessionMessage(principal, version, ed25519, x25519, natsUser), proof);
}

const ADOPT_LABEL = new TextEncoder().encode('bulwark/keys/adopt-nats-user/v1');

/**
 * What a service made by `bulwark init` signs with its current NATS user nkey at its first
 * rotation, so the key manager records that user as its version 1's (and can revoke it):
 * lp("bulwark/keys/adopt-nats-user/v1") ‖ lp(principal) ‖ lp(natsUser).
 */
export function adoptionMessage(principal: string, natsUser: string): Uint8Array {
  const parts = [...lp(ADOPT_LABEL), ...lp(new TextEncoder().encode(principal)), ...lp(new TextEncoder().encode(natsUser))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
