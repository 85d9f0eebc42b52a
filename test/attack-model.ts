// The attack suite's oracle: what a receiver must answer to a frame, worked out from the
// envelope README's frame layout and check order (1 size, 2 version, 3 shape, 4 mode,
// 5 stale/future, 6 recipient, 7 sender, 8 session/epoch, 9 handshake, 10 mac, 11 AEAD,
// 12 replay), written independently of @bulwark/envelope's code so that the suite checks
// the implementation against the specification rather than against itself.

const MIN_FRAME = 58;
const SESSION_ID = 16;
const SEALED_HANDSHAKE = 48;
const TAG = 16;
const MAC = 32;

export interface ModelView {
  readonly mode: number;
  readonly sender: string;
  readonly recipient: string;
  readonly sessionIdHex: string;
  readonly timestamp: number;
  readonly sealedHandshakeHex: string | undefined;
}

export interface Layout {
  readonly headerLength: number;
  readonly bodyLength: number;
  readonly fields: ReadonlyArray<{ readonly name: string; readonly start: number; readonly end: number }>;
}

function validId(bytes: Uint8Array, start: number, length: number): string | undefined {
  if (length < 1 || length > 128 || start + length > bytes.length) return undefined;
  const text = Buffer.from(bytes.subarray(start, start + length)).toString('latin1');
  return /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/.test(text) ? text : undefined;
}

const u32 = (b: Uint8Array, at: number) => Buffer.from(b.buffer, b.byteOffset, b.length).readUInt32LE(at);

/** Checks 1–3: the frame's size and shape; a reason, or the parsed header. */
export function modelParse(frame: Uint8Array, maxFrameSize: number): { reason: string } | ModelView {
  if (frame.length < MIN_FRAME || frame.length > maxFrameSize) return { reason: 'E_FRAME_SIZE' };
  if (frame[0] !== 1) return { reason: 'E_VERSION' };
  const mode = frame[1]!;
  if (mode < 1 || mode > 5) return { reason: 'E_FRAME_SHAPE' };
  const senderLength = frame[2]!;
  const sender = validId(frame, 3, senderLength);
  if (sender === undefined) return { reason: 'E_FRAME_SHAPE' };
  const recipientLength = frame[3 + senderLength]!;
  const recipient = validId(frame, 4 + senderLength, recipientLength);
  if (recipient === undefined) return { reason: 'E_FRAME_SHAPE' };
  const sessionAt = 4 + senderLength + recipientLength;
  const counterAt = sessionAt + SESSION_ID;
  const timestampAt = counterAt + 8;
  const lengthAt = timestampAt + 8 + (mode === 2 ? SEALED_HANDSHAKE : 0);
  const headerLength = lengthAt + 4;
  const macLength = mode <= 3 ? MAC : 0;
  if (headerLength + TAG + macLength > frame.length) return { reason: 'E_FRAME_SHAPE' };
  const high = u32(frame, timestampAt + 4);
  if (high > 0x1f_ffff) return { reason: 'E_FRAME_SHAPE' };
  const timestamp = high * 2 ** 32 + u32(frame, timestampAt);
  const bodyLength = u32(frame, lengthAt);
  if (bodyLength < TAG || headerLength + bodyLength + macLength !== frame.length) return { reason: 'E_FRAME_SHAPE' };
  const counterIsZero = frame.subarray(counterAt, counterAt + 8).every((b) => b === 0);
  if (macLength === 0 && !counterIsZero) return { reason: 'E_FRAME_SHAPE' };
  return {
    mode,
    sender,
    recipient,
    sessionIdHex: Buffer.from(frame.subarray(sessionAt, counterAt)).toString('hex'),
    timestamp,
    sealedHandshakeHex: mode === 2 ? Buffer.from(frame.subarray(timestampAt + 8, lengthAt)).toString('hex') : undefined,
  };
}

