import { InputError } from '@bulwark/errors';
import { createNobleCryptoProvider } from './noble-provider.js';
import { createNodeCryptoProvider } from './node-provider.js';
import type { CryptoProvider, CryptoProviderName } from './provider.js';

/** The environment variable that chooses the provider (DESIGN §9: SYMBIONT_* configuration). */
export const CRYPTO_PROVIDER_ENV = 'SYMBIONT_CRYPTO_PROVIDER';

export const cryptoProviderNames: readonly CryptoProviderName[] = ['node', 'noble'];

/** `node`: OpenSSL is several times faster on every primitive (README, "Measurements"). */
export const DEFAULT_CRYPTO_PROVIDER: CryptoProviderName = 'node';

export function isCryptoProviderName(value: string): value is CryptoProviderName {
  return (cryptoProviderNames as readonly string[]).includes(value);
}

/**
 * A new provider (with its own key caches). `source` names where `name` came from, for the
 * error message when it is not a provider.
 */
export function createCryptoProvider(name: string, source: string = CRYPTO_PROVIDER_ENV): CryptoProvider {
  if (!isCryptoProviderName(name)) {
    throw new InputError(
      'E_CONFIG',
      `${source}='${name}' is not a crypto provider; allowed: ${cryptoProviderNames.join(', ')}`,
      { variable: source, value: name, allowed: cryptoProviderNames },
    );
  }
  switch (name) {
    case 'node':
      return createNodeCryptoProvider();
    case 'noble':
      return createNobleCryptoProvider();
    default: {
      const unreachable: never = name;
      throw new Error(`unhandled crypto provider ${String(unreachable)}`);
    }
  }
}

let memoised: CryptoProvider | undefined;

/**
 * The process-wide provider: SYMBIONT_CRYPTO_PROVIDER, or `node` when it is unset or empty.
 * Chosen once (the first call wins, so key caches are shared); a bad value throws on every call.
 */
export function defaultCryptoProvider(): CryptoProvider {
  if (memoised === undefined) {
    const configured = process.env[CRYPTO_PROVIDER_ENV];
    memoised = createCryptoProvider(configured === undefined || configured === '' ? DEFAULT_CRYPTO_PROVIDER : configured);
  }
  return memoised;
}
