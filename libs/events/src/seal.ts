/**
 * Sealing an event into the chain (what the ledger does on append) and checking a sealed
 * event (what any consumer of the ledger stream can do with the ledger's public key).
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { HASH_LENGTH, type AuditEvent, type LedgerEvent } from './event.js';
import { computeEventHash, hashedFieldsOf } from './hash.js';

/**
 * The event delivered by `producer` (the principal its frame authenticated, DESIGN §3a) at
 * `seq`, linked to `previousHash`, hashed and signed with the ledger's Ed25519 secret key.
 */
export function sealEvent(
  crypto: Pick<CryptoProvider, 'sha256' | 'ed25519'>,
  ledgerSecretKey: Uint8Array,
  event: AuditEvent,
  producer: string,
  seq: number,
  previousHash: Uint8Array,
): LedgerEvent {
  const eventHash = computeEventHash(crypto, hashedFieldsOf(event, producer, seq, previousHash));
  return { ...event, producer, seq, previousHash, eventHash, signature: crypto.ed25519.sign(ledgerSecretKey, eventHash) };
}

/** What is wrong with a sealed event, in the words `verify` reports; null when nothing is. */
export type SealProblem = 'event_hash mismatch' | 'signature invalid' | 'previous_hash does not link';

/**
 * Recomputes the hash (the producer included) and checks the signature; with
 * `expectedPreviousHash` (the event_hash of seq − 1, or 32 zero bytes for seq 0) also the
 * link. Never throws for a bad event: anything malformed is reported as a mismatch. Whether
 * the producer may produce the event is a separate question: `checkProducer` (authority.ts).
 */
export function checkSealedEvent(
  crypto: Pick<CryptoProvider, 'sha256' | 'ed25519' | 'equal'>,
  ledgerPublicKey: Uint8Array,
  event: LedgerEvent,
  expectedPreviousHash?: Uint8Array,
): SealProblem | null {
  let recomputed: Uint8Array;
  try {
    recomputed = computeEventHash(crypto, hashedFieldsOf(event, event.producer, event.seq, event.previousHash));
  } catch {
    return 'event_hash mismatch';
  }
  if (event.eventHash.length !== HASH_LENGTH || !crypto.equal(recomputed, event.eventHash)) return 'event_hash mismatch';
  if (expectedPreviousHash !== undefined && !crypto.equal(event.previousHash, expectedPreviousHash)) return 'previous_hash does not link';
  if (!crypto.ed25519.verify(ledgerPublicKey, event.eventHash, event.signature)) return 'signature invalid';
  return null;
}
