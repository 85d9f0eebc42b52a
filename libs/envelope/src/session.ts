import type { CryptoProvider } from '@bulwark/crypto';
import { concatBytes, equalPublic, lengthPrefixed } from './bytes.js';
import type { Directory, DirectoryEntry } from './directory.js';
import { EnvelopeError, reject, type Rejection } from './errors.js';
import { HeaderTemplate, isRejection, Mode, parseFrame, SESSION_ID_LENGTH, type FrameView } from './frame.js';
import { decodeId, encodeId } from './ids.js';
import { HandshakeState } from './noise/handshake-state.js';
import { resolveOptions, type EnvelopeOptions, type LocalIdentity, type OpenOptions, type Opened, type ResolvedOptions } from './options.js';
import { ReplayWindow } from './replay-window.js';
import { at, checkTimestamp, deriveTrafficKeys, label, openData, opened, sealData, SendCounter, type TrafficKeys } from './traffic.js';

/**
 * Session mode (DESIGN §3): request/reply with forward secrecy. The initiator knows the
 * responder's static key from the directory and runs Noise_IK_25519_ChaChaPoly_SHA256:
 *
 *   init frame  (mode 4): IK message 1 (e, es, s, ss), empty payload. Prologue = label || the
 *                         frame's header, so every header field is bound into the handshake.
 *   reply frame (mode 5): IK message 2 (e, ee, se), payload = SHA-256(reply header) || instance id
 *                         (u8 length + ASCII), binding the reply's header the same way.
 *
 * Split() gives one key per direction; each becomes k_enc || k_mac by HKDF (salt = handshake hash).
 */
export const DEFAULT_SESSION_MAX_AGE_MS = 60 * 60 * 1000;
const PROLOGUE_LABEL = label('session');
const KEYS_INFO = label('session keys');
const EMPTY = new Uint8Array(0);
/** IK message 1 with an empty payload: e (32) + encrypted s (32 + 16) + payload tag (16). */
const INIT_MESSAGE_LENGTH = 96;
const DIGEST_LENGTH = 32;

export interface SessionOptions extends EnvelopeOptions {
  readonly self: LocalIdentity;
  readonly directory: Directory;
  /** A session refuses to seal, and its frames are refused, once this old. Default 1 hour. */
  readonly maxAgeMs?: number;
}

export interface SessionInitiatorOptions extends SessionOptions {
  /** The responder's principal id (`svc.policy`); its static key comes from the directory. */
  readonly peerId: string;
}

export interface SessionResponderOptions extends SessionOptions {
  /** This instance's id, returned to initiators so later requests reach this instance. */
  readonly instanceId: string;
  /** Sessions held at once; the oldest is dropped beyond this. Default 10 000. */
  readonly maxSessions?: number;
}

interface SessionInit {
  readonly options: ResolvedOptions;
  readonly directory: Directory;
  readonly selfId: string;
  readonly peerId: string;
  readonly peerStatic: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly role: 'initiator' | 'responder';
  readonly instanceId: string;
  readonly sendKeys: TrafficKeys;
  readonly receiveKeys: TrafficKeys;
  readonly establishedAt: number;
  readonly maxAgeMs: number;
}

/** A session frame's outcome; an accepted one names the session it belongs to. */
export type SessionOpenResult = (Opened & { readonly session: Session }) | Rejection;

/** An established session: seal requests or replies to the peer, open the peer's frames. */
export class Session {
  /** Hex of the 16-byte session id. */
  readonly id: string;
  readonly peerId: string;
  readonly role: 'initiator' | 'responder';
  /** The responder instance that holds the other end. */
  readonly instanceId: string;
  readonly establishedAt: number;
  readonly #init: SessionInit;
  readonly #template: HeaderTemplate;
  readonly #counter = new SendCounter();
  readonly #window = new ReplayWindow();
  /** The directory entry last seen valid with the session's static key (skips re-comparing an unchanged entry). */
  #peerEntry: DirectoryEntry | undefined;

