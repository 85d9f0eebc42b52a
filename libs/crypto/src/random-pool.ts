import { randomFillSync } from 'node:crypto';

/**
 * CSPRNG bytes handed out from a buffer filled 4 KiB at a time: one OpenSSL call per 256
 * request or event ids instead of one per id (a call costs more than the bytes: 16 bytes
 * through crypto.getRandomValues took ~10 µs here). Each slice is a copy and is never handed
 * out twice; the pool is refilled, never reused, once consumed. Not for keys: those come
 * from the provider's randomBytes, straight from OpenSSL.
 */
export class RandomPool {
  readonly #pool: Uint8Array;
  #at: number;

  constructor(size = 4096) {
    this.#pool = new Uint8Array(size);
    this.#at = size;
  }

  take(length: number): Uint8Array {
    if (length > this.#pool.length) return randomFillSync(new Uint8Array(length));
    if (this.#at + length > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#at = 0;
    }
    const out = this.#pool.slice(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }
}
