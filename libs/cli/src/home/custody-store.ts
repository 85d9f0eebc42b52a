/**
 * The store a configuration puts a custodian's keys in (issue 12, HSM custody): `file`, the key
 * directory under the software KEK (the root is one of its files), or `hsm`
 * (`security.hsm_enabled`, SYMBIONT_KEY_STORE_TYPE=hsm, and `security.hsm_config_path`): the key
 * directory under the token's AES key, the root the token's own key pair, used through C_Sign.
 * Opening never makes a key: an HSM that lacks its root or KEK is refused (`bulwark keys hsm
 * provision` makes them).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BulwarkConfig } from '@bulwark/config';
import type { CryptoProvider } from '@bulwark/crypto';
import { FileKeyStore, KeyStoreError, loadKek, openHsmKeyStore, parseRootPublicKey, readRootPinFile, ROOT_KEY_OWNER, ROOT_PIN_FILE, type HsmRootSigner } from '@bulwark/keystore';

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

/**
 * An HSM store's root, checked before it signs anything for the store (`bulwark init`, offline
 * `bulwark principal add`): the store holds no root key file (one there is a store of another
 * custody), and the root its `root.pub` names (when it has one) is the token's: another token's
 * root would re-sign its identities. `command` names the caller in the refusal; `rootFileHint`
 * says what to do instead of opening a file-root store on the token.
 */
export async function tokenStoreRoot(custody: Extract<CustodyStore, { kind: 'hsm' }>, provider: CryptoProvider, command: string, rootFileHint: string): Promise<{ root: HsmRootSigner; pinned: boolean }> {
  const { store, root } = custody;
  if ((await store.list(ROOT_KEY_OWNER)).some((k) => k.kind === 'ed25519')) {
    throw new KeyStoreError('E_KEY_CUSTODY', `key directory ${store.dir} holds a root key file: it is a store under a software KEK, not the HSM's (${root.location}); ${rootFileHint}`, { dir: store.dir });
  }
  const pin = join(store.dir, ROOT_PIN_FILE);
  if (!existsSync(pin)) return { root, pinned: false };
  if (!provider.equal(parseRootPublicKey(readRootPinFile(pin), pin), root.publicKey)) {
    throw new KeyStoreError('E_KEY_CUSTODY', `the token's root ${root.location} is not the root of key directory ${store.dir} (its ${ROOT_PIN_FILE}); ${command} will not re-sign its identities with another root`, { dir: store.dir });
  }
  return { root, pinned: true };
}
