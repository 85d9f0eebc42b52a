import type * as NodeModule from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InputError } from '@bulwark/errors';
import { createCryptoProvider, cryptoProviderNames } from './select.js';

describe('provider selection', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('creates each named provider', () => {
    expect(cryptoProviderNames).toEqual(['sodium', 'node', 'noble']);
    for (const name of cryptoProviderNames) expect(createCryptoProvider(name).name).toBe(name);
  });

  it('refuses an unknown name with an InputError naming the variable, the value and the allowed values', () => {
    let error: unknown;
    try {
      createCryptoProvider('openssl');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('E_CONFIG');
    expect((error as InputError).message).toBe("SYMBIONT_CRYPTO_PROVIDER='openssl' is not a crypto provider; allowed: auto, sodium, node, noble");
    expect(() => createCryptoProvider('Node', '[security] crypto_provider')).toThrow(/^\[security\] crypto_provider='Node'/);
  });

  it('defaults to sodium where libsodium loads (it does on every CI host), and memoises the choice', async () => {
    vi.stubEnv('SYMBIONT_CRYPTO_PROVIDER', undefined);
    const { defaultCryptoProvider, preferredCryptoProvider } = await import('./select.js');
    expect(preferredCryptoProvider()).toBe('sodium');
    expect(createCryptoProvider('auto').name).toBe('sodium');
    expect(defaultCryptoProvider().name).toBe('sodium');
    vi.stubEnv('SYMBIONT_CRYPTO_PROVIDER', 'noble');
    expect(defaultCryptoProvider()).toBe(defaultCryptoProvider());
    expect(defaultCryptoProvider().name).toBe('sodium');
  });

  it('falls back to node where sodium-native cannot load, and refuses an explicit sodium there', async () => {
    vi.doMock('node:module', async (importOriginal) => {
      const actual = await importOriginal<typeof NodeModule>();
      const createRequire = (from: string | URL) => {
        const real = actual.createRequire(from);
        return Object.assign((id: string) => {
          if (id === 'sodium-native') throw new Error('No native build was found for platform=test');
          return real(id);
        }, real);
      };
      return { ...actual, default: { ...actual, createRequire }, createRequire };
    });
    vi.stubEnv('SYMBIONT_CRYPTO_PROVIDER', undefined);
    const { defaultCryptoProvider, createCryptoProvider: create } = await import('./select.js');
    expect(defaultCryptoProvider().name).toBe('node');
    expect(create('auto').name).toBe('node');
    expect(() => create('sodium')).toThrow(expect.objectContaining({ name: 'CryptoError', code: 'E_UNAVAILABLE' }));
    expect(() => create('sodium')).toThrow(/not available on this host: sodium-native did not load \(No native build was found for platform=test\)/);
    vi.doUnmock('node:module');
  });

  it('reads SYMBIONT_CRYPTO_PROVIDER', async () => {
    vi.stubEnv('SYMBIONT_CRYPTO_PROVIDER', 'noble');
    const { defaultCryptoProvider } = await import('./select.js');
    expect(defaultCryptoProvider().name).toBe('noble');
  });

  it('throws on every call while SYMBIONT_CRYPTO_PROVIDER is bad', async () => {
    vi.stubEnv('SYMBIONT_CRYPTO_PROVIDER', 'fast');
    const { defaultCryptoProvider } = await import('./select.js');
    // resetModules gives this import its own copy of @bulwark/errors, so match by name and code.
    expect(() => defaultCryptoProvider()).toThrow(expect.objectContaining({ name: 'InputError', code: 'E_CONFIG' }));
    expect(() => defaultCryptoProvider()).toThrow(/SYMBIONT_CRYPTO_PROVIDER='fast'/);
  });
});
