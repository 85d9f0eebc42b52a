import { readVectorJson } from '@bulwark/testkit';
import { describe, expect, it } from 'vitest';
import type { CryptoProvider } from '@bulwark/crypto';
import { hex, providers, unhex } from '../test-support/fixtures.js';
import type { CipherState } from './cipher-state.js';
import { HandshakeState } from './handshake-state.js';
import { PATTERNS, type PatternName } from './patterns.js';

interface NoiseVector {
  protocol_name: string;
  init_prologue: string;
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  handshake_hash?: string;
  messages: { payload: string; ciphertext: string }[];
}

function keyPair(provider: CryptoProvider, secret: string | undefined) {
  if (secret === undefined) return undefined;
  const secretKey = unhex(secret);
  return { secretKey, publicKey: provider.x25519.publicKey(secretKey) };
}

/** Runs one vector: every message must match byte for byte in both directions. */
function runVector(provider: CryptoProvider, vector: NoiseVector): { messages: number } {
  const pattern = /^Noise_([A-Z]+)_25519_ChaChaPoly_SHA256$/.exec(vector.protocol_name)![1] as PatternName;
  const initiator = new HandshakeState(provider, {
    pattern,
    initiator: true,
    prologue: unhex(vector.init_prologue),
    s: keyPair(provider, vector.init_static),
    e: keyPair(provider, vector.init_ephemeral),
    rs: vector.init_remote_static === undefined ? undefined : unhex(vector.init_remote_static),
  });
  const responder = new HandshakeState(provider, {
    pattern,
    initiator: false,
    prologue: unhex(vector.resp_prologue),
    s: keyPair(provider, vector.resp_static),
    e: keyPair(provider, vector.resp_ephemeral),
    rs: vector.resp_remote_static === undefined ? undefined : unhex(vector.resp_remote_static),
  });
  const handshakeLength = PATTERNS[pattern].messages.length;
  const oneWay = handshakeLength === 1;
  let initiatorCiphers: [CipherState, CipherState] | undefined;
  let responderCiphers: [CipherState, CipherState] | undefined;

  vector.messages.forEach((message, i) => {
    const fromInitiator = oneWay || i % 2 === 0;
    const payload = unhex(message.payload);
    if (i < handshakeLength) {
      const [writer, reader] = fromInitiator ? [initiator, responder] : [responder, initiator];
      const wire = writer.writeMessage(payload);
      expect(hex(wire), `${vector.protocol_name} message ${i}`).toBe(message.ciphertext);
      expect(hex(reader.readMessage(wire))).toBe(message.payload);
      if (i === handshakeLength - 1) {
        expect(initiator.isComplete && responder.isComplete).toBe(true);
        expect(hex(initiator.handshakeHash)).toBe(hex(responder.handshakeHash));
        if (vector.handshake_hash !== undefined) expect(hex(initiator.handshakeHash)).toBe(vector.handshake_hash);
        initiatorCiphers = initiator.split();
        responderCiphers = responder.split();
      }
      return;
    }
    // Transport: c1 carries initiator → responder, c2 responder → initiator (§5.2 Split).
    const send = fromInitiator ? initiatorCiphers![0] : responderCiphers![1];
    const receive = fromInitiator ? responderCiphers![0] : initiatorCiphers![1];
    const wire = send.encryptWithAd(new Uint8Array(0), payload);
    expect(hex(wire), `${vector.protocol_name} transport message ${i}`).toBe(message.ciphertext);
    expect(hex(receive.decryptWithAd(new Uint8Array(0), wire))).toBe(message.payload);
  });
  return { messages: vector.messages.length };
}

const files = ['noise-vectors.json', 'noise-vectors-snow.json'] as const;

describe.each(providers.map((p) => [p.name, p] as const))('Noise HandshakeState (%s provider)', (_name, provider) => {
  for (const file of files) {
    const { vectors } = readVectorJson<{ vectors: NoiseVector[] }>('noise', file);
    it(`${file} holds the six patterns`, () => {
      expect(vectors.map((v) => v.protocol_name.split('_')[1])).toEqual(['N', 'K', 'X', 'NN', 'XX', 'IK']);
    });
    for (const vector of vectors) {
      it(`reproduces every message of ${vector.protocol_name} from ${file}`, () => {
        expect(runVector(provider, vector).messages).toBe(vector.messages.length);
      });
    }
  }

  it('rejects a handshake message with one flipped bit', () => {
    const { vectors } = readVectorJson<{ vectors: NoiseVector[] }>('noise', 'noise-vectors.json');
    const ik = vectors.find((v) => v.protocol_name.includes('_IK_'))!;
    const wire = unhex(ik.messages[0]!.ciphertext);
    for (const position of [0, 40, wire.length - 1]) {
      const responder = new HandshakeState(provider, { pattern: 'IK', initiator: false, prologue: unhex(ik.resp_prologue), s: keyPair(provider, ik.resp_static) });
      const tampered = wire.slice();
      tampered[position]! ^= 0x01;
      expect(() => responder.readMessage(tampered)).toThrow();
    }
  });

  it('rejects a different prologue', () => {
    const { vectors } = readVectorJson<{ vectors: NoiseVector[] }>('noise', 'noise-vectors.json');
    const k = vectors.find((v) => v.protocol_name.includes('_K_'))!;
    const responder = new HandshakeState(provider, {
      pattern: 'K',
      initiator: false,
      prologue: new TextEncoder().encode('another prologue'),
      s: keyPair(provider, k.resp_static),
      rs: unhex(k.resp_remote_static!),
    });
    expect(() => responder.readMessage(unhex(k.messages[0]!.ciphertext))).toThrow();
  });

  it('refuses to write out of turn', () => {
    const responder = new HandshakeState(provider, { pattern: 'NN', initiator: false, prologue: new Uint8Array(0) });
    expect(() => responder.writeMessage(new Uint8Array(0))).toThrow(/out of turn/);
  });
});
