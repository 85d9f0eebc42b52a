import type { CryptoProvider } from '@bulwark/crypto';
import { FileKeyStore } from '../file-key-store.js';
import { loadHsmConfig, type HsmConfig } from './hsm-config.js';
import { HsmKek } from './hsm-kek.js';
import { HsmRootSigner } from './hsm-root.js';
import { refuseUnfinishedKekRotation } from './kek-rotation.js';
import { Pkcs11Token } from './pkcs11-token.js';

export interface HsmKeyStore {
  readonly config: HsmConfig;
  readonly token: Pkcs11Token;
  /** The key files, wrapped by the token's KEK. */
  readonly store: FileKeyStore;
  readonly root: HsmRootSigner;
  close(): void;
}

export interface OpenHsmKeyStoreOptions {
  /** `SYMBIONT_HSM_CONFIG_PATH` / `[security] hsm_config_path`. */
  readonly configPath: string;
  /** The directory of the key files the token's KEK wraps. */
  readonly dir: string;
  readonly provider: CryptoProvider;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The HSM key store: log in to the token, find the root key pair and the KEK there (never
 * made here: a missing one is an error, so a wrong token is not silently given new keys), and
 * open the key directory under that KEK. Any failure releases the token and writes nothing.
 */
export async function openHsmKeyStore(options: OpenHsmKeyStoreOptions): Promise<HsmKeyStore> {
  const config = loadHsmConfig(options.configPath, options.env);
  const token = Pkcs11Token.open({ module: config.module, tokenLabel: config.tokenLabel, pin: config.pin });
  try {
    // Never mid-rotation: files written now under the old key would be lost with it.
    refuseUnfinishedKekRotation(token, config.kekLabel, options.dir);
    const root = HsmRootSigner.open(token, config.rootLabel);
    const kek = HsmKek.open(token, config.kekLabel, options.provider);
    const store = await FileKeyStore.open({ dir: options.dir, wrapper: kek, provider: options.provider });
    return { config, token, store, root, close: () => token.close() };
  } catch (error) {
    token.close();
    throw error;
  }
}
