/**
 * What a responder checks before a handshake init costs it any key work, and whom it charges
 * (DESIGN §3a, README "Handshake admission"). In order, cheapest first:
 *
 *   1. frame shape, mode (handshake init), timestamp within the window, recipient is us;
 *   2. the claimed sender has a valid directory entry;
 *   3. the admission tag (handshake-admission.ts) verifies against that entry's static key:
 *      the init comes from the principal it names;
 *   4. the session id was not admitted before (a captured init replayed within its window);
 *   5. only now is the principal charged: its own budget, then the global one.
 *
 * The only key work before authentication is deriving an entry's admission key the first time
 * (one X25519, then cached against the entry): it draws on the shared failure budget, as does a
 * handshake admitted here that then fails in Noise IK (two X25519 spent). A handshake refused
 * by the checks above cost a parse, a lookup and an HMAC, less than NATS spent delivering it,
 * and draws nothing: so a flood of them cannot empty the shared budget either, and cannot stop
 * a principal's first handshake from deriving its key. No principal's budget is touched by a
 * handshake it did not make.
 */
import { LRUCache } from 'lru-cache';
import { DEFAULT_MAX_FRAME_SIZE, DEFAULT_SKEW_MS, inspectFrame, Mode, type SessionResponderOptions } from '@bulwark/envelope';
import type { HandshakeLimiter } from '../handshake-limiter.js';
import { AdmissionKeys, decodeAdmissionTag } from './handshake-admission.js';

export type GateVerdict = { readonly ok: true; readonly sender: string } | { readonly ok: false; readonly reason: string; readonly sender: string | undefined };

/** Session ids admitted and remembered for replay detection at most (≥ global rate × window). */
const MAX_REMEMBERED_SESSIONS = 100_000;

export class HandshakeGate {
  readonly #self: string;
  readonly #keys: AdmissionKeys;
  readonly #limiter: HandshakeLimiter;
  readonly #clock: () => number;
  readonly #skewMs: number;
  readonly #staleAfterMs: number;
  readonly #maxFrameSize: number;
  readonly #admitted: LRUCache<string, true>;

  constructor(sessions: Omit<SessionResponderOptions, 'instanceId'>, limiter: HandshakeLimiter) {
    this.#self = sessions.self.id;
    this.#keys = new AdmissionKeys(sessions);
    this.#limiter = limiter;
    this.#clock = sessions.clock ?? Date.now;
    this.#skewMs = sessions.skewMs ?? DEFAULT_SKEW_MS;
    this.#staleAfterMs = sessions.staleAfterMs ?? this.#skewMs;
    this.#maxFrameSize = sessions.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    // An init is accepted while its timestamp is within [now - stale, now + skew]: remember
    // an admitted session id at least that long.
    this.#admitted = new LRUCache({ max: MAX_REMEMBERED_SESSIONS, ttl: this.#staleAfterMs + this.#skewMs + 1000, ttlAutopurge: false });
  }

  /** A handshake admitted here then failed in Noise IK (its key work is spent): it draws on the shared failure budget. */
  failed(): void {
    this.#limiter.drawFailure();
  }

  /** Checks `frame` with its admission header value and charges whom it should. */
  admit(frame: Uint8Array, tagHeader: string | undefined): GateVerdict {
    const init = inspectFrame(frame, this.#maxFrameSize);
    if ('ok' in init) return { ok: false, reason: init.reason, sender: init.sender };
    const sender = init.sender;
    if (init.mode !== Mode.handshakeInit) return { ok: false, reason: 'E_MODE', sender };
    const now = this.#clock();
    if (init.timestamp < now - this.#staleAfterMs) return { ok: false, reason: 'E_STALE', sender };
    if (init.timestamp > now + this.#skewMs) return { ok: false, reason: 'E_FUTURE', sender };
    if (init.recipient !== this.#self) return { ok: false, reason: 'E_WRONG_RECIPIENT', sender };
    const entry = this.#keys.entry(sender);
    if (entry === undefined) return { ok: false, reason: 'E_UNKNOWN_SENDER', sender };
    const tag = decodeAdmissionTag(tagHeader);
    if (tag === undefined) return { ok: false, reason: 'E_BUS_ADMISSION', sender };
    // The one piece of key work before authentication, once per directory entry: paid from
    // the shared budget, so naming many principals cannot make it unbounded (nor, as each
    // entry is derived once, keep the budget empty).
    if (!this.#keys.cached(entry) && !this.#limiter.drawFailure()) return { ok: false, reason: RATE, sender };
    if (!this.#keys.verify(entry, frame, tag)) return { ok: false, reason: 'E_BUS_ADMISSION', sender };
    // Authentic, but perhaps a capture replayed: a session id is admitted once.
    if (this.#admitted.has(init.sessionId)) return { ok: false, reason: 'E_REPLAY', sender };
    this.#admitted.set(init.sessionId, true);
    if (!this.#limiter.admitAuthenticated(sender)) return { ok: false, reason: RATE, sender };
    return { ok: true, sender };
  }
}

const RATE = 'E_BUS_HANDSHAKE_RATE';
