import { GENESIS_PREVIOUS_HASH, newEvent, type JsonObject, type LedgerEvent } from '@bulwark/events';
import { describe, expect, it } from 'vitest';
import { PinLedger } from './pin-ledger.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
let seq = 0;
const committed = (eventType: 'tools.pinned' | 'tools.revoked' | 'policy.updated', details: JsonObject): LedgerEvent => ({
  ...newEvent({ agentId: 'svc.schemapin', eventType, details }),
  producer: 'svc.schemapin',
  seq: seq++,
  previousHash: GENESIS_PREVIOUS_HASH,
  eventHash: new Uint8Array(32),
  signature: new Uint8Array(64),
});

describe('PinLedger', () => {
  it('pins, refuses a second key for the same tool, and revokes a key with every pin under it', () => {
    const refused: string[] = [];
    const changed: string[] = [];
    const ledger = new PinLedger({ onRefused: (_e, why) => refused.push(why), onPinChanged: (t, d) => changed.push(`${t}@${d}`) });
    expect(ledger.apply(committed('tools.pinned', { tool_id: 'read', domain: 'a.example', fingerprint: A }))).toBe(true);
    expect(ledger.apply(committed('tools.pinned', { tool_id: 'write', domain: 'a.example', fingerprint: A }))).toBe(true);
    expect(ledger.apply(committed('tools.pinned', { tool_id: 'read', domain: 'a.example', fingerprint: B }))).toBe(false);
    expect(refused[0]).toMatch(/pinned to sha256:a+; pinning another key needs a revoke first/);
    expect(ledger.providerKeys()).toEqual([{ fingerprint: A, tools: ['read@a.example', 'write@a.example'], revoked: false }]);
    expect(ledger.apply(committed('tools.revoked', { fingerprint: A }))).toBe(true);
    expect(ledger.pins.size).toBe(0);
    expect(ledger.apply(committed('tools.pinned', { tool_id: 'read', domain: 'a.example', fingerprint: A }))).toBe(false);
    expect(ledger.providerKeys()).toEqual([{ fingerprint: A, tools: [], revoked: true }]);
    expect(changed).toEqual(['read@a.example', 'write@a.example']);
  });

  it('refuses malformed pin events and ignores other event types', () => {
    const ledger = new PinLedger();
    expect(ledger.apply(committed('tools.pinned', { tool_id: 'read', domain: 'a.example', fingerprint: 'md5:x' }))).toBe(false);
    expect(ledger.apply(committed('tools.revoked', {}))).toBe(false);
    expect(ledger.apply(committed('policy.updated', { name: 'p' }))).toBeUndefined();
    expect(ledger.providerKeys()).toEqual([]);
  });
});
