import { KeyStoreError } from '../errors.js';
import { refuseUnfinishedKekRotation } from './kek-rotation.js';
import type { RootSigner } from '../root-signer.js';
import type { ObjectHandle, Pkcs11Token } from './pkcs11-token.js';

/**
 * The root signing key generated and used inside the token (issue 12): `sign` is C_Sign with
 * CKM_EDDSA; its private half is sensitive and never extractable, and a key that is not (made
 * outside, imported, or with its attributes changed) is refused at open.
 */
export class HsmRootSigner implements RootSigner {
  readonly version = 1;
  readonly publicKey: Uint8Array;
  readonly location: string;
  readonly #token: Pkcs11Token;
  readonly #key: ObjectHandle;

  private constructor(token: Pkcs11Token, key: ObjectHandle, publicKey: Uint8Array, label: string) {
    this.#token = token;
    this.#key = key;
    this.publicKey = publicKey;
    this.location = `${token.location}/${label}`;
  }

  static open(token: Pkcs11Token, label: string): HsmRootSigner {
    const privateKey = token.find('private', label);
    const publicKey = token.find('public', label);
    if (privateKey === undefined || publicKey === undefined) {
      throw new KeyStoreError('E_KEY_NOT_FOUND', `HSM: ${token.location} has no root key pair labelled ${JSON.stringify(label)} (provision the token first)`, { label });
    }
    const p = token.protection(privateKey);
    if (!p.sensitive || p.extractable || !p.neverExtractable || !p.alwaysSensitive) {
      throw new KeyStoreError('E_HSM_KEY', `HSM: ${token.location}: the root key ${JSON.stringify(label)} has been extractable or readable (sensitive ${p.sensitive}, extractable ${p.extractable}, never extractable ${p.neverExtractable}, always sensitive ${p.alwaysSensitive}); refusing it`, { label });
    }
    return new HsmRootSigner(token, privateKey, token.ed25519PublicKey(publicKey), label);
  }

  sign(message: Uint8Array): Uint8Array {
    return this.#token.signEd25519(this.#key, message);
  }

  /** The token session belongs to whoever opened it. */
  close(): void {}
}

/**
 * Makes what the token lacks of the key manager's keys: the root Ed25519 pair and the AES-256
 * KEK, both generated in the token. Never replaces a key that is there.
 */
export function provisionHsmKeys(token: Pkcs11Token, labels: { rootLabel: string; kekLabel: string }): { rootCreated: boolean; kekCreated: boolean } {
  // Mid-rotation the old KEK may be gone already: a new one made here would wrap nothing and hide the real one.
  refuseUnfinishedKekRotation(token, labels.kekLabel);
  const hasRoot = token.find('private', labels.rootLabel) !== undefined;
  const hasPublic = token.find('public', labels.rootLabel) !== undefined;
  if (hasRoot !== hasPublic) throw new KeyStoreError('E_HSM_KEY', `HSM: ${token.location}: only half of the root key pair ${JSON.stringify(labels.rootLabel)} is there; refusing to make another`, { label: labels.rootLabel });
  if (!hasRoot) token.generateEd25519(labels.rootLabel);
  const hasKek = token.find('secret', labels.kekLabel) !== undefined;
  if (!hasKek) token.generateAes256(labels.kekLabel);
  return { rootCreated: !hasRoot, kekCreated: !hasKek };
}
