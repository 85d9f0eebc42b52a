import { randomBytes } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { AuditEventBatchSchema, AuditEventSchema } from '@bulwark/proto';
import { decodeEventBatch, newEventId } from '@bulwark/events';
import type { EventRow } from '../store/rows.js';
import { ledgerBatchOfRows } from './batch-wire.js';

/** What @bufbuild/protobuf writes for the same rows: the reference. */
function reference(rows: readonly EventRow[]): Uint8Array {
  const events = rows.map((row) =>
    create(AuditEventSchema, {
      eventId: row.event_id,
      timestampMs: BigInt(row.timestamp_ms),
      agentId: row.agent_id,
      eventType: row.event_type,
      detailsJson: row.details,
      seq: BigInt(row.seq),
      previousHash: row.previous_hash,
      eventHash: row.event_hash,
      signature: row.signature,
      producer: row.producer,
    }),
  );
  return toBinary(AuditEventBatchSchema, create(AuditEventBatchSchema, { events }));
}

function row(seq: number, timestamp: number, details: string): EventRow {
  return {
    seq: BigInt(seq),
    event_id: newEventId(),
    timestamp_ms: BigInt(timestamp),
    producer: 'svc.policy',
    agent_id: 'agent.ünïcode-✓',
    event_type: 'policy.decision',
    details,
    previous_hash: randomBytes(32),
    event_hash: randomBytes(32),
    signature: randomBytes(64),
  };
}

describe('ledgerBatchOfRows', () => {
  it('writes exactly the bytes of the reflective protobuf encoder', () => {
    const sizes = [0, 1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
    const rows = sizes.flatMap((n, i) => [row(n, sizes[(i + 3) % sizes.length]!, `{"n":${i},"s":"${'é😀x'.repeat(i * 50)}"}`), row(i, 0, '{}')]);
    rows.push({ ...row(7, 8, 'x'.repeat(70_000)), previous_hash: new Uint8Array(0) });
    expect(Buffer.from(ledgerBatchOfRows(rows))).toEqual(Buffer.from(reference(rows)));
    expect(ledgerBatchOfRows([])).toEqual(reference([]));
  });

  it('round-trips through the events decoder', () => {
    const rows = [row(0, 1732579200000, '{"a":1}'), row(1, 1732579200001, '{"b":[true,null]}')].map((r) => ({ ...r, agent_id: 'agent.7f3c9a12' }));
    const decoded = decodeEventBatch(ledgerBatchOfRows(rows));
    expect(decoded.map((e) => ('seq' in e ? e.seq : -1))).toEqual([0, 1]);
    expect(decoded[1]).toMatchObject({ eventId: rows[1]!.event_id, producer: 'svc.policy', details: { b: [true, null] }, eventHash: new Uint8Array(rows[1]!.event_hash) });
  });

  it('refuses a negative stored seq or timestamp rather than encode it wrongly', () => {
    expect(() => ledgerBatchOfRows([row(-1, 5, '{}')])).toThrow(/negative/);
    expect(() => ledgerBatchOfRows([row(1, -5, '{}')])).toThrow(/negative/);
  });
});
