import type { CryptoProvider } from '@bulwark/crypto';
import { CipherState } from './cipher-state.js';

const HASHLEN = 32;
const EMPTY = new Uint8Array(0);
const ONE = Uint8Array.of(0x01);
const TWO = Uint8Array.of(0x02);
const THREE = Uint8Array.of(0x03);

/**
 * Noise §4.3 HKDF: HMAC-SHA256 based, two or three 32-byte outputs. (Not RFC 5869 with an
 * info string: Noise chains HMAC(temp_key, previous_output || byte).)
 */
export function noiseHkdf(provider: CryptoProvider, chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const tempKey = provider.hmacSha256(chainingKey, ikm);
  const out1 = provider.hmacSha256(tempKey, ONE);
  const out2 = provider.hmacSha256(tempKey, [out1, TWO]);
  if (outputs === 2) return [out1, out2];
  return [out1, out2, provider.hmacSha256(tempKey, [out2, THREE])];
}

/** Noise §5.2 SymmetricState: chaining key ck, handshake hash h, and a CipherState. */
export class SymmetricState {
  #ck: Uint8Array;
  #h: Uint8Array;
  readonly #cipher: CipherState;

  constructor(
    private readonly provider: CryptoProvider,
    protocolName: string,
  ) {
    const name = new TextEncoder().encode(protocolName);
    // InitializeSymmetric: h = name padded with zeros if it fits in HASHLEN, else HASH(name).
    if (name.length <= HASHLEN) {
      this.#h = new Uint8Array(HASHLEN);
      this.#h.set(name);
    } else {
      this.#h = provider.sha256(name);
    }
    this.#ck = this.#h;
    this.#cipher = new CipherState(provider);
  }

  get handshakeHash(): Uint8Array {
    return this.#h;
  }

  hasKey(): boolean {
    return this.#cipher.hasKey();
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = noiseHkdf(this.provider, this.#ck, ikm, 2);
    this.#ck = ck!;
    this.#cipher.initializeKey(tempK!);
  }

  mixHash(data: Uint8Array): void {
    this.#h = this.provider.sha256([this.#h, data]);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cipher.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cipher.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Two CipherStates: the first for initiator → responder, the second for responder → initiator. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = noiseHkdf(this.provider, this.#ck, EMPTY, 2);
    return [new CipherState(this.provider, k1), new CipherState(this.provider, k2)];
  }
}
