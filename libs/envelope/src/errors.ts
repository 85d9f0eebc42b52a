import { BulwarkError } from '@bulwark/errors';

/**
 * Why a received frame was refused. The receiving side never throws for a bad frame:
 * it returns a `Rejection` that the bus counts and reports as a security event, and the
 * handler never sees the frame. Listed in the order the receiver checks them.
 */
export type RejectionReason =
  /** Lengths, field values or id characters do not follow the v1 layout. */
  | 'E_FRAME_SHAPE'
  /** Shorter than the smallest frame or longer than the configured maximum. */
  | 'E_FRAME_SIZE'
  /** A frame version this library does not speak. */
  | 'E_VERSION'
  /** A well-formed frame of another mode than the receiver handles. */
  | 'E_MODE'
  /** Timestamp older than now minus the skew window. */
  | 'E_STALE'
  /** Timestamp newer than now plus the skew window. */
  | 'E_FUTURE'
  /** Addressed to another principal or channel. */
  | 'E_WRONG_RECIPIENT'
  /** Sender absent from the directory, expired, revoked, or not the expected peer or issuer. */
  | 'E_UNKNOWN_SENDER'
  /** No session with this id (never established, expired or evicted). */
  | 'E_UNKNOWN_SESSION'
  /** A channel epoch this receiver holds no key for (or one past its grace period). */
  | 'E_UNKNOWN_EPOCH'
  /** The Noise handshake message does not authenticate (wrong keys, tampered, low-order point). */
  | 'E_HANDSHAKE'
  /** HMAC-SHA256 over header, ciphertext and counter does not match. */
  | 'E_MAC'
  /** ChaCha20-Poly1305 tag does not verify. */
  | 'E_AEAD'
  /** Counter already seen (`duplicate: true`) or older than the replay window (`duplicate: false`). */
  | 'E_REPLAY';

export interface Rejection {
  readonly ok: false;
  readonly reason: RejectionReason;
  /**
   * True only for an authentic frame whose counter this receiver already accepted: a
   * JetStream redelivery of a frame already processed. The bus acknowledges it without
   * processing it again; every other rejection is a security event.
   */
  readonly duplicate: boolean;
  /** One line: what was wrong, for logs. */
  readonly detail: string;
  /** Header fields, when the frame parsed far enough to have them (unauthenticated unless reason is E_REPLAY). */
  readonly sender?: string;
  readonly sessionId?: string;
}

export function reject(
  reason: RejectionReason,
  detail: string,
  where: { sender?: string; sessionId?: string } = {},
  duplicate = false,
): Rejection {
  return { ok: false, reason, duplicate, detail, ...where };
}

/**
 * Failures on the sending or configuring side (the caller's own input): unknown peer,
 * exhausted counter, oversized plaintext, malformed id or key. These throw.
 */
export class EnvelopeError extends BulwarkError {}
