/**
 * The checks on one event alone (DESIGN §3a, §4): its event_hash recomputed from its fields
 * (producer included, hash v2), the ledger's Ed25519 signature over it, and the producer
 * table (`checkProducer`): the ledger refuses a forbidden event at ingest, and a reader
 * checks again, so that one bypassed layer is not enough. The order checks are chain.ts's.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { checkProducer, checkSealedEvent, type LedgerEvent } from '@bulwark/events';
import type { EventProblem } from './core.js';

export function eventVerifier(crypto: Pick<CryptoProvider, 'sha256' | 'ed25519' | 'equal'>, ledgerPublicKey: Uint8Array): (event: LedgerEvent) => EventProblem {
  const key = Uint8Array.from(ledgerPublicKey);
  return (event) => {
    const seal = checkSealedEvent(crypto, key, event);
    if (seal !== null) return { code: 'E_READER_SEAL', why: `event ${event.eventId}: ${seal}` };
    const producer = checkProducer(event.producer, event.eventType, event.agentId);
    if (producer !== null) return { code: 'E_READER_PRODUCER', why: `event ${event.eventId}: ${producer}` };
    return null;
  };
}
