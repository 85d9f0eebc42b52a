import type { CryptoProvider, X25519KeyPair } from '@bulwark/crypto';
import { EnvelopeError, type Rejection } from './errors.js';
import { DEFAULT_MAX_FRAME_SIZE, MIN_FRAME_SIZE, type Mode } from './frame.js';

/** Milliseconds since the Unix epoch. Tests inject a fixed or stepping clock. */
export type Clock = () => number;

/** The receiver's tolerance for clock differences, each way. */
export const DEFAULT_SKEW_MS = 30_000;

/** Options every sender and receiver takes; defaults documented here and in the README. */
export interface EnvelopeOptions {
  readonly provider: CryptoProvider;
  /** Default `Date.now`. */
  readonly clock?: Clock;
  /** Refuse timestamps later than now + skewMs (E_FUTURE) or earlier than now - skewMs (E_STALE). Default 30 000. */
  readonly skewMs?: number;
  /**
   * Accept frames up to this old instead of skewMs (E_STALE beyond). For consumers of durable
   * streams, whose frames may wait in JetStream longer than the skew: set it to the backlog
   * the consumer must be able to drain. Default: skewMs.
   */
  readonly staleAfterMs?: number;
  /** Largest frame sent or accepted, in bytes. Default 1 MiB (NATS's default max_payload). */
  readonly maxFrameSize?: number;
}

export interface ResolvedOptions {
  readonly provider: CryptoProvider;
  readonly clock: Clock;
  readonly skewMs: number;
  readonly staleAfterMs: number;
  readonly maxFrameSize: number;
}

export function resolveOptions(options: EnvelopeOptions): ResolvedOptions {
  const skewMs = options.skewMs ?? DEFAULT_SKEW_MS;
  const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isSafeInteger(skewMs) || skewMs < 0) {
    throw new EnvelopeError('E_OPTIONS', `envelope: skewMs ${skewMs} must be a non-negative integer`, { skewMs });
  }
  const staleAfterMs = options.staleAfterMs ?? skewMs;
  if (!Number.isSafeInteger(staleAfterMs) || staleAfterMs < 0) {
    throw new EnvelopeError('E_OPTIONS', `envelope: staleAfterMs ${staleAfterMs} must be a non-negative integer`, { staleAfterMs });
  }
  if (!Number.isSafeInteger(maxFrameSize) || maxFrameSize < MIN_FRAME_SIZE || maxFrameSize > 0xffff_ffff) {
    throw new EnvelopeError('E_OPTIONS', `envelope: maxFrameSize ${maxFrameSize} must be an integer between ${MIN_FRAME_SIZE} and 2^32-1`, { maxFrameSize });
  }
  return { provider: options.provider, clock: options.clock ?? Date.now, skewMs, staleAfterMs, maxFrameSize };
}

/** This process's principal: its id and X25519 static key pair (the Ed25519 key signs elsewhere). */
export interface LocalIdentity {
  readonly id: string;
  readonly x25519: X25519KeyPair;
  /**
   * The X25519 keys this principal held before rotating its own (issue 12), newest first. Tried,
   * only after `x25519` failed, by sealed receivers (a stream kept forever, as the ledger's control
   * stream, replays frames sealed to them) and by session responders (a peer that made its
   * handshake from our entry before it saw the new one). Frames *from* an old version are refused
   * as before: a sender's key always comes from its current directory entry.
   */
  readonly previousX25519?: readonly X25519KeyPair[];
}

/** Per-call options of every `open`. */
export interface OpenOptions {
  /**
   * Leave the counter out of the replay window until `commit()` is called: for durable
   * consumers, which must acknowledge (and commit) only after their handler succeeded, so that
   * a redelivery after a failed handler is processed rather than taken for a duplicate.
   * Default false: the counter is recorded as the frame is accepted.
   */
  readonly deferCommit?: boolean;
}

/** An accepted frame: authentic, fresh, addressed to us. */
export interface Opened {
  readonly ok: true;
  readonly mode: Mode;
  readonly plaintext: Uint8Array;
  readonly sender: string;
  /** Our principal id, or the channel id. */
  readonly recipient: string;
  /** Hex of the 16-byte session id (the epoch and stream for channels). */
  readonly sessionId: string;
  readonly counter: bigint;
  readonly timestamp: number;
  /** Record the counter in the replay window (idempotent; a no-op unless opened with deferCommit). */
  readonly commit: () => void;
}

export type OpenResult = Opened | Rejection;
