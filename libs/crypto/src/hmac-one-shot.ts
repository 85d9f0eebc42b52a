/**
 * HMAC-SHA256 (RFC 2104) from two one-shot SHA-256 calls over precomputed key pads, for the
 * short messages of the envelope (a MAC per frame). node:crypto's createHmac builds an Hmac
 * object per call, with a native handle the garbage collector must finalise: in a request
 * loop that costs about twice the hashing. Long messages still go to createHmac, where the
 * copy this needs would cost more than the object.
 */
import { createHmac, hash as oneShotHash } from 'node:crypto';
import { SecretKeyCache } from './key-cache.js';

const BLOCK = 64;
const DIGEST = 32;
/** Messages up to this size are copied behind the inner pad and hashed in one call. */
const ONE_SHOT_MAX = 4096;

interface Pads {
  /** (key ⊕ ipad), the first block of the inner hash. */
  readonly inner: Buffer;
  /** (key ⊕ opad) || room for the inner digest: the whole outer hash input. */
  readonly outer: Buffer;
}

function padsOf(key: Uint8Array): Pads {
  // RFC 2104 §2: a key longer than the block is hashed first; a shorter one is zero-padded.
  const k = key.length > BLOCK ? oneShotHash('sha256', key, 'buffer') : key;
  const inner = Buffer.alloc(BLOCK, 0x36);
  const outer = Buffer.alloc(BLOCK + DIGEST);
  outer.fill(0x5c, 0, BLOCK);
  for (let i = 0; i < k.length; i++) {
    inner[i]! ^= k[i]!;
    outer[i]! ^= k[i]!;
  }
  return { inner, outer };
}

export class OneShotHmac {
  readonly #pads = new SecretKeyCache<Pads>(padsOf);
  #scratch = Buffer.allocUnsafeSlow(BLOCK + 1024);

  mac(key: Uint8Array, data: Uint8Array | readonly Uint8Array[]): Uint8Array {
    const parts = data instanceof Uint8Array ? [data] : data;
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > ONE_SHOT_MAX) {
      const mac = createHmac('sha256', key);
      for (const part of parts) mac.update(part);
      return new Uint8Array(mac.digest());
    }
    const pads = this.#pads.get(key);
    if (this.#scratch.length < BLOCK + length) this.#scratch = Buffer.allocUnsafeSlow(BLOCK + ONE_SHOT_MAX);
    const scratch = this.#scratch;
    scratch.set(pads.inner, 0);
    let at = BLOCK;
    for (const part of parts) {
      scratch.set(part, at);
      at += part.length;
    }
    const inner = oneShotHash('sha256', scratch.subarray(0, at), 'buffer') as unknown as Buffer;
    // The key-derived block does not stay behind in the shared scratch buffer.
    scratch.fill(0, 0, BLOCK);
    pads.outer.set(inner, BLOCK);
    return new Uint8Array(oneShotHash('sha256', pads.outer, 'buffer') as unknown as Buffer);
  }
}
