import { createCryptoProvider } from '@bulwark/crypto';
import { describe, expect, it } from 'vitest';
import { unwrapEpochKey, wrapEpochKey, WRAP_LENGTH, type WrapBinding } from './wrap.js';

describe.each(['sodium', 'node', 'noble'] as const)('epoch key wrap (%s provider)', (name) => {
  const provider = createCryptoProvider(name);
  const issuer = provider.x25519.generateKeyPair();
  const alice = provider.x25519.generateKeyPair();
  const bob = provider.x25519.generateKeyPair();
  const binding: WrapBinding = {
    channel: 'ledger.full',
    epoch: 3,
    recipient: 'analyst.alice',
    recipientKeyVersion: 2,
    recipientPublicKey: alice.publicKey,
    issuer: 'svc.key-manager',
    issuerKeyVersion: 1,
    issuerPublicKey: issuer.publicKey,
  };
  const { recipientPublicKey: _r, ...openBinding } = binding;
  const epochKey = provider.randomBytes(32);
  const wrap = wrapEpochKey(provider, binding, issuer.secretKey, epochKey);

  it('opens for its recipient, under the issuer key, for exactly its binding', () => {
    expect(wrap.length).toBe(WRAP_LENGTH);
    expect(unwrapEpochKey(provider, openBinding, alice.secretKey, wrap)).toEqual(epochKey);
    // Two wraps of one key differ (fresh ephemeral key each time).
    expect(wrapEpochKey(provider, binding, issuer.secretKey, epochKey)).not.toEqual(wrap);
  });

  it('refuses a wrap opened by another recipient key or claimed for another recipient', () => {
    expect(() => unwrapEpochKey(provider, openBinding, bob.secretKey, wrap)).toThrow(/does not open/);
    expect(() => unwrapEpochKey(provider, { ...openBinding, recipient: 'analyst.bob' }, alice.secretKey, wrap)).toThrow(/does not open/);
    expect(() => unwrapEpochKey(provider, { ...openBinding, recipientKeyVersion: 3 }, alice.secretKey, wrap)).toThrow(/does not open/);
  });

  it('refuses a wrap moved to another channel or epoch', () => {
    expect(() => unwrapEpochKey(provider, { ...openBinding, channel: 'soc.incidents' }, alice.secretKey, wrap)).toThrow(/does not open/);
    expect(() => unwrapEpochKey(provider, { ...openBinding, epoch: 4 }, alice.secretKey, wrap)).toThrow(/does not open/);
  });

  it('refuses a wrap not made with the issuer key (the issuer is authenticated, not only named)', () => {
    const forger = provider.x25519.generateKeyPair();
    // The forger knows every public value and claims the issuer's key: without its secret the wrap does not open.
    const forged = wrapEpochKey(provider, binding, forger.secretKey, epochKey);
    expect(() => unwrapEpochKey(provider, openBinding, alice.secretKey, forged)).toThrow(/does not open/);
    expect(() => unwrapEpochKey(provider, { ...openBinding, issuerKeyVersion: 2 }, alice.secretKey, wrap)).toThrow(/does not open/);
    expect(() => unwrapEpochKey(provider, { ...openBinding, issuer: 'svc.policy' }, alice.secretKey, wrap)).toThrow(/does not open/);
  });

  it('refuses every bit flip and every truncation', () => {
    for (let bit = 0; bit < wrap.length * 8; bit++) {
      const changed = wrap.slice();
      changed[bit >> 3]! ^= 1 << (bit & 7);
      expect(() => unwrapEpochKey(provider, openBinding, alice.secretKey, changed), `bit ${bit}`).toThrow(expect.objectContaining({ code: 'E_CHANNEL_WRAP' }));
    }
    expect(() => unwrapEpochKey(provider, openBinding, alice.secretKey, wrap.subarray(0, WRAP_LENGTH - 1))).toThrow(/expected 81 bytes/);
  });

  it('refuses bad inputs with a clear error', () => {
    expect(() => wrapEpochKey(provider, binding, issuer.secretKey, new Uint8Array(31))).toThrow(/epoch key is 31 bytes/);
    expect(() => wrapEpochKey(provider, { ...binding, channel: 'bad channel' }, issuer.secretKey, epochKey)).toThrow(/channel 'bad channel' is not a valid id/);
    expect(() => wrapEpochKey(provider, { ...binding, recipientPublicKey: new Uint8Array(32) }, issuer.secretKey, epochKey)).toThrow(/low order|E_LOW_ORDER/);
  });
});
