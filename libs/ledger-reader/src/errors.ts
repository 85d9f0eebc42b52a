import { BulwarkError } from '@bulwark/errors';

/**
 * Why a reader stopped. Each code is one check of DESIGN §3a ("Readers verify what they
 * replay") that an event or a message failed; the reader applies nothing after it.
 */
export type ReaderHaltCode =
  /** The recomputed event_hash differs, or the Ed25519 signature does not verify against the ledger key. */
  | 'E_READER_SEAL'
  /** seq or previous_hash does not follow the last event applied, or a batch is not in the ledger's order. */
  | 'E_READER_LINK'
  /** Events are missing and the ledger (`bulwark.audit.query`) did not supply exactly them. */
  | 'E_READER_GAP'
  /** The producer may not produce the event's type (the producer table, @bulwark/events). */
  | 'E_READER_PRODUCER'
  /** A change of the ledger's own key that the chain may not make (malformed, an older version, a key used before). */
  | 'E_READER_LEDGER_KEY'
  /** Two different events for one seq: the one applied and one delivered or served later. */
  | 'E_READER_FORK'
  /** A message on the ledger subject that is not the ledger's: another sender, undecodable, or not the subject's kind of batch. */
  | 'E_READER_MESSAGE'
  /** The projection threw while applying a verified event: its state can no longer be trusted. */
  | 'E_READER_APPLY';

/** The reason a reader halted: `seq` is the ledger seq it stopped at (the event that failed, or the first one missing). */
export class ReaderHaltedError extends BulwarkError {
  declare readonly code: ReaderHaltCode;
  readonly reader: string;
  readonly seq: number;
  readonly problem: string;

  constructor(code: ReaderHaltCode, reader: string, seq: number, problem: string, lastVerifiedSeq: number) {
    super(code, `ledger reader ${reader} halted at seq ${seq}: ${problem}`, { reader, seq, problem, lastVerifiedSeq });
    this.reader = reader;
    this.seq = seq;
    this.problem = problem;
  }
}

/** A reader was misused (bad options): a programming error, reported before it starts. */
export class LedgerReaderUsageError extends BulwarkError {}

/** A reader did not catch up with the stream and the ledger in the time given (`E_READER_CATCHUP`). */
export class LedgerReaderTimeoutError extends BulwarkError {}
