export type { CryptoProvider, CryptoProviderName, Ed25519KeyPair, X25519KeyPair } from './provider.js';
export {
  composedFrameCipher,
  FRAME_MAC_LENGTH,
  isNativeFrameCipherAvailable,
  nativeFrameCipher,
  type FrameCipher,
  type FrameKeys,
  type FrameOpenFailure,
} from './frame-cipher.js';
export { CryptoError, isCryptoError, type CryptoErrorCode } from './errors.js';
export { allocateUninitialized } from './alloc.js';
export { sizes } from './lengths.js';
export { RandomPool } from './random-pool.js';
export {
  AUTO_CRYPTO_PROVIDER,
  CRYPTO_PROVIDER_ENV,
  createCryptoProvider,
  cryptoProviderNames,
  defaultCryptoProvider,
  isCryptoProviderName,
  preferredCryptoProvider,
} from './select.js';
export { createNodeCryptoProvider, type NodeCryptoProviderOptions } from './node-provider.js';
export { createNobleCryptoProvider } from './noble-provider.js';
export { createSodiumCryptoProvider, isSodiumAvailable } from './sodium-provider.js';
export {
  asBytes,
  concatBytes,
  fromBase64,
  fromBase64Url,
  fromHex,
  keyAlgorithms,
  publicKeyFromPem,
  publicKeyFromSpki,
  publicKeyToPem,
  publicKeyToSpki,
  secretKeyFromPem,
  secretKeyFromPkcs8,
  secretKeyToPem,
  secretKeyToPkcs8,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
  utf8Decode,
  type KeyAlgorithm,
} from './encoding.js';
