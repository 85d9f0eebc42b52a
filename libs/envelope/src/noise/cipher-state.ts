import type { CryptoProvider } from '@bulwark/crypto';
import { writeU64 } from '../bytes.js';
import { EnvelopeError } from '../errors.js';

/** 2^64 - 1: reserved by Noise §5.1, never used to encrypt a message. */
export const MAX_NONCE = 0xffff_ffff_ffff_ffffn;

/** ChaChaPoly nonce (Noise §12.3): 32 bits of zeros followed by the 64-bit counter, little-endian. */
export function chachaNonce(counter: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  writeU64(nonce, 4, counter);
  return nonce;
}

/** The same nonce from the counter's 8 little-endian bytes as they stand in a frame header. */
export function chachaNonceFromBytes(counterLe: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(12);
  nonce.set(counterLe, 4);
  return nonce;
}

/** Noise §5.1 CipherState: a key (possibly empty) and a 64-bit nonce counter. */
export class CipherState {
  #k: Uint8Array | undefined;
  #n = 0n;

  constructor(
    private readonly provider: CryptoProvider,
    k?: Uint8Array,
  ) {
    this.#k = k;
  }

  /** §5.1 InitializeKey: a new key, nonce back to zero. */
  initializeKey(k: Uint8Array): void {
    this.#k = k;
    this.#n = 0n;
  }

  hasKey(): boolean {
    return this.#k !== undefined;
  }

  /** The key, for deriving frame keys from Split() output; undefined before MixKey. */
  get key(): Uint8Array | undefined {
    return this.#k;
  }

  setNonce(n: bigint): void {
    this.#n = n;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#k === undefined) return plaintext;
    const sealed = this.provider.chacha20poly1305.seal(this.#k, chachaNonce(this.#nextNonce()), plaintext, ad);
    this.#n++;
    return sealed;
  }

  /** Throws (the provider's E_AEAD) on a bad tag; the nonce only advances on success (§5.1). */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#k === undefined) return ciphertext;
    const plaintext = this.provider.chacha20poly1305.open(this.#k, chachaNonce(this.#nextNonce()), ciphertext, ad);
    this.#n++;
    return plaintext;
  }

  #nextNonce(): bigint {
    if (this.#n >= MAX_NONCE) {
      throw new EnvelopeError('E_NONCE_EXHAUSTED', 'noise: cipher state nonce reached 2^64-1; the session must be re-established');
    }
    return this.#n;
  }
}
