/**
 * SecureChannel v1's data-frame construction (DESIGN §3, libs/envelope README "Frame layout"):
 *
 *   ciphertext = ChaCha20-Poly1305(k_enc, nonce = 0^4 || counter, ad = header, plaintext)
 *   mac        = HMAC-SHA256(k_mac, header || ciphertext || counter)
 *
 * where the counter is the 8 bytes at `counterOffset` inside the header. Two implementations
 * give the same bytes: `native` does a frame in one call into Node's own OpenSSL
 * (native/frame-cipher.c, built with the package where a C compiler and Node's headers exist),
 * `composed` calls the provider's primitives one by one. Measured here, 272-byte plaintext:
 * seal 2.4-3.0 vs 6.8 µs, open 3.0 vs 6.5-7.0 µs (README, "Measurements").
 */
import { createRequire } from 'node:module';
import { allocateUninitialized } from './alloc.js';
import { CryptoError } from './errors.js';
import { requireLength, requireOutputRange, sizes } from './lengths.js';
import type { CryptoProvider } from './provider.js';

/** One direction's keys, prepared once per session, stream or channel epoch for all its frames. */
export interface FrameKeys {
  readonly enc: Uint8Array;
  readonly mac: Uint8Array;
  /** The native cipher's HMAC pad states (RFC 2104 inner and outer SHA-256 states) for `mac`. */
  readonly macStates?: Uint8Array;
}

/** Which check refused a frame: the mac (checked first) or the Poly1305 tag. */
export type FrameOpenFailure = 'E_MAC' | 'E_AEAD';

export interface FrameCipher {
  readonly kind: 'native' | 'composed';
  /** E_KEY unless `enc` is 32 bytes and `mac` at most 64. */
  keys(enc: Uint8Array, mac: Uint8Array): FrameKeys;
  /**
   * Writes ciphertext, tag and mac after the header already in `frame`, which must be exactly
   * headerLength + plaintext + 16 + 32 bytes and must not overlap `plaintext` (E_LENGTH).
   */
  seal(keys: FrameKeys, frame: Uint8Array, headerLength: number, counterOffset: number, plaintext: Uint8Array): void;
  /** The plaintext of header || ciphertext || mac once mac and tag verify; else which one failed. */
  open(keys: FrameKeys, frame: Uint8Array, headerLength: number, counterOffset: number): Uint8Array | FrameOpenFailure;
}

export const FRAME_MAC_LENGTH = 32;
const COUNTER_LENGTH = 8;
/** HMAC keys longer than the hash block would be hashed first (RFC 2104); frame keys never are. */
const MAX_MAC_KEY_LENGTH = 64;

function requireMacKey(mac: Uint8Array): void {
  if (!(mac instanceof Uint8Array) || mac.length === 0 || mac.length > MAX_MAC_KEY_LENGTH) {
    throw new CryptoError('E_KEY', `frame mac key: expected 1 to ${MAX_MAC_KEY_LENGTH} bytes, got ${mac instanceof Uint8Array ? mac.length : typeof mac}`, {});
  }
}

function requireLayout(frame: Uint8Array, headerLength: number, counterOffset: number, bodyLength: number | undefined, what: string): void {
  const tail = sizes.aeadTag + FRAME_MAC_LENGTH;
  const fits =
    frame instanceof Uint8Array &&
    Number.isSafeInteger(headerLength) &&
    Number.isSafeInteger(counterOffset) &&
    counterOffset >= 0 &&
    counterOffset + COUNTER_LENGTH <= headerLength &&
    (bodyLength === undefined ? frame.length >= headerLength + tail : frame.length === headerLength + bodyLength + tail);
  if (!fits) {
    const expected = bodyLength === undefined ? `at least ${String(headerLength)} + ${tail}` : `${String(headerLength)} + ${bodyLength} + ${tail}`;
    throw new CryptoError('E_LENGTH', `${what}: a frame of ${frame instanceof Uint8Array ? frame.length : typeof frame} bytes with the counter at ${String(counterOffset)} does not fit ${expected} bytes`, {
      headerLength,
      counterOffset,
    });
  }
}

