/** Little-endian integer and length-prefix helpers shared by the frame, directory and key encodings. */

export const textEncoder = new TextEncoder();

// Byte-wise on purpose: these run several times per frame, and a DataView per call costs more
// than the arithmetic (measured on the seal/open path).

export function writeU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value & 0xff;
  target[offset + 1] = (value >>> 8) & 0xff;
  target[offset + 2] = (value >>> 16) & 0xff;
  target[offset + 3] = (value >>> 24) & 0xff;
}

export function readU32(source: Uint8Array, offset: number): number {
  return (source[offset]! | (source[offset + 1]! << 8) | (source[offset + 2]! << 16) | (source[offset + 3]! << 24)) >>> 0;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function writeU64(target: Uint8Array, offset: number, value: bigint): void {
  // Counters stay below 2^53 in practice: one conversion instead of four BigInt operations per frame.
  if (value >= 0n && value <= MAX_SAFE) return writeSafeU64(target, offset, Number(value));
  writeU32(target, offset, Number(value & 0xffff_ffffn));
  writeU32(target, offset + 4, Number((value >> 32n) & 0xffff_ffffn));
}

export function readU64(source: Uint8Array, offset: number): bigint {
  const high = readU32(source, offset + 4);
  if (high <= 0x1f_ffff) return BigInt(high * 0x1_0000_0000 + readU32(source, offset));
  return BigInt(readU32(source, offset)) | (BigInt(high) << 32n);
}

/** A u64 that must fit a JavaScript number (timestamps): undefined beyond 2^53 - 1. */
export function readSafeU64(source: Uint8Array, offset: number): number | undefined {
  const high = readU32(source, offset + 4);
  if (high > 0x1f_ffff) return undefined;
  return high * 0x1_0000_0000 + readU32(source, offset);
}

/** A safe non-negative integer (timestamps) as u64 LE. */
export function writeSafeU64(target: Uint8Array, offset: number, value: number): void {
  writeU32(target, offset, value % 0x1_0000_0000);
  writeU32(target, offset + 4, Math.floor(value / 0x1_0000_0000));
}

export function u64le(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  writeU64(out, 0, value);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A byte string preceded by its length in one byte: for ids and labels (at most 255 bytes). */
export function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  if (bytes.length > 255) throw new RangeError(`length-prefixed field of ${bytes.length} bytes exceeds 255`);
  const out = new Uint8Array(1 + bytes.length);
  out[0] = bytes.length;
  out.set(bytes, 1);
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]!];
  return out;
}

/**
 * Equality of public values (public keys, handshake bytes that travel in clear). Secrets
 * (MACs, keys) are compared with provider.equal, in constant time; this one may exit early.
 */
export function equalPublic(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
