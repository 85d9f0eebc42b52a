/**
 * A witness (DESIGN §4): another service that cosigns the ledger's checkpoints only after
 * checking that each new one extends the last one it saw (an RFC 9162 consistency proof).
 * A ledger that rewrote history could then not show the same witnesses two views.
 * The cosignature is a signed-note line added beside the log's own signature: with a
 * type 0x04 key, a timestamped cosignature/v1 (c2sp.org/tlog-cosignature) that
 * standard witness tooling reads; with a type 0x01 key, a plain note signature.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { LedgerError, isLedgerError } from './errors.js';
import { verifyConsistency } from './merkle/proofs.js';
import { openCheckpoint, type Checkpoint } from './note/checkpoint.js';
import { publicPart, type SignerKey, type VerifierKey } from './note/keys.js';
import { addSignatures, signText, type NoteSignature } from './note/signed-note.js';

export interface WitnessConfig {
  readonly crypto: Pick<CryptoProvider, 'ed25519' | 'sha256' | 'equal'>;
  /** The witness's own key: a cosignature/v1 key (type 0x04, c2sp.org/tlog-cosignature), or a plain note key. */
  readonly key: SignerKey;
  /** The clock for cosignature timestamps, POSIX seconds (default: now). */
  readonly now?: () => number;
  /** The log it watches: origin and public key. */
  readonly origin: string;
  readonly logKey: VerifierKey;
}

export interface Cosigned {
  readonly checkpoint: Checkpoint;
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
export function cosignCheckpoint(config: WitnessConfig, lastSeen: Checkpoint | undefined, note: string, proof: readonly Uint8Array[]): Cosigned {
  const { crypto } = config;
  let checkpoint: Checkpoint;
  let text: string;
  try {
    const opened = openCheckpoint(crypto, note, { origin: config.origin, logKey: config.logKey });
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
  return { checkpoint, cosignature, note: addSignatures(note, [cosignature]) };
}

/** Holds a witness's last cosigned checkpoint in memory (a service persists it). */
export class Witness {
  readonly #config: WitnessConfig;
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

  cosign(note: string, proof: readonly Uint8Array[]): Cosigned {
    const result = cosignCheckpoint(this.#config, this.#lastSeen, note, proof);
    this.#lastSeen = result.checkpoint;
    return result;
  }
}
