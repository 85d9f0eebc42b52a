/**
 * The strings a frame header decodes to (sender, recipient, session id in hex) are the same
 * few on almost every frame. Building each anew cost ~0.25 µs apiece (a Buffer view and a
 * native decode, or 16 concatenations), and a new string must be hashed again by every Map
 * it is looked up in. An intern table hands back the string made the last time these bytes
 * were seen: found by a 32-bit FNV-1a hash of the bytes, and only after the stored bytes
 * compare equal, so a collision costs a rebuild, never a wrong string.
 *
 * Bounded: past `capacity` entries the table starts over, so a flood of distinct headers
 * costs memory for `capacity` entries at most.
 */
interface Interned {
  readonly bytes: Uint8Array;
  readonly value: string;
}

export class InternTable {
  readonly #entries = new Map<number, Interned>();
  readonly #capacity: number;

  constructor(capacity = 4096) {
    this.#capacity = capacity;
  }

  /** The string for `bytes[start, start+length)`, built by `decode` (a function of those bytes alone) when not held. */
  get(bytes: Uint8Array, start: number, length: number, decode: (bytes: Uint8Array, start: number, length: number) => string): string {
    let hash = 0x811c9dc5;
    for (let i = start; i < start + length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
    const held = this.#entries.get(hash);
    if (held !== undefined && held.bytes.length === length && sameAt(held.bytes, bytes, start)) return held.value;
    const value = decode(bytes, start, length);
    if (this.#entries.size >= this.#capacity) this.#entries.clear();
    this.#entries.set(hash, { bytes: bytes.slice(start, start + length), value });
    return value;
  }
}

function sameAt(held: Uint8Array, bytes: Uint8Array, start: number): boolean {
  for (let i = 0; i < held.length; i++) if (held[i] !== bytes[start + i]) return false;
  return true;
}
