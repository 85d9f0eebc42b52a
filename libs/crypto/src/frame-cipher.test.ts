/**
 * The native frame cipher against the composed one (the construction written out with each
 * provider's primitives): the same bytes on random frames, each opening the other's, every
 * tampered byte refused by the right check, bad arguments refused before any native code runs.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CryptoError } from './errors.js';
import { composedFrameCipher, isNativeFrameCipherAvailable, nativeFrameCipher, type FrameCipher } from './frame-cipher.js';
import { createNobleCryptoProvider } from './noble-provider.js';
import { createNodeCryptoProvider } from './node-provider.js';
import { createSodiumCryptoProvider } from './sodium-provider.js';

const node = createNodeCryptoProvider();
const noble = createNobleCryptoProvider();
const sodium = createSodiumCryptoProvider();
const composed: Record<string, FrameCipher> = {
  'composed(node)': composedFrameCipher(node),
  'composed(noble)': composedFrameCipher(noble),
  'composed(sodium)': composedFrameCipher(sodium),
};

const TAIL = 16 + 32;

/** A frame of `header` (the counter at `counterOffset`) with room for the sealed plaintext. */
function frameFor(header: Uint8Array, plaintextLength: number): Uint8Array {
  const frame = new Uint8Array(header.length + plaintextLength + TAIL);
  frame.set(header);
  return frame;
}

/** Byte equality without vitest's element-by-element diffing (frames here reach 64 KiB). */
function same(a: Uint8Array | string, b: Uint8Array): boolean {
  return a instanceof Uint8Array && Buffer.compare(a, b) === 0;
}

function code(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (error) {
    return error instanceof CryptoError ? error.code : `not a CryptoError: ${String(error)}`;
  }
}

// CI builds the addon (scripts/build-native.mjs fails there otherwise): these tests must run there.
if (process.env['CI']) {
  it('the native frame cipher is built and loads under CI', () => {
    expect(isNativeFrameCipherAvailable()).toBe(true);
  });
}

