/**
 * What the ledger says about principal keys, for every service that accepts frames (issue 12,
 * "Revocation is sticky"; DESIGN §3a "Readers verify what they replay"). The key manager's
 * committed facts (`keys.*` of svc.key-manager), as the verified reader hands them over, are
 * applied to a KeyBook: the key manager's own rules (key-book.ts), not a second copy of them, so
 * a service and the key manager can never disagree on whether a version verifies.
 *
 * `guard(directory)` is the Directory a service gives its sessions, sealed streams and channels
 * instead of the bare KV directory. Sessions ask it per frame, so a fact applied here ends a
 * session at its next frame. It refuses an entry (undefined, as for a missing one) when:
 * - the reader has not caught up: the directory alone could then serve a revoked key whose
 *   revocation the service has not read yet (a purged bucket with an older entry put back), so
 *   nobody is accepted on its strength; frames wait for `caughtUp()`. After a halt the facts
 *   applied until then still hold (what was revoked stays refused, whoever forced the halt); what
 *   came after is unknown, which the service's own halt handling answers by refusing its work
 *   (the policy service denies every request naming the halt, schemapin every tool, the key
 *   manager and the sandbox scheduler every command);
 * - the key manager knows the principal and the entry's version is not one it certified that
 *   verifies now (`KeyBook.accepts`: certified, not revoked, not below the minimum, not disabled,
 *   not pending deletion or deleted), or its public keys are not the ones certified for it.
 *
 * Which versions carry live frames: every certified version that verifies, the active one and the
 * verify-only ones a routine rotation left. Not only the latest: the reply certifying a new version
 * travels in the session of the version it replaces (checked per frame), and a routine rotation
 * says nothing against the old key (a compromise rotation raises the minimum, which refuses it).
 * Not a version beyond the latest certified one: the key manager publishes an entry only after its
 * fact is committed, so such an entry is either this reader lagging by a batch (the peer retries)
 * or a key the ledger never recorded.
 *
 * A principal the key manager never saw (the services `bulwark init` made) passes on its entry:
 * it has no ledger facts, and the key manager cannot revoke it either (`E_KEY_UNKNOWN`).
 *
 * `holdOpen` is for the key manager alone: the reply to `keys.enroll` or a compromise `keys.rotate`
 * is sealed in the session of the version its own fact just ruled out (the bootstrap version
 * revoked as superseded, the old version under the raised minimum). That version stays usable,
 * with its certified keys, until the key manager publishes the successor's entry (as the directory
 * served it until then); a revocation for any other reason is never held open.
 */
import type { Directory, DirectoryEntry } from '@bulwark/envelope';
import type { LedgerEvent } from '@bulwark/events';
import { isKeyFactType, parseFact, type KeyFact } from './facts.js';
import { KeyBook, type ApplyOutcome } from './key-book.js';

/** The only producer of key facts (the producer table, @bulwark/events authority.ts). */
export const KEY_FACT_PRODUCER = 'svc.key-manager';

/** `replaying`: applying the ledger, not caught up yet; `live`: caught up; `halted`: the reader stopped for good. */
export type LedgerKeysState = 'replaying' | 'live' | 'halted';

/** A key fact decoded from a verified event and what the book made of it. */
export interface KeyFactApplied {
  readonly fact: KeyFact | undefined;
  readonly outcome: ApplyOutcome;
}

export class LedgerKeys {
  readonly book: KeyBook;
  #state: LedgerKeysState = 'replaying';
  /** Bumped by every change (a fact applied, a state change, a hold): what a cached verdict was computed at. */
  #stamp = 0;
  /** `principal` → the version held open for the reply that certifies its successor (holdOpen). */
  readonly #held = new Map<string, number>();

  constructor(book: KeyBook = new KeyBook()) {
    this.book = book;
  }

  get state(): LedgerKeysState {
    return this.#state;
  }

  /**
   * Applies a verified ledger event if it is a key fact (undefined otherwise: policy and pin
   * events share the control subject). A fact that does not decode, or that the rules refuse,
   * changes nothing and says why.
   */
  apply(event: LedgerEvent): KeyFactApplied | undefined {
    if (!isKeyFactType(event.eventType)) return undefined;
    // The reader checked the producer table already; the guard's whole authority is that these are the key manager's, so it is not assumed.
    if (event.producer !== KEY_FACT_PRODUCER) return { fact: undefined, outcome: { kind: 'refused', why: `${event.eventType} produced by ${event.producer}, not ${KEY_FACT_PRODUCER}`, code: 'E_KEY_FACT' } };
    const fact = parseFact(event.eventType, event.agentId, event.details);
    if (typeof fact === 'string') return { fact: undefined, outcome: { kind: 'refused', why: fact, code: 'E_KEY_FACT' } };
    const outcome = this.book.apply(fact);
    if (outcome.kind === 'applied') this.#stamp++;
    return { fact, outcome };
  }

  /** The reader caught up with the ledger: entries are judged from now on. A halted state stays halted. */
  caughtUp(): void {
    if (this.#state !== 'replaying') return;
    this.#state = 'live';
    this.#stamp++;
  }

  /** The reader halted: no fact is applied any more; those applied so far still judge every entry. */
  halt(): void {
    this.#state = 'halted';
    this.#stamp++;
  }

  /**
   * Keeps `version` of `principal` usable until `release()` is called, if the fact that ruled it out
   * certified its successor (see the file comment). Returns the release (idempotent).
   */
  holdOpen(principal: string, version: number): () => void {
    this.#held.set(principal, version);
    this.#stamp++;
    return () => {
      if (this.#held.get(principal) !== version) return;
      this.#held.delete(principal);
      this.#stamp++;
    };
  }

  /** May frames be accepted under this (root-verified, unexpired, unrevoked) directory entry now? */
  admits(entry: DirectoryEntry): boolean {
    if (this.#state === 'replaying') return false;
    const key = this.book.key(entry.id);
    if (key === undefined) return true;
    const ed25519 = base64(entry.ed25519PublicKey);
    const x25519 = base64(entry.x25519PublicKey);
    if (this.book.accepts(entry.id, entry.keyVersion, ed25519, x25519)) return true;
    if (this.#held.get(entry.id) !== entry.keyVersion) return false;
    // Held open: ruled out by its successor's fact only (the minimum, or revoked as superseded), never disabled, deleted or revoked otherwise.
    const v = key.versions[entry.keyVersion - 1];
    if (v === undefined || v.keys.ed25519 !== ed25519 || v.keys.x25519 !== x25519) return false;
    return v.revocation === undefined ? v.state === 'active' || v.state === 'verify_only' : v.state === 'revoked' && v.revocation.reason === 'superseded';
  }

  /** `directory` with every entry the ledger rules out refused (see the file comment). */
  guard(directory: Directory): Directory {
    // Per frame this is a map lookup: a verdict is kept per entry object until something changes.
    const verdicts = new WeakMap<DirectoryEntry, { readonly stamp: number; readonly ok: boolean }>();
    return {
      lookup: (id) => {
        const entry = directory.lookup(id);
        if (entry === undefined) return undefined;
        let verdict = verdicts.get(entry);
        if (verdict?.stamp !== this.#stamp) {
          verdict = { stamp: this.#stamp, ok: this.admits(entry) };
          verdicts.set(entry, verdict);
        }
        return verdict.ok ? entry : undefined;
      },
      // The entry a sender's own rotation just replaced (frames sealed under it still in flight): judged alike.
      superseded: (id) => {
        const entry = directory.superseded?.(id);
        return entry !== undefined && this.admits(entry) ? entry : undefined;
      },
    };
  }
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
