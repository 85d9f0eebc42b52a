/**
 * The store a configuration puts a custodian's keys in (issue 12, HSM custody): `file`, the key
 * directory under the software KEK (the root is one of its files), or `hsm`
 * (`security.hsm_enabled`, SYMBIONT_KEY_STORE_TYPE=hsm, and `security.hsm_config_path`): the key
 * directory under the token's AES key, the root the token's own key pair, used through C_Sign.
 * Opening never makes a key: an HSM that lacks its root or KEK is refused (`bulwark keys hsm
 * provision` makes them).
 */
import type { BulwarkConfig } from '@bulwark/config';
import type { CryptoProvider } from '@bulwark/crypto';
import { FileKeyStore, loadKek, openHsmKeyStore, type HsmRootSigner } from '@bulwark/keystore';

export type CustodyStore =
  | { readonly kind: 'file'; readonly store: FileKeyStore; close(): void }
  | { readonly kind: 'hsm'; readonly store: FileKeyStore; readonly root: HsmRootSigner; close(): void };

export async function openCustodyStore(config: BulwarkConfig, provider: CryptoProvider, env: NodeJS.ProcessEnv, cwd: string, dir: string): Promise<CustodyStore> {
  const configPath = config.security.hsm_config_path;
  if (config.security.hsm_enabled && configPath !== undefined) {
    const hsm = await openHsmKeyStore({ configPath, dir, provider, env });
    return { kind: 'hsm', store: hsm.store, root: hsm.root, close: () => hsm.close() };
  }
  const kek = loadKek({ provider, env, kekFile: config.keys.kek_file, cwd });
  return { kind: 'file', store: await FileKeyStore.open({ dir, wrapper: kek, provider }), close: () => undefined };
}
