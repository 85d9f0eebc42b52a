/**
 * Checkpoints (c2sp.org/tlog-checkpoint): the signed tree head of the ledger as a
 * signed note whose text is
 *
 *   <origin>\n<tree size, decimal, no leading zeros>\n<base64 RFC 6962 root>\n[<extension line>\n]*
 *
 * A client checks the origin is the log it expects before it trusts anything else.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { fromBase64, toBase64 } from '@bulwark/crypto';
import { LedgerError } from '../errors.js';
import { MERKLE_HASH_LENGTH } from '../merkle/hash.js';
import { openNote, signNote, type OpenedNote } from './signed-note.js';
import { keyIdHex, type SignerKey, type VerifierKey } from './keys.js';

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** Optional opaque lines after the root (none by default). */
  readonly extensions: readonly string[];
}

function malformed(why: string, context: Record<string, unknown> = {}): LedgerError {
  return new LedgerError('E_CHECKPOINT', `checkpoint: ${why}`, context);
}

export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, rootHash, extensions } = checkpoint;
  if (origin.length === 0 || origin.includes('\n')) throw malformed('origin must be one non-empty line');
  if (!Number.isSafeInteger(size) || size < 0) throw malformed(`tree size ${size} is not a non-negative integer`);
  if (rootHash.length !== MERKLE_HASH_LENGTH) throw malformed(`root hash is ${rootHash.length} bytes, expected ${MERKLE_HASH_LENGTH}`);
  if (extensions.some((line) => line.length === 0 || line.includes('\n'))) throw malformed('extension lines must be non-empty single lines');
  return [origin, String(size), toBase64(rootHash), ...extensions].map((line) => `${line}\n`).join('');
}

export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw malformed('text does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw malformed(`has ${lines.length} lines, needs at least origin, size and root hash`);
  if (lines.some((line) => line.length === 0)) throw malformed('has an empty line');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw malformed(`tree size ${JSON.stringify(sizeText.slice(0, 40))} is not a decimal without leading zeros`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw malformed(`tree size ${sizeText} is beyond 2^53 - 1`);
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(rootText, 'root hash');
  } catch (cause) {
    throw new LedgerError('E_CHECKPOINT', 'checkpoint: root hash is not canonical base64', {}, { cause });
  }
  if (rootHash.length !== MERKLE_HASH_LENGTH) throw malformed(`root hash is ${rootHash.length} bytes, expected ${MERKLE_HASH_LENGTH} (SHA-256)`);
  return { origin, size, rootHash, extensions };
}

export function signCheckpoint(crypto: Pick<CryptoProvider, 'ed25519'>, checkpoint: Checkpoint, signers: readonly SignerKey[]): string {
  return signNote(crypto, formatCheckpoint(checkpoint), signers);
}

export interface OpenCheckpointOptions {
  /** The log's name; the checkpoint must carry exactly this origin. */
  readonly origin: string;
  /** The log's key: its signature is required. */
  readonly logKey: VerifierKey;
  /** Witness keys whose cosignatures are checked (and counted) when present. */
  readonly witnesses?: readonly VerifierKey[];
  /** How many of `witnesses` must have cosigned (default 0). */
  readonly minWitnesses?: number;
}

export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: OpenedNote;
  /** The witnesses whose cosignatures verified. */
  readonly witnesses: readonly VerifierKey[];
}

/**
 * Verifies the note (see openNote), parses the checkpoint, and checks its origin, the
 * log's signature and the witness quorum. Throws E_NOTE / E_NOTE_SIGNATURE / E_CHECKPOINT.
 */
export function openCheckpoint(crypto: Pick<CryptoProvider, 'ed25519'>, note: string, options: OpenCheckpointOptions): OpenedCheckpoint {
  const witnesses = options.witnesses ?? [];
  const opened = openNote(crypto, note, [options.logKey, ...witnesses]);
  const signedBy = (key: VerifierKey): boolean => opened.verified.some((s) => s.name === key.name && s.keyId === key.keyId);
  if (!signedBy(options.logKey)) {
    throw new LedgerError('E_NOTE_SIGNATURE', `checkpoint: not signed by the log key ${options.logKey.name}+${keyIdHex(options.logKey.keyId)}`, { key: options.logKey.name });
  }
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== options.origin) {
    throw new LedgerError('E_CHECKPOINT', `checkpoint: origin ${JSON.stringify(checkpoint.origin)} is not the expected ${JSON.stringify(options.origin)}`, {
      origin: checkpoint.origin,
      expected: options.origin,
    });
  }
  const cosigned = witnesses.filter(signedBy);
  const needed = options.minWitnesses ?? 0;
  if (cosigned.length < needed) {
    throw new LedgerError('E_NOTE_SIGNATURE', `checkpoint: ${cosigned.length} of the ${needed} witness cosignatures needed`, { cosigned: cosigned.length, needed });
  }
  return { checkpoint, note: opened, witnesses: cosigned };
}
