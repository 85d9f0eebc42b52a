import { describe, expect, it } from 'vitest';
import { HeaderTemplate, isRejection, Mode, parseFrame } from './frame.js';
import { ReplayWindow } from './replay-window.js';
import { providers, utf8 } from './test-support/fixtures.js';
import { deriveTrafficKeys, label, LAST_COUNTER, openData, sealData, SendCounter } from './traffic.js';
import { chachaNonce } from './noise/cipher-state.js';

describe.each(providers.map((p) => [p.name, p] as const))('data frames (%s provider)', (_name, provider) => {
  const keys = deriveTrafficKeys(provider, new Uint8Array(32).fill(1), new Uint8Array(0), label('test'));
  const template = new HeaderTemplate({ mode: Mode.session, sender: 'agent.1', recipient: 'svc.policy', sessionId: new Uint8Array(16).fill(3) });

  it('separates the MAC key from the encryption key', () => {
    expect(keys.enc).not.toEqual(keys.mac);
    expect(keys.enc.length).toBe(32);
    expect(keys.mac.length).toBe(32);
  });

  it('refuses a ciphertext whose mac was recomputed but whose AEAD tag fails (E_AEAD)', () => {
    const frame = sealData(provider, template, keys, 9n, 1000, utf8('hello'), 1 << 20);
    const view = parseFrame(frame, 1 << 20);
    if (isRejection(view)) throw new Error(view.detail);
    view.body[0]! ^= 1;
    // Someone holding k_mac but not k_enc: the mac passes, the AEAD still refuses.
    view.mac.set(provider.hmacSha256(keys.mac, [view.header, view.body, view.frame.subarray(view.counterOffset, view.counterOffset + 8)]));
    expect(openData(provider, view, keys, new ReplayWindow())).toMatchObject({ ok: false, reason: 'E_AEAD' });
  });

  it('computes mac = HMAC(k_mac, header || ciphertext || counter LE) and the Noise nonce', () => {
    const frame = sealData(provider, template, keys, 0x0102n, 1000, utf8('hello'), 1 << 20);
    const headerLength = template.length;
    const body = frame.subarray(headerLength, frame.length - 32);
    const counterLe = Uint8Array.from([2, 1, 0, 0, 0, 0, 0, 0]);
    const header = frame.subarray(0, headerLength);
    const manualMac = provider.hmacSha256(keys.mac, Uint8Array.from([...header, ...body, ...counterLe]));
    expect(frame.subarray(frame.length - 32)).toEqual(manualMac);
    expect(chachaNonce(0x0102n)).toEqual(Uint8Array.from([0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]));
    expect(provider.chacha20poly1305.open(keys.enc, chachaNonce(0x0102n), body, header)).toEqual(utf8('hello'));
  });

  it('never lets a send counter wrap', () => {
    const counter = new SendCounter(LAST_COUNTER - 1n);
    expect(counter.take()).toBe(LAST_COUNTER - 1n);
    expect(counter.take()).toBe(2n ** 64n - 2n);
    expect(counter.exhausted).toBe(true);
    expect(() => counter.take()).toThrow(/reached its limit/);
    const small = new SendCounter(0n, 1n);
    small.take();
    small.take();
    expect(() => small.take()).toThrow(expect.objectContaining({ code: 'E_COUNTER_EXHAUSTED' }));
  });
});