  /** @internal Built by `initiateSession(...).complete()` or `SessionResponder.accept()`. */
  constructor(init: SessionInit) {
    this.#init = init;
    this.id = Buffer.from(init.sessionId).toString('hex');
    this.peerId = init.peerId;
    this.role = init.role;
    this.instanceId = init.instanceId;
    this.establishedAt = init.establishedAt;
    this.#template = new HeaderTemplate({ mode: Mode.session, sender: init.selfId, recipient: init.peerId, sessionId: init.sessionId });
  }

  /** Past its maximum age or out of counters: start a new handshake. */
  get expired(): boolean {
    return this.#counter.exhausted || this.#init.options.clock() - this.establishedAt >= this.#init.maxAgeMs;
  }

  seal(plaintext: Uint8Array): Uint8Array {
    const { options, directory } = this.#init;
    const now = options.clock();
    if (now - this.establishedAt >= this.#init.maxAgeMs) {
      throw new EnvelopeError('E_SESSION_EXPIRED', `envelope: session ${this.id} with '${this.peerId}' is older than ${this.#init.maxAgeMs} ms; handshake again`, { sessionId: this.id });
    }
    if (!this.#peerStillValid(directory, true)) {
      throw new EnvelopeError('E_UNKNOWN_PEER', `envelope: '${this.peerId}' no longer has a valid directory entry for session ${this.id}`, { peerId: this.peerId });
    }
    return sealData(options.provider, this.#template, this.#init.sendKeys, this.#counter.take(), now, plaintext, options.maxFrameSize);
  }

  open(frame: Uint8Array, openOptions: OpenOptions = {}): SessionOpenResult {
    const view = parseFrame(frame, this.#init.options.maxFrameSize);
    if (isRejection(view)) return view;
    return this.openView(view, openOptions);
  }

  /** @internal `open` for a frame already parsed (by the responder, which routes on its header). */
  openView(view: FrameView, openOptions: OpenOptions = {}): SessionOpenResult {
    const { options, directory } = this.#init;
    if (view.mode !== Mode.session) return reject('E_MODE', `mode ${view.mode} frame given to a session`, at(view));
    const now = options.clock();
    const skew = checkTimestamp(view, now, options);
    if (skew) return skew;
    if (view.recipient !== this.#init.selfId) return reject('E_WRONG_RECIPIENT', `frame for '${view.recipient}' reached '${this.#init.selfId}'`, at(view));
    if (view.sender !== this.peerId || view.sessionIdHex !== this.id) return reject('E_UNKNOWN_SESSION', `no session ${view.sessionIdHex} with '${view.sender}' here`, at(view));
    if (now - this.establishedAt >= this.#init.maxAgeMs) return reject('E_UNKNOWN_SESSION', `session ${this.id} has expired`, at(view));
    if (!this.#peerStillValid(directory, false)) {
      return reject('E_UNKNOWN_SENDER', `'${this.peerId}' no longer has a valid directory entry with the session's static key`, at(view));
    }
    const defer = openOptions.deferCommit === true;
    const plaintext = openData(options.provider, view, this.#init.receiveKeys, this.#window, defer);
    if (plaintext instanceof Uint8Array) return opened(view, plaintext, defer ? this.#window : undefined, this);
    return plaintext;
  }

  /**
   * Per frame, so that revoking the peer's key ends the session at once. A rotation of the peer's
   * key ends it once the superseded grace is over (Directory.superseded; a revocation ends the
   * grace at once): a responder keeps its session with an initiator that rotated until the
   * initiator switches, a moment after its new entry is served; an initiator opens the replies its
   * responder sealed before its own rotation reached this directory, but seals nothing new to the
   * old key (its next request handshakes with the new entry).
   */
  #peerStillValid(directory: Directory, sealing: boolean): boolean {
    const entry = directory.lookup(this.peerId);
    if (entry === undefined) return false;
    if (entry !== this.#peerEntry) {
      if (!equalPublic(entry.x25519PublicKey, this.#init.peerStatic)) return (this.role === 'responder' || !sealing) && heldBySuperseded(directory, this.peerId, this.#init.peerStatic);
      this.#peerEntry = entry;
    }
    return true;
  }
}

/** The initiator's half-open session: send `frame`, then hand the reply to `complete`. */
export interface PendingSession {
  readonly sessionId: string;
  /** The handshake-init frame to send to the responder's service subject. */
  readonly frame: Uint8Array;
  /** Finish the handshake with the responder's reply frame. One call; a failed reply abandons it. */
  complete(reply: Uint8Array): { readonly ok: true; readonly session: Session } | Rejection;
}

export function initiateSession(options: SessionInitiatorOptions): PendingSession {
  const resolved = resolveOptions(options);
  const { provider, clock } = resolved;
  const peer = options.directory.lookup(options.peerId);
  if (peer === undefined) {
    throw new EnvelopeError('E_UNKNOWN_PEER', `envelope: no valid directory entry for '${options.peerId}' to open a session with`, { peerId: options.peerId });
  }
  const sessionId = provider.randomBytes(SESSION_ID_LENGTH);
  const template = new HeaderTemplate({ mode: Mode.handshakeInit, sender: options.self.id, recipient: options.peerId, sessionId });
  const frame = template.allocate(0n, clock(), INIT_MESSAGE_LENGTH);
  const header = frame.subarray(0, template.length);
  const hs = new HandshakeState(provider, {
    pattern: 'IK',
    initiator: true,
    prologue: concatBytes([PROLOGUE_LABEL, header]),
    s: options.self.x25519,
    rs: peer.x25519PublicKey,
  });
  frame.set(exactLength(hs.writeMessage(EMPTY), INIT_MESSAGE_LENGTH), template.length);
  const sessionIdHex = Buffer.from(sessionId).toString('hex');
  let state: 'pending' | 'done' = 'pending';

  return {
    sessionId: sessionIdHex,
    frame,
    complete(reply) {
      const view = parseFrame(reply, resolved.maxFrameSize);
      if (isRejection(view)) return view;
        if (view.mode !== Mode.handshakeReply) return reject('E_MODE', `mode ${view.mode} frame given as a handshake reply`, at(view));
      const now = clock();
      const skew = checkTimestamp(view, now, resolved);
      if (skew) return skew;
      if (view.recipient !== options.self.id) return reject('E_WRONG_RECIPIENT', `handshake reply for '${view.recipient}' reached '${options.self.id}'`, at(view));
      if (view.sender !== options.peerId) return reject('E_UNKNOWN_SENDER', `handshake reply from '${view.sender}', expected '${options.peerId}'`, at(view));
      if (view.sessionIdHex !== sessionIdHex) return reject('E_UNKNOWN_SESSION', `handshake reply for session ${view.sessionIdHex}, expected ${sessionIdHex}`, at(view));
      if (state !== 'pending') return reject('E_REPLAY', `session ${sessionIdHex} handshake already completed or abandoned`, at(view));
      state = 'done';
      let payload: Uint8Array;
      try {
        payload = hs.readMessage(view.body);
      } catch {
        return reject('E_HANDSHAKE', 'handshake reply does not authenticate', at(view));
      }
      const instanceId = readReplyPayload(provider, payload, view.header);
      if (instanceId === undefined) return reject('E_HANDSHAKE', 'handshake reply payload does not match its header', at(view));
      const [toResponder, toInitiator] = hs.split();
      const session = new Session({
        options: resolved,
        directory: options.directory,
        selfId: options.self.id,
        peerId: options.peerId,
        peerStatic: peer.x25519PublicKey,
        sessionId,
        role: 'initiator',
        instanceId,
        sendKeys: deriveTrafficKeys(provider, toResponder.key!, hs.handshakeHash, KEYS_INFO),
        receiveKeys: deriveTrafficKeys(provider, toInitiator.key!, hs.handshakeHash, KEYS_INFO),
        establishedAt: now,
        maxAgeMs: options.maxAgeMs ?? DEFAULT_SESSION_MAX_AGE_MS,
      });
      return { ok: true, session };
    },
  };
}

export type AcceptResult = { readonly ok: true; readonly session: Session; readonly reply: Uint8Array } | Rejection;

/**
 * The responder side: answers handshake-init frames and keeps the sessions they open, so that
 * `open` can route each data frame to its session by (sender, session id).
 */
export class SessionResponder {
  readonly #options: ResolvedOptions;
  readonly #self: LocalIdentity;
  readonly #directory: Directory;
  readonly #instanceId: string;
  readonly #maxSessions: number;
  readonly #maxAgeMs: number;
  readonly #sessions = new Map<string, Session>();

  constructor(options: SessionResponderOptions) {
    this.#options = resolveOptions(options);
    this.#self = options.self;
    this.#directory = options.directory;
    encodeId(options.self.id, 'self id');
    encodeId(options.instanceId, 'instance id');
    this.#instanceId = options.instanceId;
    this.#maxSessions = options.maxSessions ?? 10_000;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_SESSION_MAX_AGE_MS;
  }

  get size(): number {
    return this.#sessions.size;
  }

  accept(frame: Uint8Array): AcceptResult {
    const { provider, clock, maxFrameSize } = this.#options;
    const view = parseFrame(frame, maxFrameSize);
    if (isRejection(view)) return view;
    if (view.mode !== Mode.handshakeInit) return reject('E_MODE', `mode ${view.mode} frame given as a handshake init`, at(view));
    const now = clock();
    const skew = checkTimestamp(view, now, this.#options);
    if (skew) return skew;
    if (view.recipient !== this.#self.id) return reject('E_WRONG_RECIPIENT', `handshake for '${view.recipient}' reached '${this.#self.id}'`, at(view));
    const peer = this.#directory.lookup(view.sender);
    if (peer === undefined) return reject('E_UNKNOWN_SENDER', `no valid directory entry for '${view.sender}'`, at(view));
    // Keyed by session id alone: 16 random bytes the initiator drew. A second handshake with an
    // id in use (a replay, or anyone's attempt to collide with a session seen on the wire) is refused.
    const key = view.sessionIdHex;
    if (this.#sessions.has(key)) return reject('E_REPLAY', `handshake for session ${view.sessionIdHex} already seen`, at(view));

    // Our current key, then the ones our own rotations replaced (LocalIdentity.previousX25519).
    const own = [this.#self.x25519, ...(this.#self.previousX25519 ?? [])];
    let hs: HandshakeState | undefined;
    for (const s of own) {
      const attempt = new HandshakeState(provider, { pattern: 'IK', initiator: false, prologue: concatBytes([PROLOGUE_LABEL, view.header]), s });
      try {
        if (attempt.readMessage(view.body).length !== 0) return reject('E_HANDSHAKE', 'handshake init carries a payload', at(view));
        hs = attempt;
        break;
      } catch {
        // Not made to this key: the next one, if any.
      }
    }
    if (hs === undefined) return reject('E_HANDSHAKE', 'handshake init does not authenticate', at(view));
    // The initiator proved possession of this static key; it must be the one the directory names,
    // or, while the grace of its rotation lasts, the one its new entry replaced (it switches a moment after that entry is served).
    if (!provider.equal(hs.remoteStatic!, peer.x25519PublicKey) && !heldBySuperseded(this.#directory, view.sender, hs.remoteStatic!)) {
      return reject('E_UNKNOWN_SENDER', `'${view.sender}' handshook with a static key its directory entry does not hold`, at(view));
    }

    const instance = lengthPrefixed(encodeId(this.#instanceId, 'instance id'));
    const template = new HeaderTemplate({ mode: Mode.handshakeReply, sender: this.#self.id, recipient: view.sender, sessionId: view.sessionId });
    const replyLength = 32 + DIGEST_LENGTH + instance.length + 16;
    const reply = template.allocate(0n, now, replyLength);
    const replyHeader = reply.subarray(0, template.length);
    reply.set(exactLength(hs.writeMessage(concatBytes([provider.sha256(replyHeader), instance])), replyLength), template.length);
    const [toResponder, toInitiator] = hs.split();
    const session = new Session({
      options: this.#options,
      directory: this.#directory,
      selfId: this.#self.id,
      peerId: view.sender,
      peerStatic: peer.x25519PublicKey,
      sessionId: view.sessionId.slice(),
      role: 'responder',
      instanceId: this.#instanceId,
      sendKeys: deriveTrafficKeys(provider, toInitiator.key!, hs.handshakeHash, KEYS_INFO),
      receiveKeys: deriveTrafficKeys(provider, toResponder.key!, hs.handshakeHash, KEYS_INFO),
      establishedAt: now,
      maxAgeMs: this.#maxAgeMs,
    });
    this.#remember(key, session, now);
    return { ok: true, session, reply };
  }

  /** Open a session data frame addressed to any session this responder holds. */
  open(frame: Uint8Array, openOptions: OpenOptions = {}): SessionOpenResult {
    const view = parseFrame(frame, this.#options.maxFrameSize);
    if (isRejection(view)) return view;
    // openView checks that the frame's sender is the session's peer.
    const session = this.#sessions.get(view.sessionIdHex);
    if (session === undefined) {
      // Keep the documented order: a stale or misaddressed frame says so before "unknown session".
      if (view.mode !== Mode.session) return reject('E_MODE', `mode ${view.mode} frame given to a session`, at(view));
      const skew = checkTimestamp(view, this.#options.clock(), this.#options);
      if (skew) return skew;
      if (view.recipient !== this.#self.id) return reject('E_WRONG_RECIPIENT', `frame for '${view.recipient}' reached '${this.#self.id}'`, at(view));
      return reject('E_UNKNOWN_SESSION', `no session ${view.sessionIdHex} with '${view.sender}' here`, at(view));
    }
    return session.openView(view, openOptions);
  }

  /** The session for a (peer, session id), e.g. to seal a reply. */
  get(peerId: string, sessionId: string): Session | undefined {
    const session = this.#sessions.get(sessionId);
    return session?.peerId === peerId ? session : undefined;
  }

  /** Drop expired sessions; call now and then (the bus does, on a timer). */
  prune(): number {
    const now = this.#options.clock();
    let dropped = 0;
    for (const [key, session] of this.#sessions) {
      if (now - session.establishedAt >= this.#maxAgeMs || session.expired) {
        this.#sessions.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  #remember(key: string, session: Session, _now: number): void {
    if (this.#sessions.size >= this.#maxSessions) this.prune();
    while (this.#sessions.size >= this.#maxSessions) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    this.#sessions.set(key, session);
  }
}

/** Handshake frames declare the Noise message length in their header before it is written. */
function exactLength(message: Uint8Array, expected: number): Uint8Array {
  if (message.length !== expected) throw new EnvelopeError('E_HANDSHAKE', `noise: handshake message of ${message.length} bytes, expected ${expected}`, {});
  return message;
}

/** Reply payload = SHA-256(reply header) || instance id (u8 length + ASCII). */
function readReplyPayload(provider: CryptoProvider, payload: Uint8Array, header: Uint8Array): string | undefined {
  if (payload.length < DIGEST_LENGTH + 2) return undefined;
  if (!provider.equal(payload.subarray(0, DIGEST_LENGTH), provider.sha256(header))) return undefined;
  const length = payload[DIGEST_LENGTH]!;
  if (payload.length !== DIGEST_LENGTH + 1 + length) return undefined;
  return decodeId(payload, DIGEST_LENGTH + 1, length);
}

/** Whether `id`'s entry that a rotation replaced a moment ago (its grace not over, not revoked) holds `x25519`. */
function heldBySuperseded(directory: Directory, id: string, x25519: Uint8Array): boolean {
  const old = directory.superseded?.(id);
  return old !== undefined && equalPublic(old.x25519PublicKey, x25519);
}
