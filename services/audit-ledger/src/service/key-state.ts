/**
 * The ledger's own view of the key manager's facts (issue 12, "Revocation is sticky"): the ledger
 * is where they are committed, so it needs no reader. At start it rebuilds them from its own
 * rows, each checked as a reader checks a streamed event (hash, signature under the ledger key in
 * force at its seq, producer table), and then applies each key fact as it commits it. The key in
 * force follows the chain's key schedule from the genesis key: the ledger's own rotations are
 * `keys.rotated` rows, so reading the keys.* rows in seq order sees every change before the
 * events it governs. Producers and callers are
 * judged by `keys.guard(directory)`: a sender whose key the ledger holds revoked is refused per
 * frame, whatever the directory bucket serves.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { eventVerifier, KEY_FACT_TYPES, LedgerKeys, LedgerKeySchedule } from '@bulwark/ledger-reader';
import type { LedgerEvent } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import { LedgerError } from '../errors.js';
import type { AuditLedger } from '../ledger.js';

const PAGE = 1000;

/** The key facts and the ledger's own key schedule as its stored keys.* rows say, from the genesis key. */
export async function rebuildKeys(ledger: AuditLedger, crypto: CryptoProvider, genesis: Uint8Array, log?: Logger): Promise<{ keys: LedgerKeys; schedule: LedgerKeySchedule }> {
  const keys = new LedgerKeys();
  // The verifier follows the ledger's rotations (they are among these rows) in the schedule the service then keeps.
  const schedule = new LedgerKeySchedule(genesis);
  const verify = eventVerifier(crypto, genesis, 0, schedule);
  for (let from = 0; ; ) {
    const page = await ledger.eventsOfTypes(KEY_FACT_TYPES, from, PAGE);
    for (const event of page) {
      // A stored row that does not verify is not the ledger's: nothing built on it can be trusted, so the ledger does not start.
      const problem = verify(event);
      if (problem !== null) throw new LedgerError('E_LEDGER', `ledger: key event at seq ${event.seq} does not verify (${problem.code}: ${problem.why}); the key state cannot be rebuilt`, { seq: event.seq });
      applyKeyFact(keys, event, log);
    }
    if (page.length < PAGE) break;
    from = page.at(-1)!.seq + 1;
  }
  keys.caughtUp();
  return { keys, schedule };
}


/** Applies one committed event if it is a key fact; a fact the rules refuse changes nothing (logged). */
export function applyKeyFact(keys: LedgerKeys, event: LedgerEvent, log?: Logger): void {
  const applied = keys.apply(event);
  if (applied?.outcome.kind === 'refused') log?.warn({ eventId: event.eventId, seq: event.seq, why: applied.outcome.why }, 'ledger: key event committed but not applied to the key state');
}
