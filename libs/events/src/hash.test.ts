import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCryptoProvider, toHex } from '@bulwark/crypto';
import { validateEvent } from './event.js';
import { EVENT_HASH_DOMAIN, computeEventHash, eventHashInput, hashedFieldsOf, type HashedFields } from './hash.js';

const crypto = createCryptoProvider('node');

// The worked example of README.md ("Worked example"); an independent implementation written
// from the README's table alone produced the same input bytes and hash.
const example = validateEvent({
  eventId: '0192f5a0-1c00-7abc-8def-0123456789ab',
  timestamp: 1732579200000,
  agentId: 'agent.7f3c9a12',
  eventType: 'policy.decision',
  details: { reason: 'clearance below secret', decision: 'Deny', policy: 'secure_data_access', score: 0.5, tags: ['phi', 'é'] },
});
const examplePrevious = Uint8Array.from({ length: 32 }, (_, i) => i);
const exampleFields = hashedFieldsOf(example, 'svc.policy', 7, examplePrevious);
const EXAMPLE_INPUT_HEX =
  '0000001662756c7761726b2e61756469742e6576656e742e7632000000080000000000000007000000100192f5a01c007abc8def0123456789ab' +
  '000000080000019365c48c000000000a7376632e706f6c6963790000000e6167656e742e37663363396131320000000f706f6c6963792e6465636973696f6e' +
  '000000737b226465636973696f6e223a2244656e79222c22706f6c696379223a227365637572655f646174615f616363657373222c22726561736f6e223a' +
  '22636c656172616e63652062656c6f7720736563726574222c2273636f7265223a302e352c2274616773223a5b22706869222c22c3a9225d7d' +
  '00000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const EXAMPLE_HASH_HEX = '9a81211d1550f9afb3e5b6cd348e3922c2c3288543aaf459712edebebcc6344a';

function hashHex(fields: HashedFields): string {
  return toHex(computeEventHash(crypto, fields));
}

