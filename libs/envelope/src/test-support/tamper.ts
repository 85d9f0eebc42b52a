import { expect } from 'vitest';
import { isRejection, parseFrame } from '../frame.js';
import type { Rejection, RejectionReason } from '../errors.js';

export type FieldName =
  | 'version'
  | 'mode'
  | 'sender length'
  | 'sender'
  | 'recipient length'
  | 'recipient'
  | 'session id'
  | 'counter'
  | 'timestamp'
  | 'sealed handshake'
  | 'ciphertext length'
  | 'ciphertext'
  | 'mac';

/** Byte ranges of each field of a valid frame, from the documented layout. */
export function fieldsOf(frame: Uint8Array): { name: FieldName; start: number; end: number }[] {
  const view = parseFrame(frame, frame.length);
  if (isRejection(view)) throw new Error(view.detail);
  const s = frame[2]!;
  const r = frame[3 + s]!;
  const session = 4 + s + r;
  const counter = session + 16;
  const timestamp = counter + 8;
  const afterTimestamp = timestamp + 8;
  const length = afterTimestamp + (view.sealedHandshake ? 48 : 0);
  const body = length + 4;
  const mac = body + view.body.length;
  const fields: { name: FieldName; start: number; end: number }[] = [
    { name: 'version', start: 0, end: 1 },
    { name: 'mode', start: 1, end: 2 },
    { name: 'sender length', start: 2, end: 3 },
    { name: 'sender', start: 3, end: 3 + s },
    { name: 'recipient length', start: 3 + s, end: 4 + s },
    { name: 'recipient', start: 4 + s, end: session },
    { name: 'session id', start: session, end: counter },
    { name: 'counter', start: counter, end: timestamp },
    { name: 'timestamp', start: timestamp, end: afterTimestamp },
  ];
  if (view.sealedHandshake) fields.push({ name: 'sealed handshake', start: afterTimestamp, end: length });
  fields.push({ name: 'ciphertext length', start: length, end: body }, { name: 'ciphertext', start: body, end: mac });
  if (mac < frame.length) fields.push({ name: 'mac', start: mac, end: frame.length });
  return fields;
}

const ALL_BITS = [0, 1, 2, 3, 4, 5, 6, 7] as const;

/** For fields whose every flip costs a key derivation: one bit per byte, turning through all eight. */
export const oneBitPerByte = (_field: FieldName, index: number): readonly number[] => [index % 8];

/**
 * Flip every bit of every byte of `frame` (or the bits `bits` picks), one at a time, open each
 * copy and check that it is refused for one of the reasons allowed for that field. Returns the
 * reasons seen per field.
 */
export function expectEveryBitFlipRefused(
  frame: Uint8Array,
  open: (frame: Uint8Array) => { readonly ok: true } | Rejection,
  allowed: Partial<Record<FieldName, readonly RejectionReason[]>>,
  bits: (field: FieldName, index: number) => readonly number[] = () => ALL_BITS,
): Map<FieldName, Set<RejectionReason>> {
  const seen = new Map<FieldName, Set<RejectionReason>>();
  for (const field of fieldsOf(frame)) {
    const reasons = allowed[field.name];
    if (reasons === undefined) throw new Error(`no expectation for field '${field.name}'`);
    const got = new Set<RejectionReason>();
    for (let at = field.start; at < field.end; at++) {
      for (const bit of bits(field.name, at - field.start)) {
        const tampered = frame.slice();
        tampered[at]! ^= 1 << bit;
        const result = open(tampered);
        expect(result.ok, `${field.name} byte ${at - field.start} bit ${bit} accepted`).toBe(false);
        if (!result.ok) {
          expect(reasons, `${field.name} byte ${at - field.start} bit ${bit}: ${result.detail}`).toContain(result.reason);
          expect(result.duplicate).toBe(false);
          got.add(result.reason);
        }
      }
    }
    seen.set(field.name, got);
  }
  return seen;
}
