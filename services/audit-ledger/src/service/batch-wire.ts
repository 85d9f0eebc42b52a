/**
 * `bulwark.events.v1.AuditEventBatch` of stored rows, written by the events library's
 * hand-written writer (writeAuditEventBatch): the re-publisher encodes every event the ledger
 * appends, and the reflective encoder of @bufbuild/protobuf cost about 8 µs an event on the
 * ledger's thread. The bytes are exactly what `toBinary` writes, checked in batch-wire.test.ts.
 * details_json is the stored RFC 8785 text, the very bytes that were hashed, so a reader
 * recomputes event_hash from the message alone: nothing is parsed or re-canonicalised.
 */
import { InputError } from '@bulwark/errors';
import { writeAuditEventBatch, type BatchWireOptions, type HashedFields } from '@bulwark/events';
import { LedgerError } from '../errors.js';
import { bytes, hashedFieldsOfRow, type EventRow } from '../store/rows.js';

/** A stored event as it goes on the wire: what its hash covers (details as the stored RFC 8785 text), its hash and signature. */
export interface WireEvent extends HashedFields {
  readonly eventHash: Uint8Array;
  readonly signature: Uint8Array;
}

export function wireEventOfRow(row: EventRow): WireEvent {
  return { ...hashedFieldsOfRow(row), eventHash: bytes(row.event_hash), signature: bytes(row.signature) };
}

export function ledgerBatchOfRows(rows: readonly EventRow[]): Uint8Array {
  return ledgerBatchOf(rows.map(wireEventOfRow));
}

/** `options.controlPreviousSeq` for a `bulwark.ledger.control.<principal>` batch (CONTRACTS §3). */
export function ledgerBatchOf(rows: readonly WireEvent[], options: BatchWireOptions = {}): Uint8Array {
  try {
    return writeAuditEventBatch(rows, options);
  } catch (cause) {
    // The writer refuses a negative or unsafe seq or timestamp. The ledger stores neither, so
    // such a row was not written by it (verify names it): a ledger state error, not bad input.
    if (cause instanceof InputError) throw new LedgerError('E_LEDGER', `ledger batch: ${cause.message}`, { ...cause.context }, { cause });
    throw cause;
  }
}
