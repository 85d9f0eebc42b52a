import { describe, expect, it } from 'vitest';
import { InternTable } from './intern.js';

const latin1 = (bytes: Uint8Array, start: number, length: number) => Buffer.from(bytes.subarray(start, start + length)).toString('latin1');

describe('InternTable', () => {
  it('hands back the string built for the same bytes, wherever they lie', () => {
    const table = new InternTable();
    let built = 0;
    const decode = (b: Uint8Array, s: number, l: number) => (built++, latin1(b, s, l));
    const first = table.get(Buffer.from('xxsvc.policy'), 2, 10, decode);
    const second = table.get(Buffer.from('svc.policyyy'), 0, 10, decode);
    expect(first).toBe('svc.policy');
    expect(second).toBe(first);
    expect(built).toBe(1);
  });

  it('never returns the string of other bytes, even for a colliding hash', () => {
    const table = new InternTable();
    // Two 8-byte strings with the same FNV-1a hash, found by a seeded search (a few hundred
    // thousand draws suffice for a 32-bit hash): the table must rebuild, never reuse.
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    let state = 20261126;
    const letters = 'abcdefghijklmnopqrstuvwxyz0123456789';
    for (let i = 0; pair === undefined && i < 2_000_000; i++) {
      let text = '';
      for (let j = 0; j < 8; j++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        text += letters[(state >>> 16) % letters.length];
      }
      let hash = 0x811c9dc5;
      for (let j = 0; j < 8; j++) hash = Math.imul(hash ^ text.charCodeAt(j), 0x01000193);
      const other = seen.get(hash);
      if (other !== undefined && other !== text) pair = [other, text];
      seen.set(hash, text);
    }
    expect(pair).toBeDefined();
    const [a, b] = pair!;
    expect(table.get(Buffer.from(a), 0, 8, latin1)).toBe(a);
    expect(table.get(Buffer.from(b), 0, 8, latin1)).toBe(b);
    expect(table.get(Buffer.from(a), 0, 8, latin1)).toBe(a);
    // Same prefix, other length: not the same entry either.
    expect(table.get(Buffer.from(`${a}z`), 0, 9, latin1)).toBe(`${a}z`);
  });

  it('holds at most its capacity, starting over when full', () => {
    const table = new InternTable(4);
    let built = 0;
    const decode = (b: Uint8Array, s: number, l: number) => (built++, latin1(b, s, l));
    for (let i = 0; i < 10; i++) table.get(Buffer.from(`id${i}`), 0, 3, decode);
    expect(built).toBe(10);
    table.get(Buffer.from('id9'), 0, 3, decode);
    expect(built).toBe(10);
  });
});
