/**
 * Who signs event hashes. The ledger signs the 32 bytes of each event_hash with its Ed25519
 * key (README, "Events"); `signEventHashes` is the one place that does it, whether in this
 * thread (`InThreadSigner`: the library default, tests, the CLI) or in a worker
 * (`WorkerSigner`: the service, so that signing overlaps the hashing of the next batch).
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { HASH_LENGTH, SIGNATURE_LENGTH } from '@bulwark/events';
import { LedgerError } from '../errors.js';

export interface EventSigner {
  /**
   * Ed25519 signatures over each 32-byte event hash of `hashes` (n hashes, concatenated),
   * concatenated in the same order (n × 64 bytes). Rejects (LedgerError E_SIGNER) if any
   * cannot be produced: the caller must then store nothing.
   */
  sign(hashes: Uint8Array): Promise<Uint8Array>;
  /** Requests that failed so far (for metrics: a worker crash shows here, the batch's failure in the caller). */
  readonly failures: number;
  /** Releases threads; signing after close rejects. */
  close(): Promise<void>;
}

/** The signature of every event hash in `hashes`: the signing rule, shared by every signer. */
export function signEventHashes(crypto: Pick<CryptoProvider, 'ed25519'>, secretKey: Uint8Array, hashes: Uint8Array): Uint8Array {
  if (hashes.length % HASH_LENGTH !== 0) throw new LedgerError('E_SIGNER', `event hashes: ${hashes.length} bytes is not a multiple of ${HASH_LENGTH}`);
  const count = hashes.length / HASH_LENGTH;
  const out = new Uint8Array(count * SIGNATURE_LENGTH);
  for (let i = 0; i < count; i++) {
    out.set(crypto.ed25519.sign(secretKey, hashes.subarray(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)), i * SIGNATURE_LENGTH);
  }
  return out;
}

/** Signs in the calling thread (no overlap; no threads to manage). */
export class InThreadSigner implements EventSigner {
  readonly #crypto: Pick<CryptoProvider, 'ed25519'>;
  readonly #secretKey: Uint8Array;
  #failures = 0;

  constructor(crypto: Pick<CryptoProvider, 'ed25519'>, secretKey: Uint8Array) {
    this.#crypto = crypto;
    this.#secretKey = secretKey;
  }

  sign(hashes: Uint8Array): Promise<Uint8Array> {
    try {
      return Promise.resolve(signEventHashes(this.#crypto, this.#secretKey, hashes));
    } catch (error) {
      this.#failures += 1;
      return Promise.reject(error instanceof LedgerError ? error : new LedgerError('E_SIGNER', `event signing failed: ${(error as Error).message}`, {}, { cause: error }));
    }
  }

  get failures(): number {
    return this.#failures;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
