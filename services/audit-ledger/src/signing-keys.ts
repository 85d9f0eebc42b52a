/**
 * The ledger's signing keys along its chain (issue 12: the ledger rotates its own key). The
 * chain itself says which key signs what (`LedgerKeySchedule` of @bulwark/ledger-reader: a
 * committed `keys.rotated` of svc.audit-ledger at seq N moves every event after N, and every
 * checkpoint of a size above N, to the key it names); this file holds the ledger's side of it:
 * which of those keys this process holds, one event signer per key, and the schedule rebuilt
 * from the stored rows.
 */
import type { Kysely, Transaction } from 'kysely';
import type { CryptoProvider } from '@bulwark/crypto';
import { LEDGER_PRINCIPAL } from '@bulwark/bus';
import { KEY_FACT_PRODUCER, LEDGER_KEY_CHANGE_TYPE, ledgerKeyChangeOf, scheduleOfChanges, type LedgerKeyEvent, type LedgerKeySchedule } from '@bulwark/ledger-reader';
import type { JsonObject } from '@bulwark/events';
import { LedgerError } from './errors.js';
import type { SignerKey } from './note/keys.js';
import { InThreadSigner, type EventSigner } from './signer/event-signer.js';
import { WorkerSigner, type WorkerSignerOptions } from './signer/worker-signer.js';
import { ledgerEventOfRow } from './store/rows.js';
import type { LedgerDatabase } from './store/schema.js';

/** The keys a ledger process signs with: the one its chain starts under, and the later ones it holds. */
export interface LedgerSigningKeys {
  /** The ledger's first key (from `bulwark init`): in force from seq 0 until the chain names another. */
  readonly genesis: Uint8Array;
  /**
   * The key pair (named as the origin) for a key the chain puts in force, if this process holds
   * it; asked each time the chain moves, so a key staged after the start is found.
   */
  held(ed25519PublicKey: Uint8Array): SignerKey | undefined;
}

/** Whether an event is a candidate ledger key change (the cheap test before parsing it). */
export function namesLedgerKey(event: { readonly eventType: string; readonly agentId: string }): boolean {
  return event.eventType === LEDGER_KEY_CHANGE_TYPE && event.agentId === LEDGER_PRINCIPAL;
}

/**
 * The schedule after `event` is sealed next on a chain under `schedule`: the same one for an event
 * that changes no key, a copy that moved on for a ledger key change, or the reason the change may
 * not be sealed: one the readers would refuse (malformed, not above the version in force, a key
 * used before), or one to a key this process does not hold (it could sign nothing after it). The
 * service refuses such a fact before it reaches the core; this is the core's own check.
 */
export function scheduleAfter(schedule: LedgerKeySchedule, event: LedgerKeyEvent, keys: LedgerSigningKeys): LedgerKeySchedule | string {
  const change = ledgerKeyChangeOf(event);
  if (change === undefined) return schedule;
  if (typeof change === 'string') return change;
  const next = schedule.clone();
  const refused = next.observe(event);
  if (refused !== null) return refused;
  if (keys.held(change.ed25519PublicKey) === undefined) return `the ledger key change at seq ${event.seq} names a key (version ${change.version}) this ledger does not hold`;
  return next;
}

/**
 * Takes a verified stored event (its details as the stored RFC 8785 text) into `schedule` when it
 * names the ledger's key: the reason the change is refused, or null. What verify, the export's
 * verifier and the ranged verify command run on each row after its seal.
 */
export function observeStored(schedule: LedgerKeySchedule, event: { readonly seq: number; readonly producer: string; readonly eventType: string; readonly agentId: string; readonly detailsJcs: string }): string | null {
  if (!namesLedgerKey(event)) return null;
  return schedule.observe({ seq: event.seq, producer: event.producer, eventType: event.eventType, agentId: event.agentId, details: JSON.parse(event.detailsJcs) as JsonObject });
}

/** One event signer per key (threads when the ledger signs on workers), made on first use. */
export class SignerPool {
  readonly #crypto: CryptoProvider;
  readonly #workers: Omit<WorkerSignerOptions, 'crypto' | 'secretKey' | 'publicKey'> | undefined;
  readonly #signers = new Map<string, EventSigner>();
  #closedFailures = 0;

  constructor(crypto: CryptoProvider, workers: Omit<WorkerSignerOptions, 'crypto' | 'secretKey' | 'publicKey'> | undefined) {
    this.#crypto = crypto;
    this.#workers = workers;
  }

  for(key: SignerKey): EventSigner {
    const id = Buffer.from(key.publicKey).toString('hex');
    let signer = this.#signers.get(id);
    if (signer === undefined) {
      signer = this.#workers === undefined ? new InThreadSigner(this.#crypto, key.secretKey) : new WorkerSigner({ ...this.#workers, crypto: this.#crypto, secretKey: key.secretKey, publicKey: key.publicKey });
      this.#signers.set(id, signer);
    }
    return signer;
  }

  get failures(): number {
    let failures = this.#closedFailures;
    for (const signer of this.#signers.values()) failures += signer.failures;
    return failures;
  }

  async close(): Promise<void> {
    const signers = [...this.#signers.values()];
    this.#signers.clear();
    for (const signer of signers) this.#closedFailures += signer.failures;
    await Promise.all(signers.map((s) => s.close()));
  }
}

/**
 * The schedule of the chain as stored below `size`: every key change committed, each checked as a
 * reader checks it (its event hash recomputed from the row, its signature under the key in force
 * before it, the change rules), so a row written into the database by hand moves nothing. The
 * links between the rows are `verifyLedger`'s to check. A stored change that fails is a ledger
 * that must not be signed on or trusted: `E_LEDGER`.
 */
export async function storedSchedule(crypto: Pick<CryptoProvider, 'sha256' | 'ed25519' | 'equal'>, db: Kysely<LedgerDatabase> | Transaction<LedgerDatabase>, genesis: Uint8Array, size: number): Promise<LedgerKeySchedule> {
  const rows = await db
    .selectFrom('events')
    .selectAll()
    .where('event_type', '=', LEDGER_KEY_CHANGE_TYPE)
    .where('agent_id', '=', LEDGER_PRINCIPAL)
    .where('producer', '=', KEY_FACT_PRODUCER)
    .where('seq', '<', BigInt(size))
    .orderBy('seq')
    .execute();
  const schedule = scheduleOfChanges(crypto, genesis, rows.map(ledgerEventOfRow));
  if (typeof schedule === 'string') throw new LedgerError('E_LEDGER', `the stored chain cannot be signed on or trusted: ${schedule}`, {});
  return schedule;
}
