import { InputError } from '@bulwark/errors';
import { createNobleCryptoProvider } from './noble-provider.js';
import { createNodeCryptoProvider } from './node-provider.js';
import type { CryptoProvider, CryptoProviderName } from './provider.js';
import { createSodiumCryptoProvider, isSodiumAvailable } from './sodium-provider.js';

/** The environment variable that chooses the provider (DESIGN §9: SYMBIONT_* configuration). */
export const CRYPTO_PROVIDER_ENV = 'SYMBIONT_CRYPTO_PROVIDER';

export const cryptoProviderNames: readonly CryptoProviderName[] = ['sodium', 'node', 'noble'];

/**
 * `sodium` where libsodium loads, else `node`: libsodium signs 2x and seals small messages
 * 5-8x faster than OpenSSL here, and OpenSSL is several times faster than noble on every
 * primitive (README, "Measurements").
 */
export function preferredCryptoProvider(): CryptoProviderName {
  return isSodiumAvailable() ? 'sodium' : 'node';
}

export function isCryptoProviderName(value: string): value is CryptoProviderName {
  return (cryptoProviderNames as readonly string[]).includes(value);
}

/** What configuration may say: a provider, or `auto` for {@link preferredCryptoProvider}. */
export const AUTO_CRYPTO_PROVIDER = 'auto';
const choices = [AUTO_CRYPTO_PROVIDER, ...cryptoProviderNames];

/**
 * A new provider (with its own key caches). `source` names where `name` came from, for the
 * error message when it is not a provider. `auto` (the default) is {@link preferredCryptoProvider};
 * asking for `sodium` by name where it cannot load is an error (E_UNAVAILABLE), never a silent switch.
 */
export function createCryptoProvider(choice: string = AUTO_CRYPTO_PROVIDER, source: string = CRYPTO_PROVIDER_ENV): CryptoProvider {
  const name = choice === AUTO_CRYPTO_PROVIDER ? preferredCryptoProvider() : choice;
  if (!isCryptoProviderName(name)) {
    throw new InputError('E_CONFIG', `${source}='${name}' is not a crypto provider; allowed: ${choices.join(', ')}`, { variable: source, value: name, allowed: choices });
  }
  switch (name) {
    case 'sodium':
      return createSodiumCryptoProvider();
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
 * The process-wide provider: SYMBIONT_CRYPTO_PROVIDER, `auto` when it is unset or empty. Chosen once (the first call wins, so key caches are shared); a bad
 * value throws on every call.
 */
export function defaultCryptoProvider(): CryptoProvider {
  if (memoised === undefined) {
    const configured = process.env[CRYPTO_PROVIDER_ENV];
    memoised = createCryptoProvider(configured === undefined || configured === '' ? AUTO_CRYPTO_PROVIDER : configured);
  }
  return memoised;
}
