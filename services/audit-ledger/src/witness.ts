/**
 * A witness (DESIGN §4): another service that cosigns the ledger's checkpoints only after
 * checking that each new one extends the last one it saw (an RFC 9162 consistency proof).
 * A ledger that rewrote history could then not show the same witnesses two views.
 * The cosignature is a signed-note line added beside the log's own signature: with a
 * type 0x04 key, a timestamped cosignature/v1 (c2sp.org/tlog-cosignature) that
 * standard witness tooling reads; with a type 0x01 key, a plain note signature.
 *
 * The log's key rotates in its own chain (signing-keys.ts): a checkpoint above a key change is
 * signed by the key it names. A witness follows it the way a verifier of the events does: given
 * the change (the event, sealed by the key the witness trusts, naming the next key) and its
 * inclusion proof in the new checkpoint, it opens that checkpoint with the next key. The old key
 * vouches for the new one; nothing but the chain is trusted.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { checkSealedEvent, type LedgerEvent } from '@bulwark/events';
import { ledgerKeyChangeOf } from '@bulwark/ledger-reader';
import { LedgerError, isLedgerError } from './errors.js';
import { leafHash } from './merkle/hash.js';
import { verifyConsistency, verifyInclusion } from './merkle/proofs.js';
import { openCheckpoint, parseCheckpoint, type Checkpoint } from './note/checkpoint.js';
import { publicPart, verifierKey, type SignerKey, type VerifierKey } from './note/keys.js';
import { addSignatures, parseNote, signText, type NoteSignature } from './note/signed-note.js';

export interface WitnessConfig {
  readonly crypto: Pick<CryptoProvider, 'ed25519' | 'sha256' | 'equal'>;
  /** The witness's own key: a cosignature/v1 key (type 0x04, c2sp.org/tlog-cosignature), or a plain note key. */
  readonly key: SignerKey;
  /** The clock for cosignature timestamps, POSIX seconds (default: now). */
  readonly now?: () => number;
  /** The log it watches: origin and the public key it trusts now. */
  readonly origin: string;
  readonly logKey: VerifierKey;
}

/** A key change of the log (the key manager's keys.rotated of svc.audit-ledger) and its inclusion proof in the checkpoint to cosign. */
export interface LogKeyChange {
  readonly event: LedgerEvent;
  readonly inclusion: readonly Uint8Array[];
}

export interface Cosigned {
  readonly checkpoint: Checkpoint;
  /** The log key the checkpoint verified with: the trusted one, or the last of the key changes followed. */
  readonly logKey: VerifierKey;
  /** The witness's signature line. */
  readonly cosignature: NoteSignature;
  /** The input note with the cosignature added. */
  readonly note: string;
}

function refuse(why: string, context: Record<string, unknown>, cause?: unknown): LedgerError {
  return new LedgerError('E_WITNESS', `witness refuses to cosign: ${why}`, context, cause === undefined ? undefined : { cause });
}

/**
 * Verifies `note` (the log's signature, its origin), checks it is consistent with
 * `lastSeen` (the last checkpoint this witness cosigned, undefined for the first one)
 * through `proof`, and cosigns it. Refuses (E_WITNESS) a bad signature, another origin,
 * a smaller tree (rollback), a different root at the same size (fork), or a proof that
 * does not verify. The caller stores the returned checkpoint as the new `lastSeen`.
 */
