/**
 * The key manager's own store (custody, issue 12), as the configuration says:
 * - `file` (default): the key directory (`keys.dir`) under the software KEK (SYMBIONT_KEK /
 *   SYMBIONT_KEK_FILE); the root key is one of its files, unwrapped into memory at start.
 * - `hsm` (`SYMBIONT_KEY_STORE_TYPE=hsm`, `SYMBIONT_HSM_CONFIG_PATH`): a PKCS#11 token. The root
 *   key is generated and used inside it (never extractable); the key directory's files (the NATS
 *   operator/account keys, the key manager's identity) are wrapped by the token's AES key.
 *
 * Either way the root must be the pinned `keys.root_public_key`. Any failure (wrong KEK, a
 * corrupted file, an unreachable token, a wrong PIN, a missing or foreign root) throws before
 * anything is written or connected: the service refuses to start.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadKek, openHsmKeyStore, openStoreRootSigner, parseRootPublicKey, type RootSigner } from '@bulwark/keystore';

export interface KeyManagerStoreConfig {
  readonly keys: { readonly dir?: string | undefined; readonly kek_file?: string | undefined; readonly root_public_key?: string | undefined };
  readonly security: { readonly hsm_enabled: boolean; readonly hsm_config_path?: string | undefined };
}

export interface KeyManagerStore {
  readonly kind: 'file' | 'hsm';
  /** The key files (wrapped by the software KEK or the token's): the NATS keys, the service's identity. */
  readonly store: FileKeyStore;
  readonly root: RootSigner;
  readonly rootPublicKey: Uint8Array;
  close(): void;
}

export async function openKeyManagerStore(config: KeyManagerStoreConfig, provider: CryptoProvider, env: Readonly<Record<string, string | undefined>> = process.env): Promise<KeyManagerStore> {
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) throw new InputError('E_CONFIG', 'key-manager: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset', {});
  const rootPublicKey = parseRootPublicKey(pinned, 'keys.root_public_key');
  const dir = config.keys.dir ?? DEFAULT_KEY_DIR;
  let opened: Omit<KeyManagerStore, 'rootPublicKey'>;
  if (config.security.hsm_enabled) {
    const configPath = config.security.hsm_config_path;
    if (configPath === undefined) throw new InputError('E_CONFIG', 'key-manager: the HSM key store needs security.hsm_config_path (SYMBIONT_HSM_CONFIG_PATH)', {});
    const hsm = await openHsmKeyStore({ configPath, dir, provider, env });
    opened = { kind: 'hsm', store: hsm.store, root: hsm.root, close: () => hsm.close() };
  } else {
    const store = await FileKeyStore.open({ dir, wrapper: loadKek({ provider, kekFile: config.keys.kek_file, env }), provider });
    const root = await openStoreRootSigner(store, provider);
    opened = { kind: 'file', store, root, close: () => root.close() };
  }
  if (!provider.equal(opened.root.publicKey, rootPublicKey)) {
    opened.close();
    throw new InputError('E_CONFIG', `key-manager: the root key in ${opened.root.location} is not the pinned keys.root_public_key`, {});
  }
  return { ...opened, rootPublicKey };
}
