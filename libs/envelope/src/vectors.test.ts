import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildVectorSets, T0 } from '../scripts/vector-set.js';
import { ChannelReceiver, SealedReceiver, TrustedDirectory, unwrapChannelEpochKey } from './index.js';
import { isRejection, parseFrame } from './frame.js';
import { chachaNonce } from './noise/cipher-state.js';
import { hex, providers, unhex } from './test-support/fixtures.js';

type Json = Record<string, unknown>;
const load = (name: string): Json => JSON.parse(readFileSync(new URL(`../vectors/${name}.json`, import.meta.url), 'utf8')) as Json;
const committed = { directory: load('directory'), session: load('session'), sealed: load('sealed'), channel: load('channel') };

interface FrameVector {
  counter: number;
  timestamp: number;
  payload: string;
  frame: string;
  direction?: string;
}

describe.each(providers.map((p) => [p.name, p] as const))('SecureChannel v1 vectors (%s provider)', (_name, provider) => {
  it('regenerates every committed vector byte for byte', () => {
    const rebuilt = JSON.parse(JSON.stringify(buildVectorSets(provider))) as typeof committed;
    expect(rebuilt.directory).toEqual(committed.directory);
    expect(rebuilt.session).toEqual(committed.session);
    expect(rebuilt.sealed).toEqual(committed.sealed);
    expect(rebuilt.channel).toEqual(committed.channel);
  });

  /** From the recorded keys alone: mac = HMAC(k_mac, header || ciphertext || counter LE), AEAD opens. */
  function checkFrame(vector: FrameVector, keys: { k_enc: string; k_mac: string }): void {
    const frame = unhex(vector.frame);
    const view = parseFrame(frame, frame.length);
    if (isRejection(view)) throw new Error(view.detail);
    expect(view.counter).toBe(BigInt(vector.counter));
    expect(view.timestamp).toBe(vector.timestamp);
    const counterLe = new Uint8Array(8);
    new DataView(counterLe.buffer).setBigUint64(0, BigInt(vector.counter), true);
    expect(hex(view.mac)).toBe(hex(provider.hmacSha256(unhex(keys.k_mac), [view.header, view.body, counterLe])));
    expect(hex(provider.chacha20poly1305.open(unhex(keys.k_enc), chachaNonce(view.counter), view.body, view.header))).toBe(vector.payload);
  }

  it('session frames verify under the recorded keys', () => {
    const session = committed.session as { keys: Record<string, { k_enc: string; k_mac: string }>; frames: FrameVector[] };
    for (const frame of session.frames) checkFrame(frame, session.keys[frame.direction!]!);
  });

  it('sealed and channel frames verify under the recorded keys', () => {
    const sealed = committed.sealed as { keys: { k_enc: string; k_mac: string }; frames: FrameVector[] };
    for (const frame of sealed.frames) checkFrame(frame, sealed.keys);
    const channel = committed.channel as { keys: { k_enc: string; k_mac: string }; frames: FrameVector[] };
    for (const frame of channel.frames) checkFrame(frame, channel.keys);
  });

  it('opens the recorded frames with receivers built from the recorded entries', () => {
    const dir = committed.directory as { root: { ed25519_public: string }; entries: { signed_encoding: string }[] };
    const principals = (committed.session as { principals: { id: string; x25519_secret: string; x25519_public: string }[] }).principals;
    const identity = (id: string) => {
      const p = principals.find((q) => q.id === id)!;
      return { id, x25519: { secretKey: unhex(p.x25519_secret), publicKey: unhex(p.x25519_public) } };
    };
    let now = T0;
    const directory = new TrustedDirectory({ provider, rootPublicKey: unhex(dir.root.ed25519_public), clock: () => now });
    for (const entry of dir.entries) expect(directory.put(unhex(entry.signed_encoding)).ok).toBe(true);
    const options = { provider, clock: () => now, directory };

    const sealed = committed.sealed as { recipient: string; frames: FrameVector[] };
    const ledger = new SealedReceiver({ ...options, self: identity(sealed.recipient) });
    for (const frame of sealed.frames) {
      now = frame.timestamp;
      const result = ledger.open(unhex(frame.frame));
      expect(result.ok && hex(result.plaintext)).toBe(frame.payload);
    }

    const channel = committed.channel as { channel_id: string; epoch: number; epoch_key: string; wrap: { subscriber: string; issuer: string; timestamp: number; frame: string }; frames: FrameVector[] };
    now = channel.wrap.timestamp;
    const unwrapped = unwrapChannelEpochKey(new SealedReceiver({ ...options, self: identity(channel.wrap.subscriber) }), unhex(channel.wrap.frame), channel.wrap.issuer);
    if (!unwrapped.ok) throw new Error(unwrapped.detail);
    expect(unwrapped.epochKey).toEqual({ channelId: channel.channel_id, epoch: channel.epoch, key: unhex(channel.epoch_key) });
    const subscriber = new ChannelReceiver({ ...options, channelId: channel.channel_id });
    subscriber.install(unwrapped.epochKey);
    for (const frame of channel.frames) {
      now = frame.timestamp;
      const result = subscriber.open(unhex(frame.frame));
      expect(result.ok && hex(result.plaintext)).toBe(frame.payload);
    }
  });
});
