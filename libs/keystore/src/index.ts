export { KeyStoreError, KeyStoreInputError } from './errors.js';
export {
  ROOT_KEY_OWNER,
  isKeyOwner,
  isPrincipalId,
  parsePrincipalId,
  requirePrincipalId,
  type PrincipalId,
  type PrincipalKind,
} from './principal-id.js';
export { KEK_ENV, KEK_FILE_ENV, KEK_LENGTH, SoftwareKek, loadKek, type KeyWrapper, type LoadKekOptions } from './kek.js';
export {
  IDENTITY_KEY_KINDS,
  KEY_KINDS,
  NKEY_KINDS,
  WRAPPED_KEY_FORMAT,
  decodeWrappedKeyFile,
  encodeWrappedKeyFile,
  wrapAd,
  type KeyKind,
  type KeyRef,
  type NkeyKind,
  type StoredKeyInfo,
  type WrappedKeyFile,
} from './wrapped-key.js';
export type { KeyStore, StoredKey } from './key-store.js';
export { DEFAULT_KEY_DIR, FileKeyStore, keyFileName, PENDING_DIR, type FileKeyStoreOptions } from './file-key-store.js';
export { pendingRotationSlot, type PendingRotation, type PendingRotationSlot } from './pending-keys.js';
export { ensureIdentity, ensureRootKey, generateKey, loadIdentity, loadRootKey, type Identity, type RootKey } from './identity.js';
export { ROOT_PIN_FILE, formatRootPin, parseRootPin, parseRootPublicKey, readRootPinFile, writeRootPin } from './root-pin.js';
export { openStoreRootSigner, type RootSigner } from './root-signer.js';
export { CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, Pkcs11Token, type ObjectHandle, type TokenOptions } from './hsm/pkcs11-token.js';
export { DEFAULT_KEK_LABEL, DEFAULT_ROOT_LABEL, HSM_PIN_ENV, loadHsmConfig, type HsmConfig } from './hsm/hsm-config.js';
export { HsmKek } from './hsm/hsm-kek.js';
export { HsmRootSigner, provisionHsmKeys } from './hsm/hsm-root.js';
export { openHsmKeyStore, type HsmKeyStore, type OpenHsmKeyStoreOptions } from './hsm/open-hsm.js';
export { HSM_KEK_ROTATION_FILE, nextKekLabel, refuseUnfinishedKekRotation, rotateHsmKek, type HsmKekRotation, type KekRotationStep, type RotateHsmKekOptions } from './hsm/kek-rotation.js';