describe('event hash', () => {
  it('reproduces the worked example of the README byte for byte', () => {
    expect(exampleFields.detailsJcs).toBe('{"decision":"Deny","policy":"secure_data_access","reason":"clearance below secret","score":0.5,"tags":["phi","é"]}');
    expect(toHex(eventHashInput(exampleFields))).toBe(EXAMPLE_INPUT_HEX);
    expect(hashHex(exampleFields)).toBe(EXAMPLE_HASH_HEX);
  });

  it('documents the same example hash in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(EXAMPLE_HASH_HEX);
    expect(readme.replace(/[\s`]/g, '')).toContain(EXAMPLE_INPUT_HEX);
  });

  it('starts with the length-prefixed domain tag', () => {
    const input = eventHashInput(exampleFields);
    expect(new DataView(input.buffer).getUint32(0)).toBe(EVENT_HASH_DOMAIN.length);
    expect(Buffer.from(input.subarray(4, 4 + EVENT_HASH_DOMAIN.length)).toString()).toBe(EVENT_HASH_DOMAIN);
  });

  it('is the same for details that differ only in key order or number spelling', () => {
    const reordered = validateEvent({ ...example, details: { tags: ['phi', 'é'], score: 5e-1, decision: 'Deny', policy: 'secure_data_access', reason: 'clearance below secret' } });
    expect(hashHex(hashedFieldsOf(reordered, 'svc.policy', 7, examplePrevious))).toBe(EXAMPLE_HASH_HEX);
  });

  const changes: [string, Partial<HashedFields>][] = [
    ['seq', { seq: 8 }],
    ['event_id', { eventId: '0192f5a0-1c00-7abc-8def-0123456789ac' }],
    ['timestamp', { timestamp: 1732579200001 }],
    ['producer', { producer: 'agent.7f3c9a12' }],
    ['agent_id', { agentId: 'agent.7f3c9a13' }],
    ['event_type', { eventType: 'policy.violation' }],
    ['details', { detailsJcs: '{"decision":"Allow","policy":"secure_data_access","reason":"clearance below secret","score":0.5,"tags":["phi","é"]}' }],
    ['previous_hash', { previousHash: Uint8Array.from({ length: 32 }, (_, i) => (i === 31 ? 0 : i)) }],
  ];

  it.each(changes)('changes when only %s changes', (_field, change) => {
    // Against the hash the code computes now, not the constant: a field left out of the hash must fail here too.
    expect(hashHex({ ...exampleFields, ...change })).not.toBe(hashHex(exampleFields));
  });

  it('changes when bytes move between adjacent text fields', () => {
    const base: HashedFields = { ...exampleFields, producer: 'svc.p', agentId: 'agent.ab', eventType: 'cd', detailsJcs: '{}' };
    const moves: Partial<HashedFields>[] = [
      { producer: 'svc.pa', agentId: 'gent.ab' },
      { producer: 'svc.', agentId: 'pagent.ab' },
      { agentId: 'agent.a', eventType: 'bcd' },
      { agentId: 'agent.abc', eventType: 'd' },
      { agentId: 'agent.abcd', eventType: '' },
      { eventType: 'cd{', detailsJcs: '}' },
      { eventType: 'c', detailsJcs: 'd{}' },
    ];
    const seen = new Set([hashHex(base)]);
    for (const move of moves) {
      const moved = { ...base, ...move };
      // Same bytes in the same order without the length prefixes: only the prefixes tell them apart.
      expect(moved.producer + moved.agentId + moved.eventType + moved.detailsJcs).toBe(base.producer + base.agentId + base.eventType + base.detailsJcs);
      seen.add(hashHex(moved));
    }
    expect(seen.size).toBe(moves.length + 1);
  });

  it('changes when bytes move between a text field and its binary neighbours', () => {
    // Move the last byte of details into the front of previous_hash and drop previous_hash's last byte:
    // the concatenation of unprefixed values stays the same, the hash must not.
    const jcs = exampleFields.detailsJcs;
    const shifted = new Uint8Array(32);
    shifted[0] = jcs.charCodeAt(jcs.length - 1);
    shifted.set(examplePrevious.subarray(0, 31), 1);
    expect(() => eventHashInput({ ...exampleFields, detailsJcs: jcs.slice(0, -1), previousHash: shifted.subarray(0, 32) })).not.toThrow();
    expect(hashHex({ ...exampleFields, detailsJcs: jcs.slice(0, -1), previousHash: shifted })).not.toBe(EXAMPLE_HASH_HEX);
  });

  it('refuses a previous_hash that is not 32 bytes, a negative seq and a malformed id', () => {
    expect(() => eventHashInput({ ...exampleFields, previousHash: new Uint8Array(31) })).toThrow('previous_hash is 31 bytes, expected 32');
    expect(() => eventHashInput({ ...exampleFields, seq: -1 })).toThrow('seq -1 is not a non-negative safe integer');
    expect(() => eventHashInput({ ...exampleFields, eventId: '0192F5A0-1C00-7ABC-8DEF-0123456789AB' })).toThrow('is not a lowercase UUID');
  });

  it('gives the same hash with both crypto providers', () => {
    expect(toHex(computeEventHash(createCryptoProvider('noble'), exampleFields))).toBe(EXAMPLE_HASH_HEX);
  });
});

describe('event hash input encoding', () => {
  /** Reads the input back into its fields: possible only because every field carries its length. */
  function decode(input: Uint8Array): Uint8Array[] {
    const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    const fields: Uint8Array[] = [];
    for (let at = 0; at < input.length; ) {
      const length = view.getUint32(at);
      fields.push(input.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    return fields;
  }

  const uuid = fc.uuid({ version: 7 });
  const fieldsArbitrary = fc.record({
    seq: fc.nat(),
    eventId: uuid,
    timestamp: fc.nat(),
    producer: fc.string({ unit: 'grapheme', maxLength: 40 }),
    agentId: fc.string({ unit: 'grapheme', maxLength: 40 }),
    eventType: fc.string({ maxLength: 30 }),
    detailsJcs: fc.string({ unit: 'grapheme', maxLength: 80 }),
    previousHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  });

  it('decodes back into exactly the nine fields it was made of (so it is injective)', () => {
    fc.assert(
      fc.property(fieldsArbitrary, (fields) => {
        const parts = decode(eventHashInput(fields));
        const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
        expect(parts).toHaveLength(9);
        expect(text(parts[0]!)).toBe(EVENT_HASH_DOMAIN);
        expect(Number(new DataView(parts[1]!.buffer, parts[1]!.byteOffset).getBigUint64(0))).toBe(fields.seq);
        expect(toHex(parts[2]!)).toBe(fields.eventId.replaceAll('-', ''));
        expect(Number(new DataView(parts[3]!.buffer, parts[3]!.byteOffset).getBigUint64(0))).toBe(fields.timestamp);
        expect(text(parts[4]!)).toBe(fields.producer);
        expect(text(parts[5]!)).toBe(fields.agentId);
        expect(text(parts[6]!)).toBe(fields.eventType);
        expect(text(parts[7]!)).toBe(fields.detailsJcs);
        expect(toHex(parts[8]!)).toBe(toHex(fields.previousHash));
      }),
      { numRuns: 300 },
    );
  });

  it('gives different hashes to different field tuples', () => {
    fc.assert(
      fc.property(fieldsArbitrary, fieldsArbitrary, (a, b) => {
        const same = JSON.stringify({ ...a, previousHash: toHex(a.previousHash) }) === JSON.stringify({ ...b, previousHash: toHex(b.previousHash) });
        expect(hashHex(a) === hashHex(b)).toBe(same);
      }),
      { numRuns: 200 },
    );
  });
});