describe.skipIf(!isNativeFrameCipherAvailable())('native frame cipher', () => {
  const native = isNativeFrameCipherAvailable() ? nativeFrameCipher() : undefined!;
  const sample = () => {
    const keys = native.keys(new Uint8Array(32).fill(7), new Uint8Array(32).fill(9));
    const header = Uint8Array.from({ length: 40 }, (_, i) => i);
    const plaintext = Uint8Array.from({ length: 100 }, (_, i) => 255 - i);
    const frame = frameFor(header, plaintext.length);
    native.seal(keys, frame, header.length, 20, plaintext);
    return { keys, header, plaintext, frame };
  };

  it('gives the composed ciphers’ bytes, and each opens the other’s frames (300 random frames)', () => {
    const sizes = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 600 }), weight: 20 }, { arbitrary: fc.constantFrom(16383, 16384, 16385, 65536), weight: 1 });
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ minLength: 8, maxLength: 120 }),
        fc.nat(),
        sizes,
        (enc, mac, header, at, size) => {
          const counterOffset = at % (header.length - 7);
          const plaintext = new Uint8Array(size).fill(header.length);
          if (size > 0) plaintext[0] = at & 0xff;
          const nativeKeys = native.keys(enc, mac);
          const sealed = frameFor(header, size);
          native.seal(nativeKeys, sealed, header.length, counterOffset, plaintext);
          for (const [name, cipher] of Object.entries(composed)) {
            const keys = cipher.keys(enc, mac);
            const theirs = frameFor(header, size);
            cipher.seal(keys, theirs, header.length, counterOffset, plaintext);
            expect(same(theirs, sealed), name).toBe(true);
            expect(same(cipher.open(keys, sealed, header.length, counterOffset), plaintext), name).toBe(true);
          }
          expect(same(native.open(nativeKeys, sealed, header.length, counterOffset), plaintext)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses every single flipped bit by its mac, header, ciphertext, tag and mac alike', () => {
    const { keys, frame } = sample();
    for (let i = 0; i < frame.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const tampered = frame.slice();
        tampered[i]! ^= bit;
        expect(native.open(keys, tampered, 40, 20), `byte ${i}`).toBe('E_MAC');
      }
    }
  });

  it('checks the Poly1305 tag too: a frame whose mac verifies but whose ciphertext was altered is E_AEAD', () => {
    const { keys, frame } = sample();
    const forged = frame.slice();
    forged[45]! ^= 1;
    const bodyEnd = forged.length - 32;
    // Only someone with k_mac (never an attacker) can do this: it isolates the second check.
    forged.set(node.hmacSha256(keys.mac, [forged.subarray(0, bodyEnd), forged.subarray(20, 28)]), bodyEnd);
    expect(native.open(keys, forged, 40, 20)).toBe('E_AEAD');
    for (const [name, cipher] of Object.entries(composed)) expect(cipher.open(cipher.keys(keys.enc, keys.mac), forged, 40, 20), name).toBe('E_AEAD');
  });

  it('opens with the right keys only, and binds the counter into nonce and mac', () => {
    const { keys, frame, plaintext } = sample();
    expect(native.open(keys, frame, 40, 20)).toEqual(plaintext);
    expect(native.open(native.keys(new Uint8Array(32).fill(7), new Uint8Array(32).fill(8)), frame, 40, 20)).toBe('E_MAC');
    // The same bytes read with the counter elsewhere in the header: another nonce and mac input.
    expect(native.open(keys, frame, 40, 21)).toBe('E_MAC');
  });

  it('refuses bad arguments with a CryptoError before any native code runs', () => {
    const { keys, header, plaintext, frame } = sample();
    expect(code(() => native.keys(new Uint8Array(31), new Uint8Array(32)))).toBe('E_KEY');
    expect(code(() => native.keys(new Uint8Array(32), new Uint8Array(65)))).toBe('E_KEY');
    expect(code(() => native.keys(new Uint8Array(32), new Uint8Array(0)))).toBe('E_KEY');
    expect(code(() => native.seal(keys, frameFor(header, plaintext.length + 1), 40, 20, plaintext))).toBe('E_LENGTH');
    expect(code(() => native.seal(keys, frameFor(header, plaintext.length), 40, 33, plaintext))).toBe('E_LENGTH');
    expect(code(() => native.seal(keys, frameFor(header, plaintext.length), 40, -1, plaintext))).toBe('E_LENGTH');
    expect(code(() => native.seal(keys, frameFor(header, plaintext.length), 40.5, 20, plaintext))).toBe('E_LENGTH');
    const shared = new Uint8Array(40 + 100 + TAIL);
    expect(code(() => native.seal(keys, shared, 40, 20, shared.subarray(40, 140)))).toBe('E_LENGTH');
    expect(code(() => native.open(keys, frame.subarray(0, 40 + TAIL - 1), 40, 20))).toBe('E_LENGTH');
    expect(code(() => native.open(composed['composed(node)']!.keys(keys.enc, keys.mac), frame, 40, 20))).toBe('E_KEY');
  });

  it('checks its arguments in the addon too, for any caller that skips the wrapper', () => {
    const addon = createRequire(import.meta.url)('../build/Release/frame_cipher.node') as Record<string, (...args: unknown[]) => unknown>;
    const { keys, frame, plaintext } = sample();
    const states = keys.macStates!;
    const thrown = (run: () => unknown) => {
      try {
        run();
        return 'ok';
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    expect(thrown(() => addon['seal']!(keys.enc, states, frame, 40, 20))).toBe('E_KEY');
    expect(thrown(() => addon['seal']!(keys.enc.subarray(1), states, frame, 40, 20, plaintext))).toBe('E_KEY');
    expect(thrown(() => addon['seal']!(keys.enc, states, frame, 40, 20, plaintext.subarray(1)))).toBe('E_LENGTH');
    expect(thrown(() => addon['seal']!(keys.enc, states, frame, 40, 33, plaintext))).toBe('E_LENGTH');
    expect(thrown(() => addon['open']!(keys.enc, states, frame, 40, 20, frame.subarray(40, 140)))).toBe('E_LENGTH');
    expect(thrown(() => addon['open']!(keys.enc, states, frame, '40', 20, new Uint8Array(100)))).toBe('E_KEY');
    expect(thrown(() => addon['hmacKey']!(new Uint8Array(65)))).toBe('E_KEY');
  });

  it('opens an empty plaintext', () => {
    const keys = native.keys(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
    const frame = frameFor(new Uint8Array(16), 0);
    native.seal(keys, frame, 16, 8, new Uint8Array(0));
    expect(native.open(keys, frame, 16, 8)).toEqual(new Uint8Array(0));
  });

  it('works in a worker thread (each thread has its own cipher context)', async () => {
    const addonPath = createRequire(import.meta.url).resolve('../build/Release/frame_cipher.node');
    const { keys, frame, plaintext } = sample();
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.addonPath);
      const states = addon.hmacKey(workerData.mac);
      const opened = [];
      for (let i = 0; i < 200; i++) {
        const out = new Uint8Array(workerData.plaintext.length);
        opened.push(addon.open(workerData.enc, states, workerData.frame, 40, 20, out) === 0 && Buffer.compare(out, workerData.plaintext) === 0);
      }
      parentPort.postMessage(opened.every(Boolean));
    `;
    const worker = new Worker(code, { eval: true, workerData: { addonPath, enc: keys.enc, mac: keys.mac, frame, plaintext } });
    // Meanwhile this thread keeps sealing with its own context.
    for (let i = 0; i < 200; i++) expect(native.open(keys, frame, 40, 20)).toEqual(plaintext);
    const agreed = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
    expect(agreed).toBe(true);
    await worker.terminate();
  });
});

describe('composed frame cipher', () => {
  it('refuses a flipped bit by its mac and bad lengths with E_LENGTH, on every provider', () => {
    for (const [name, cipher] of Object.entries(composed)) {
      const keys = cipher.keys(new Uint8Array(32).fill(3), new Uint8Array(32).fill(4));
      const frame = frameFor(new Uint8Array(24), 10);
      cipher.seal(keys, frame, 24, 4, new Uint8Array(10).fill(5));
      expect(cipher.open(keys, frame, 24, 4), name).toEqual(new Uint8Array(10).fill(5));
      for (const i of [0, 4, 23, 24, 33, 34, 49, 50, frame.length - 1]) {
        const tampered = frame.slice();
        tampered[i]! ^= 1;
        expect(cipher.open(keys, tampered, 24, 4), `${name} byte ${i}`).toBe('E_MAC');
      }
      expect(code(() => cipher.seal(keys, frameFor(new Uint8Array(24), 11), 24, 4, new Uint8Array(10))), name).toBe('E_LENGTH');
      expect(code(() => cipher.open(keys, frame.subarray(0, 24 + TAIL - 1), 24, 4)), name).toBe('E_LENGTH');
    }
  });
});
