import type { CryptoProvider } from '@bulwark/crypto';
import type { KeyStore } from './key-store.js';
import { loadRootKey } from './identity.js';

/**
 * The root signing key as its user sees it: a public key and a sign operation. The file store's
 * root is unwrapped into memory; an HSM's never leaves the token (`HsmRootSigner`), so nothing
 * that signs with the root may ask for its bytes.
 */
export interface RootSigner {
  readonly version: number;
  readonly publicKey: Uint8Array;
  /** Where the key is, safe to print (`file:/dir`, `pkcs11:/module#token/label`). */
  readonly location: string;
  /** Ed25519 (RFC 8032, pure) over `message`. */
  sign(message: Uint8Array): Uint8Array;
  /** Forgets the key (zeroes a key held in memory; closes nothing it does not own). */
  close(): void;
}

/** The root key of a key store (the latest version), held in memory until `close`. */
export async function openStoreRootSigner(store: KeyStore, provider: CryptoProvider): Promise<RootSigner> {
  const root = await loadRootKey(store);
  const secretKey = root.keyPair.secretKey;
  return {
    version: root.version,
    publicKey: root.keyPair.publicKey,
    location: store.location,
    sign: (message) => provider.ed25519.sign(secretKey, message),
    close: () => secretKey.fill(0),
  };
}