/** The provider's primitives one call each: the construction written out, for any provider. */
export function composedFrameCipher(primitives: Pick<CryptoProvider, 'chacha20poly1305' | 'hmacSha256' | 'equal'>): FrameCipher {
  // Every primitive reads the nonce before its synchronous call returns: one scratch serves all frames.
  const nonce = new Uint8Array(sizes.aeadNonce);
  const nonceOf = (frame: Uint8Array, counterOffset: number): Uint8Array => {
    nonce.set(frame.subarray(counterOffset, counterOffset + COUNTER_LENGTH), 4);
    return nonce;
  };
  return {
    kind: 'composed',
    keys(enc, mac) {
      requireLength(enc, sizes.aeadKey, 'frame enc key');
      requireMacKey(mac);
      return { enc, mac };
    },
    seal(keys, frame, headerLength, counterOffset, plaintext) {
      requireLayout(frame, headerLength, counterOffset, plaintext.length, 'frame seal');
      const bodyEnd = headerLength + plaintext.length + sizes.aeadTag;
      const written = primitives.chacha20poly1305.sealInto(keys.enc, nonceOf(frame, counterOffset), plaintext, frame.subarray(0, headerLength), frame, headerLength);
      if (written !== bodyEnd - headerLength) throw new CryptoError('E_LENGTH', `frame seal: AEAD wrote ${written} bytes, expected ${bodyEnd - headerLength}`, {});
      // header || body lie one after the other: one piece for the MAC, not two.
      frame.set(primitives.hmacSha256(keys.mac, [frame.subarray(0, bodyEnd), frame.subarray(counterOffset, counterOffset + COUNTER_LENGTH)]), bodyEnd);
    },
    open(keys, frame, headerLength, counterOffset) {
      requireLayout(frame, headerLength, counterOffset, undefined, 'frame open');
      const bodyEnd = frame.length - FRAME_MAC_LENGTH;
      const counter = frame.subarray(counterOffset, counterOffset + COUNTER_LENGTH);
      const expected = primitives.hmacSha256(keys.mac, [frame.subarray(0, bodyEnd), counter]);
      if (!primitives.equal(expected, frame.subarray(bodyEnd))) return 'E_MAC';
      try {
        return primitives.chacha20poly1305.open(keys.enc, nonceOf(frame, counterOffset), frame.subarray(headerLength, bodyEnd), frame.subarray(0, headerLength));
      } catch {
        return 'E_AEAD';
      }
    },
  };
}

interface NativeAddon {
  hmacKey(key: Uint8Array): Uint8Array;
  seal(enc: Uint8Array, macStates: Uint8Array, frame: Uint8Array, headerLength: number, counterOffset: number, plaintext: Uint8Array): void;
  /** Writes the plaintext into `output` (its exact length); 0: done, 1: the mac failed, 2: the tag failed. */
  open(enc: Uint8Array, macStates: Uint8Array, frame: Uint8Array, headerLength: number, counterOffset: number, output: Uint8Array): 0 | 1 | 2;
}

/** Where `npm run build` leaves the addon, relative to src/ and dist/ alike. */
const ADDON_PATH = '../build/Release/frame_cipher.node';
let loaded: { addon: NativeAddon } | { error: unknown } | undefined;

function loadAddon(): NativeAddon | undefined {
  if (loaded === undefined) {
    try {
      loaded = { addon: createRequire(import.meta.url)(ADDON_PATH) as NativeAddon };
    } catch (error) {
      loaded = { error };
    }
  }
  return 'addon' in loaded ? loaded.addon : undefined;
}

/** Whether the native frame cipher was built for this host and loads. */
export function isNativeFrameCipherAvailable(): boolean {
  return loadAddon() !== undefined;
}

/** The native frame cipher; E_UNAVAILABLE where it was not built or does not load. */
export function nativeFrameCipher(): FrameCipher {
  const addon = loadAddon();
  if (addon === undefined) {
    const cause = loaded !== undefined && 'error' in loaded ? loaded.error : undefined;
    throw new CryptoError(
      'E_UNAVAILABLE',
      `the native frame cipher is not available on this host: ${ADDON_PATH} did not load (${cause instanceof Error ? cause.message : String(cause)}); build it with a C compiler and Node's headers (npm run build), or use the composed one`,
      { platform: `${process.platform}-${process.arch}`, node: process.version },
      { cause },
    );
  }
  const statesOf = (keys: FrameKeys): Uint8Array => {
    if (keys.macStates === undefined) throw new CryptoError('E_KEY', 'frame keys were not prepared by the native frame cipher (keys())', {});
    return keys.macStates;
  };
  return {
    kind: 'native',
    keys(enc, mac) {
      requireLength(enc, sizes.aeadKey, 'frame enc key');
      requireMacKey(mac);
      return { enc, mac, macStates: addon.hmacKey(mac) };
    },
    seal(keys, frame, headerLength, counterOffset, plaintext) {
      requireLayout(frame, headerLength, counterOffset, plaintext.length, 'frame seal');
      requireOutputRange(frame, 0, frame.length, plaintext, 'frame seal');
      addon.seal(keys.enc, statesOf(keys), frame, headerLength, counterOffset, plaintext);
    },
    open(keys, frame, headerLength, counterOffset) {
      requireLayout(frame, headerLength, counterOffset, undefined, 'frame open');
      const states = statesOf(keys);
      const plaintext = allocateUninitialized(frame.length - headerLength - sizes.aeadTag - FRAME_MAC_LENGTH);
      const result = addon.open(keys.enc, states, frame, headerLength, counterOffset, plaintext);
      return result === 0 ? plaintext : result === 1 ? 'E_MAC' : 'E_AEAD';
    },
  };
}

/** Native where it loads, else composed from `primitives`: the same bytes either way. */
export function preferredFrameCipher(primitives: Pick<CryptoProvider, 'chacha20poly1305' | 'hmacSha256' | 'equal'>): FrameCipher {
  return isNativeFrameCipherAvailable() ? nativeFrameCipher() : composedFrameCipher(primitives);
}
