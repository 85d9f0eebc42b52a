import { describe, expect, it } from 'vitest';
import { defaultCryptoProvider } from '@bulwark/crypto';
import { testWorld } from '@bulwark/envelope/testing';
import { AdmissionKeys, decodeAdmissionTag, encodeAdmissionTag } from './handshake-admission.js';

const provider = defaultCryptoProvider();
const world = testWorld({ provider, ids: ['svc.policy', 'agent.a1', 'agent.b1'] });
const keysOf = (id: string) => new AdmissionKeys({ provider, self: world.identity(id), directory: world.directory });
const entry = (id: string) => world.directory.lookup(id)!;
const frame = new TextEncoder().encode('an init frame');

describe('handshake admission tags', () => {
  it('verify between the initiator and the responder they were made for', () => {
    const tag = keysOf('agent.a1').tag(entry('svc.policy'), frame)!;
    expect(keysOf('svc.policy').verify(entry('agent.a1'), frame, tag)).toBe(true);
  });

  it('fail for another frame, another claimed principal, another responder or the other direction', () => {
    const tag = keysOf('agent.a1').tag(entry('svc.policy'), frame)!;
    const policy = keysOf('svc.policy');
    expect(policy.verify(entry('agent.a1'), new TextEncoder().encode('another frame'), tag)).toBe(false);
    expect(policy.verify(entry('agent.b1'), frame, tag)).toBe(false);
    expect(keysOf('agent.b1').verify(entry('agent.a1'), frame, tag)).toBe(false);
    // The static-static secret is symmetric; the roles in the key derivation are not: agent.a1's
    // tag does not pass as one svc.policy made for a handshake towards agent.a1.
    expect(keysOf('agent.a1').verify(entry('svc.policy'), frame, tag)).toBe(false);
    expect(keysOf('agent.a1').verify(entry('svc.policy'), frame, keysOf('svc.policy').tag(entry('agent.a1'), frame)!)).toBe(true);
    expect(policy.verify(entry('agent.a1'), frame, tag.subarray(0, 15))).toBe(false);
  });

  it('derive a key once per directory entry, and anew when the entry changes', () => {
    const policy = keysOf('svc.policy');
    const before = entry('agent.a1');
    expect(policy.cached(before)).toBe(false);
    policy.verify(before, frame, new Uint8Array(16));
    expect(policy.cached(before)).toBe(true);
    // A rotation: the same id at a higher version with a new static key.
    const rotated = provider.x25519.generateKeyPair();
    world.admit({ ...before, keyVersion: before.keyVersion + 1, x25519PublicKey: rotated.publicKey });
    const after = entry('agent.a1');
    expect(after).not.toBe(before);
    expect(policy.cached(after)).toBe(false);
    const forged = new AdmissionKeys({ provider, self: { id: 'agent.a1', x25519: world.identity('agent.a1').x25519 }, directory: world.directory });
    // The old key no longer passes for agent.a1.
    expect(policy.verify(after, frame, forged.tag(entry('svc.policy'), frame)!)).toBe(false);
    expect(policy.verify(after, frame, new AdmissionKeys({ provider, self: { id: 'agent.a1', x25519: rotated }, directory: world.directory }).tag(entry('svc.policy'), frame)!)).toBe(true);
  });

  it('travel as 22 base64url characters and nothing else', () => {
    const tag = Uint8Array.from({ length: 16 }, (_, i) => i * 13);
    expect(decodeAdmissionTag(encodeAdmissionTag(tag))).toEqual(tag);
    expect(encodeAdmissionTag(tag)).toHaveLength(22);
    for (const bad of [undefined, '', 'x'.repeat(21), 'x'.repeat(23), `${'A'.repeat(21)}=`, `${'A'.repeat(21)}+`]) expect(decodeAdmissionTag(bad)).toBeUndefined();
  });
});
