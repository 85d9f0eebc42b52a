import { inspect } from 'node:util';
import type { CryptoProvider } from '@bulwark/crypto';
import { KeyStoreError } from '../errors.js';
import { WRAP_NONCE_LENGTH, type KeyWrapper } from '../kek.js';
import type { ObjectHandle, Pkcs11Token } from './pkcs11-token.js';

/**
 * A KEK that never leaves the token: the same AES-256-GCM as `SoftwareKek` (the key files do
 * not change), run by the token with its non-extractable AES key. The nonce is drawn here, per
 * file, as for the software KEK.
 */
export class HsmKek implements KeyWrapper {
  readonly source: string;
  readonly #token: Pkcs11Token;
  readonly #key: ObjectHandle;
  readonly #provider: CryptoProvider;

  private constructor(token: Pkcs11Token, key: ObjectHandle, label: string, provider: CryptoProvider) {
    this.#token = token;
    this.#key = key;
    this.#provider = provider;
    this.source = `${token.location}/${label}`;
  }

  /** The token's AES key labelled `label`; `E_HSM_KEY` when it is missing or could leave the token. */
  static open(token: Pkcs11Token, label: string, provider: CryptoProvider): HsmKek {
    const key = token.find('secret', label);
    if (key === undefined) throw new KeyStoreError('E_HSM_KEY', `HSM: ${token.location} has no key-encryption key labelled ${JSON.stringify(label)} (provision the token first)`, { label });
    const p = token.protection(key);
    if (!p.sensitive || p.extractable) throw new KeyStoreError('E_HSM_KEY', `HSM: ${token.location}: the key-encryption key ${JSON.stringify(label)} is extractable or not sensitive; refusing it`, { label });
    return new HsmKek(token, key, label, provider);
  }

  wrap(plaintext: Uint8Array, ad: Uint8Array): Promise<{ nonce: Uint8Array; ciphertext: Uint8Array }> {
    return Promise.resolve().then(() => {
      const nonce = this.#provider.randomBytes(WRAP_NONCE_LENGTH);
      return { nonce, ciphertext: this.#token.encryptGcm(this.#key, nonce, plaintext, ad) };
    });
  }

  unwrap(nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve().then(() => this.#token.decryptGcm(this.#key, nonce, ciphertext, ad));
  }

  toString(): string {
    return `[KEK in ${this.source}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
