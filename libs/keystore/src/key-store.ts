import type { StoredKeyInfo, KeyRef } from './wrapped-key.js';

/**
 * Where private keys live at rest. The file store (`FileKeyStore`) is the one implemented;
 * the interface asks nothing a PKCS#11 store could not do (keys addressed by owner, kind
 * and version; public data listable without the KEK), so a SoftHSM2-backed store can be
 * added beside it without changing its callers.
 */
export interface KeyStore {
  /** Where the keys are, safe to print: `file:/abs/dir`. */
  readonly location: string;
  /** Stores a new private key. Never replaces one: an existing ref is `E_KEY_EXISTS`. */
  put(ref: KeyRef, secretKey: Uint8Array): Promise<StoredKeyInfo>;
  /** The key and its public data; `E_KEY_NOT_FOUND` when absent, `E_KEY_UNWRAP` when it does not open. */
  get(ref: KeyRef): Promise<StoredKey>;
  /** Every stored key's public data (optionally one owner's), sorted by owner, kind, version. Needs no KEK. */
  list(owner?: string): Promise<readonly StoredKeyInfo[]>;
  has(ref: KeyRef): Promise<boolean>;
}

export interface StoredKey {
  readonly info: StoredKeyInfo;
  readonly secretKey: Uint8Array;
}