export function cosignCheckpoint(config: WitnessConfig, lastSeen: Checkpoint | undefined, note: string, proof: readonly Uint8Array[], changes: readonly LogKeyChange[] = []): Cosigned {
  const { crypto } = config;
  const logKey = changes.length === 0 ? config.logKey : followKeyChanges(config, note, changes);
  let checkpoint: Checkpoint;
  let text: string;
  try {
    const opened = openCheckpoint(crypto, note, { origin: config.origin, logKey });
    checkpoint = opened.checkpoint;
    text = opened.note.text;
  } catch (cause) {
    throw refuse(isLedgerError(cause) ? cause.message : 'the checkpoint does not open', { origin: config.origin }, cause);
  }
  const context = { origin: config.origin, size: checkpoint.size, lastSize: lastSeen?.size };

  if (lastSeen !== undefined && lastSeen.size > 0) {
    if (checkpoint.size < lastSeen.size) throw refuse(`size ${checkpoint.size} is smaller than the ${lastSeen.size} already cosigned (rollback)`, context);
    try {
      verifyConsistency(crypto, lastSeen.size, checkpoint.size, proof, lastSeen.rootHash, checkpoint.rootHash);
    } catch (cause) {
      const why = checkpoint.size === lastSeen.size ? 'same size, different root (fork)' : `not consistent with size ${lastSeen.size}`;
      throw refuse(`${why}: ${isLedgerError(cause) ? cause.message : String(cause)}`, context, cause);
    }
  } else if (proof.length > 0) {
    throw refuse('a proof was given but there is no earlier checkpoint to prove against', context);
  }

  const cosignature = signText(crypto, text, config.key, { timestamp: (config.now ?? (() => Math.floor(Date.now() / 1000)))() });
  return { checkpoint, logKey, cosignature, note: addSignatures(note, [cosignature]) };
}

/**
 * The key that signs `note`'s checkpoint after `changes`, in seq order: each sealed by the key in
 * force before it, a well-formed change to another key, and included in the checkpoint's tree.
 * The tree's root is taken from the note before its signature is checked; the signature under
 * the key the changes end on is what then authenticates it (with the changes in it).
 */
function followKeyChanges(config: WitnessConfig, note: string, changes: readonly LogKeyChange[]): VerifierKey {
  const { crypto, origin } = config;
  let claimed: Checkpoint;
  try {
    claimed = parseCheckpoint(parseNote(note).text);
  } catch (cause) {
    throw refuse(isLedgerError(cause) ? cause.message : 'the checkpoint does not parse', { origin }, cause);
  }
  let key = config.logKey;
  let after = -1;
  for (const { event, inclusion } of changes) {
    const context = { origin, size: claimed.size, seq: event.seq };
    if (event.seq <= after || event.seq >= claimed.size) throw refuse(`key change at seq ${event.seq} is out of order or beyond the checkpoint (size ${claimed.size})`, context);
    const sealed = checkSealedEvent(crypto, key.publicKey, event);
    if (sealed !== null) throw refuse(`key change at seq ${event.seq}: ${sealed} under the log key it would retire`, context);
    const change = ledgerKeyChangeOf(event);
    if (change === undefined || typeof change === 'string') throw refuse(`the event at seq ${event.seq} is not a change of the log's key${typeof change === 'string' ? `: ${change}` : ''}`, context);
    if (crypto.equal(change.ed25519PublicKey, key.publicKey)) throw refuse(`key change at seq ${event.seq} names the key already in force`, context);
    try {
      verifyInclusion(crypto, event.seq, claimed.size, leafHash(crypto, event.eventHash), inclusion, claimed.rootHash);
    } catch (cause) {
      throw refuse(`key change at seq ${event.seq} is not in the checkpoint's tree: ${isLedgerError(cause) ? cause.message : String(cause)}`, context, cause);
    }
    key = verifierKey(crypto, origin, change.ed25519PublicKey);
    after = event.seq;
  }
  return key;
}

/** Holds a witness's last cosigned checkpoint in memory (a service persists it). */
export class Witness {
  #config: WitnessConfig;
  #lastSeen: Checkpoint | undefined;

  constructor(config: WitnessConfig, lastSeen?: Checkpoint) {
    this.#config = config;
    this.#lastSeen = lastSeen;
  }

  get lastSeen(): Checkpoint | undefined {
    return this.#lastSeen;
  }

  get verifierKey(): VerifierKey {
    return publicPart(this.#config.key);
  }

  /** The log key it trusts now (the configured one, or the last key change it followed). */
  get logKey(): VerifierKey {
    return this.#config.logKey;
  }

  /** Cosigns `note`; with `changes`, the log's key changes since the last checkpoint cosigned, each with its inclusion proof in this one. */
  cosign(note: string, proof: readonly Uint8Array[], changes: readonly LogKeyChange[] = []): Cosigned {
    const result = cosignCheckpoint(this.#config, this.#lastSeen, note, proof, changes);
    this.#lastSeen = result.checkpoint;
    this.#config = { ...this.#config, logKey: result.logKey };
    return result;
  }
}
