import { readVectorText } from '@bulwark/testkit';
import { describe, expect, it } from 'vitest';
import { CachedVerifier, createWellKnownResponse, KeyPinStore, signSchema, keyFingerprint, type JsonObject } from './index.js';

const gen = 'schemapin/generated';
const devA = readVectorText(gen, 'keys/dev_a.private.pem');
const pem = readVectorText(gen, 'keys/dev_a.public.pem');
const discovery = createWellKnownResponse(pem, 'Example');
const tool = { name: 'search', description: 'Search files', inputSchema: { type: 'object' } };

function setup() {
  const signed = signSchema(tool, devA);
  const pins = new KeyPinStore();
  const cache = new CachedVerifier();
  const input = (schema: JsonObject = tool, signature = signed.signature, d: unknown = discovery) => ({ toolId: 'search', domain: 'd', signed: { schema, signature }, discovery: d, revocation: null });
  const first = cache.check(pins, input());
  pins.set('search', 'd', first.newPin!);
  return { pins, cache, input, signed };
}

describe('CachedVerifier', () => {
  it('answers the same signed tool from the cache', () => {
    const { pins, cache, input } = setup();
    expect(cache.check(pins, input()).verdict).toBe('Trusted');
    expect(cache.check(pins, input()).verdict).toBe('Trusted');
    expect(cache.stats()).toMatchObject({ hits: 1 });
  });
  it('a changed schema or signature misses and is verified in full', () => {
    const { pins, cache, input, signed } = setup();
    cache.check(pins, input());
    expect(cache.check(pins, input({ ...tool, description: 'Search files!' }, signed.signature)).verdict).toBe('SignatureInvalid');
    expect(cache.check(pins, input(tool, signSchema({ x: 1 }, devA).signature)).verdict).toBe('SignatureInvalid');
    // The same value in another key order misses the cache and verifies (same canonical text).
    expect(cache.check(pins, input({ inputSchema: { type: 'object' }, description: 'Search files', name: 'search' })).verdict).toBe('Trusted');
  });
  it('a key revoked in the discovery list is refused on a hit, before any invalidation', () => {
    const { pins, cache, input } = setup();
    cache.check(pins, input());
    const revokedDiscovery = { ...discovery, revoked_keys: [keyFingerprint(pem)] };
    expect(cache.check(pins, input(tool, undefined, revokedDiscovery)).verdict).toBe('KeyRevoked');
  });
  it('a pin change is not served from the cache', () => {
    const { pins, cache, input } = setup();
    cache.check(pins, input());
    pins.set('search', 'd', { fingerprint: `sha256:${'1'.repeat(64)}` });
    expect(cache.check(pins, input()).verdict).toBe('KeyPinMismatch');
    pins.delete('search', 'd');
    cache.invalidateTool('search', 'd');
    expect(cache.check(pins, input()).result.key_pinning?.status).toBe('first_use');
  });
});
