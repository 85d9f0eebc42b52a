/**
 * The seam between the bus and the envelope. The bus moves frames; these ports say what
 * it needs from the envelope to turn them into plaintext and back. They are internal:
 * the public API builds them only from @bulwark/envelope objects, so no caller can hand
 * the bus a pass-through that would put plaintext on the wire.
 */

/** Who sent a frame and where it sits in its session (authenticated once accepted). */
export interface FrameMeta {
  readonly sender: string;
  readonly sessionId: string;
  readonly counter: bigint;
}

/** A frame that failed a check. `sender` is what the frame claimed, if it could be read. */
export interface Rejected {
  readonly kind: 'rejected';
  readonly reason: string;
  readonly sender?: string;
}

export type Opened =
  /**
   * Every check passed. `commit` records the counter in the replay window: the bus calls
   * it only once the handler succeeded, so a frame whose handler failed is still
   * accepted when JetStream redelivers it.
   */
  | {
      readonly kind: 'accepted';
      readonly plaintext: Uint8Array;
      readonly meta: FrameMeta;
      commit(): void;
      /** The bus gave up on the frame (terminated it): forget it without committing. */
      abandon(): void;
    }
  /** Authentic, but its counter was already committed: a redelivery or a replay. */
  | { readonly kind: 'duplicate'; readonly sender: string | undefined }
  | Rejected;

/** Seals one-way frames from this principal to one recipient (Noise K, "sealed"). */
export interface StreamSealer {
  seal(plaintext: Uint8Array): Promise<Uint8Array>;
}

/** Opens sealed frames addressed to this principal. */
export interface StreamOpener {
  open(frame: Uint8Array): Promise<Opened>;
}

/**
 * A request or reply frame of a session, opened. Requests and replies are never redelivered,
 * so the replay window's verdict at open time is final: nothing to commit later.
 */
export type OpenedMessage =
  | { readonly kind: 'accepted'; readonly plaintext: Uint8Array; readonly sender: string }
  | { readonly kind: 'duplicate'; readonly sender: string | undefined }
  | Rejected;

/** A request the responder opened: its reply is sealed in the session it came in. */
export type OpenedRequest =
  | {
      readonly kind: 'accepted';
      readonly plaintext: Uint8Array;
      readonly sender: string;
      readonly sessionId: string;
      /** Seals the reply in the request's session; throws once that session is gone. */
      sealReply(plaintext: Uint8Array): Uint8Array;
    }
  | Exclude<OpenedMessage, { kind: 'accepted' }>;

/** One established request/reply session, on the initiator's side. */
export interface InitiatorSession {
  readonly sessionId: string;
  /** Past its age or counter limit: the client handshakes again instead of using it. */
  readonly expired: boolean;
  // Synchronous, as the envelope is: a request pays no promise hop for its crypto.
  seal(plaintext: Uint8Array): Uint8Array;
  open(frame: Uint8Array): OpenedMessage;
}

/** Starts Noise IK handshakes towards one responder (whose static key it knows). */
export interface SessionInitiator {
  begin(): Promise<{
    message: Uint8Array;
    /** Reads the responder's answer, which names the instance that holds the session. */
    finish(reply: Uint8Array): Promise<{ kind: 'established'; session: InitiatorSession; instanceId: string } | Rejected>;
  }>;
}

/** The responder's side: answers handshakes and keeps the sessions it established. */
export interface SessionResponderPort {
  /** Answers handshake message 1; the reply carries this instance's id. */
  accept(message: Uint8Array): Promise<{ kind: 'established'; reply: Uint8Array; meta: FrameMeta } | Rejected>;
  /** Opens a request frame of an established session (synchronously, as the envelope does). */
  open(frame: Uint8Array): OpenedRequest;
  /** Drops expired sessions. */
  prune(): void;
}