/** The named byte ranges of a well-formed data frame (to flip every bit of every field). */
export function layoutOf(frame: Uint8Array): Layout {
  const s = frame[2]!;
  const r = frame[3 + s]!;
  const sessionAt = 4 + s + r;
  const counterAt = sessionAt + SESSION_ID;
  const timestampAt = counterAt + 8;
  const handshakeEnd = timestampAt + 8 + (frame[1] === 2 ? SEALED_HANDSHAKE : 0);
  const headerLength = handshakeEnd + 4;
  const bodyLength = u32(frame, handshakeEnd);
  const fields = [
    { name: 'version', start: 0, end: 1 },
    { name: 'mode', start: 1, end: 2 },
    { name: 'sender length', start: 2, end: 3 },
    { name: 'sender id', start: 3, end: 3 + s },
    { name: 'recipient length', start: 3 + s, end: 4 + s },
    { name: 'recipient id', start: 4 + s, end: sessionAt },
    { name: 'session id', start: sessionAt, end: counterAt },
    { name: 'counter', start: counterAt, end: timestampAt },
    { name: 'timestamp', start: timestampAt, end: timestampAt + 8 },
    ...(frame[1] === 2 ? [{ name: 'sealed handshake', start: timestampAt + 8, end: handshakeEnd }] : []),
    { name: 'ciphertext length', start: handshakeEnd, end: headerLength },
    { name: 'ciphertext', start: headerLength, end: headerLength + bodyLength },
    { name: 'mac', start: headerLength + bodyLength, end: frame.length },
  ];
  return { headerLength, bodyLength, fields };
}

export interface ReceiverModel {
  readonly kind: 'session-responder' | 'sealed-receiver';
  readonly self: string;
  readonly now: number;
  readonly skewMs: number;
  readonly staleAfterMs: number;
  readonly maxFrameSize: number;
  /** Ids with a root-signed directory entry the receiver holds. */
  readonly directory: ReadonlySet<string>;
  /** session-responder: `${sender}/${session id hex}` of the sessions this instance holds. */
  readonly sessions: ReadonlySet<string>;
  /** sealed-receiver: `${sender}/${session id hex}` → the epoch's handshake (hex), once it was accepted here. */
  readonly epochs: ReadonlyMap<string, string>;
  /**
   * Authentic frames (hex) this receiver has already accepted, with what the replay window
   * says now: `duplicate` (inside the window) or `too-old`. Any other bytes that reach the
   * mac check fail it: nobody without the keys can make a mac verify.
   */
  readonly accepted: ReadonlyMap<string, 'duplicate' | 'too-old'>;
}

/** What the receiver must answer; `duplicate` is E_REPLAY of an authentic frame inside the window. */
export function expectedReason(frame: Uint8Array, m: ReceiverModel): string {
  const view = modelParse(frame, m.maxFrameSize);
  if ('reason' in view) return view.reason;
  const wantMode = m.kind === 'session-responder' ? 1 : 2;
  const key = `${view.sender}/${view.sessionIdHex}`;
  if (view.mode !== wantMode) return 'E_MODE';
  if (view.timestamp < m.now - m.staleAfterMs) return 'E_STALE';
  if (view.timestamp > m.now + m.skewMs) return 'E_FUTURE';
  if (view.recipient !== m.self) return 'E_WRONG_RECIPIENT';
  switch (m.kind) {
    case 'session-responder':
      // A session is found by (sender, session id): an unknown pair is an unknown session
      // whoever the sender claims to be; the directory was consulted at the handshake.
      if (!m.sessions.has(key)) return 'E_UNKNOWN_SESSION';
      break;
    case 'sealed-receiver':
      if (!m.directory.has(view.sender)) return 'E_UNKNOWN_SENDER';
      if (m.epochs.get(key) !== view.sealedHandshakeHex) return 'E_HANDSHAKE';
      break;
    default: {
      const never: never = m.kind;
      throw new Error(`unknown receiver ${String(never)}`);
    }
  }
  const verdict = m.accepted.get(Buffer.from(frame).toString('hex'));
  if (verdict === undefined) return 'E_MAC';
  return verdict === 'duplicate' ? 'duplicate' : 'E_REPLAY';
}
