/**
 * The checks on one event alone (DESIGN §3a, §4): its event_hash recomputed from its fields
 * (producer included, hash v2), the ledger's Ed25519 signature over it under the key the chain
 * puts in force at its seq (keys/ledger-key-schedule.ts), and the producer table
 * (`checkProducer`): the ledger refuses a forbidden event at ingest, and a reader checks again,
 * so that one bypassed layer is not enough. The order checks are chain.ts's.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { checkProducer, checkSealedEvent, type LedgerEvent } from '@bulwark/events';
import { LedgerKeySchedule } from '../keys/ledger-key-schedule.js';
import type { EventProblem } from './core.js';

/**
 * `ledgerPublicKey`: the key in force at the reader's start (the ledger's first key for a reader
 * from seq 0). The core calls the verifier for new events in seq order, so each verified one is
 * taken into the schedule there; a late copy of an earlier event is checked under the key of its
 * own seq. `schedule`: the one to follow, when the caller reads it too (default its own).
 */
export function eventVerifier(
  crypto: Pick<CryptoProvider, 'sha256' | 'ed25519' | 'equal'>,
  ledgerPublicKey: Uint8Array,
  fromSeq = 0,
  schedule = new LedgerKeySchedule(ledgerPublicKey, fromSeq),
): (event: LedgerEvent) => EventProblem {
  return (event) => {
    const seal = checkSealedEvent(crypto, schedule.keyFor(event.seq), event);
    if (seal !== null) return { code: 'E_READER_SEAL', why: `event ${event.eventId}: ${seal} (ledger key version ${schedule.stepFor(event.seq).version})` };
    const producer = checkProducer(event.producer, event.eventType, event.agentId);
    if (producer !== null) return { code: 'E_READER_PRODUCER', why: `event ${event.eventId}: ${producer}` };
    const change = schedule.observe(event);
    if (change !== null) return { code: 'E_READER_LEDGER_KEY', why: change };
    return null;
  };
}
