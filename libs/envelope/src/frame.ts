import { allocateUninitialized } from '@bulwark/crypto';
import { decodeId, encodeId } from './ids.js';
import { InternTable } from './intern.js';
import { reject, type Rejection } from './errors.js';
import { readSafeU64, readU32, readU64, toHex, writeSafeU64, writeU32, writeU64 } from './bytes.js';

/**
 * The SecureChannel v1 frame (README "Frame layout", proto/bulwark/envelope/v1/frame.proto).
 * All integers little-endian. The header is every byte before the ciphertext; it is the
 * AEAD associated data and the first input of the MAC.
 *
 *   version u8 | mode u8 | sender id (u8 len + ASCII) | recipient or channel id (u8 len + ASCII)
 *   | session id (16) | counter u64 | timestamp ms u64 | [sealed: Noise_K message e || tag (48)]
 *   | ciphertext length u32 | ciphertext (plaintext + 16-byte Poly1305 tag) | mac (32, data modes)
 */
export const FRAME_VERSION = 1;

export const Mode = {
  /** Request/reply data inside a Noise_IK session. */
  session: 1,
  /** One-way to a service through a durable stream; Noise_K keys from the header's ephemeral. */
  sealed: 2,
  /** One to many under a channel epoch key. */
  channel: 3,
  /** Noise_IK message 1 (initiator → responder); body is the Noise message, no mac. */
  handshakeInit: 4,
  /** Noise_IK message 2 (responder → initiator); body is the Noise message, no mac. */
  handshakeReply: 5,
} as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

export const SESSION_ID_LENGTH = 16;
export const SEALED_HANDSHAKE_LENGTH = 48;
export const TAG_LENGTH = 16;
export const MAC_LENGTH = 32;
/** NATS's default max_payload; a deployment may lower it, never raise it past what NATS carries. */
export const DEFAULT_MAX_FRAME_SIZE = 1024 * 1024;
/** version, mode, two 1-byte ids with their lengths, session id, counter, timestamp, length, tag. */
export const MIN_FRAME_SIZE = 2 + 2 + 2 + SESSION_ID_LENGTH + 8 + 8 + 4 + TAG_LENGTH;

export function isDataMode(mode: Mode): boolean {
  return mode === Mode.session || mode === Mode.sealed || mode === Mode.channel;
}

export interface HeaderFields {
  readonly mode: Mode;
  readonly sender: string;
  readonly recipient: string;
  readonly sessionId: Uint8Array;
  /** The Noise_K handshake message; present in sealed mode only. */
  readonly sealedHandshake?: Uint8Array;
}

/**
 * A header built once per session, epoch or stream: per frame only the counter, timestamp
 * and ciphertext length change, written in place into the frame's single buffer.
 */
export class HeaderTemplate {
  readonly bytes: Uint8Array;
  readonly counterOffset: number;
  readonly timestampOffset: number;
  readonly lengthOffset: number;
  readonly macLength: number;

  constructor(fields: HeaderFields) {
    const sender = encodeId(fields.sender, 'sender id');
    const recipient = encodeId(fields.recipient, 'recipient id');
    if (fields.sessionId.length !== SESSION_ID_LENGTH) throw new RangeError(`session id must be ${SESSION_ID_LENGTH} bytes`);
    const sealed = fields.mode === Mode.sealed;
    if (sealed !== (fields.sealedHandshake !== undefined) || (sealed && fields.sealedHandshake!.length !== SEALED_HANDSHAKE_LENGTH)) {
      throw new RangeError(`a ${SEALED_HANDSHAKE_LENGTH}-byte Noise_K message belongs in sealed frames and only there`);
    }
    const idsEnd = 2 + 1 + sender.length + 1 + recipient.length;
    this.counterOffset = idsEnd + SESSION_ID_LENGTH;
    this.timestampOffset = this.counterOffset + 8;
    this.lengthOffset = this.timestampOffset + 8 + (sealed ? SEALED_HANDSHAKE_LENGTH : 0);
    this.macLength = isDataMode(fields.mode) ? MAC_LENGTH : 0;
    const bytes = new Uint8Array(this.lengthOffset + 4);
    bytes[0] = FRAME_VERSION;
    bytes[1] = fields.mode;
    bytes[2] = sender.length;
    bytes.set(sender, 3);
    bytes[3 + sender.length] = recipient.length;
    bytes.set(recipient, 4 + sender.length);
    bytes.set(fields.sessionId, idsEnd);
    if (sealed) bytes.set(fields.sealedHandshake!, this.timestampOffset + 8);
    this.bytes = bytes;
  }

  get length(): number {
    return this.bytes.length;
  }

  /**
   * A new frame buffer with the header filled in. It is not zero-filled: the caller writes
   * every byte after the header (the frame cipher, or a handshake message of exactly bodyLength).
   */
  allocate(counter: bigint, timestamp: number, bodyLength: number): Uint8Array {
    const frame = allocateUninitialized(this.bytes.length + bodyLength + this.macLength);
    frame.set(this.bytes);
    writeU64(frame, this.counterOffset, counter);
    writeSafeU64(frame, this.timestampOffset, timestamp);
    writeU32(frame, this.lengthOffset, bodyLength);
    return frame;
  }
}

/** A parsed frame: views into the received buffer, nothing copied, nothing yet authenticated. */
export interface FrameView {
  readonly mode: Mode;
  readonly sender: string;
  readonly recipient: string;
  readonly sessionId: Uint8Array;
  readonly sessionIdHex: string;
  readonly counter: bigint;
  readonly timestamp: number;
  readonly sealedHandshake: Uint8Array | undefined;
  /** The whole frame, exactly: header || body || mac. */
  readonly frame: Uint8Array;
  /** Every byte before the ciphertext. */
  readonly header: Uint8Array;
  /** Where the counter's 8 bytes stand in the header (the nonce and the MAC's last input). */
  readonly counterOffset: number;
  /** Ciphertext including the Poly1305 tag (for handshake modes: the Noise message). */
  readonly body: Uint8Array;
  /** Empty for handshake modes. */
  readonly mac: Uint8Array;
}

/** Ids and session ids as strings, built once per distinct bytes (intern.ts); INVALID marks bytes that are no id. */
const headerIds = new InternTable();
const sessionIds = new InternTable();
const INVALID = '';
const idAt = (bytes: Uint8Array, start: number, length: number): string => decodeId(bytes, start, length) ?? INVALID;
const hexAt = (bytes: Uint8Array, start: number, length: number): string => toHex(bytes.subarray(start, start + length));

/**
 * Parse and check the shape of a frame (the receiver's first, cheapest check). Every length is
 * explicit and the sum must be the frame's exact size: no trailing bytes, no truncation.
 */
export function parseFrame(frame: Uint8Array, maxFrameSize: number): FrameView | Rejection {
  if (frame.length < MIN_FRAME_SIZE) return reject('E_FRAME_SIZE', `frame of ${frame.length} bytes is below the ${MIN_FRAME_SIZE}-byte minimum`);
  if (frame.length > maxFrameSize) return reject('E_FRAME_SIZE', `frame of ${frame.length} bytes exceeds the ${maxFrameSize}-byte maximum`);
  if (frame[0] !== FRAME_VERSION) return reject('E_VERSION', `frame version ${frame[0]} is not ${FRAME_VERSION}`);
  const mode = frame[1]!;
  if (mode < Mode.session || mode > Mode.handshakeReply) return reject('E_FRAME_SHAPE', `unknown mode ${mode}`);

  const senderLength = frame[2]!;
  const sender = headerIds.get(frame, 3, senderLength, idAt);
  if (sender === INVALID) return reject('E_FRAME_SHAPE', 'sender id has a bad length or character');
  const recipientLengthAt = 3 + senderLength;
  const recipientLength = frame[recipientLengthAt]!;
  const recipient = headerIds.get(frame, recipientLengthAt + 1, recipientLength, idAt);
  if (recipient === INVALID) return reject('E_FRAME_SHAPE', 'recipient id has a bad length or character', { sender });
  const sessionAt = recipientLengthAt + 1 + recipientLength;
  const counterOffset = sessionAt + SESSION_ID_LENGTH;
  const timestampOffset = counterOffset + 8;
  const lengthOffset = timestampOffset + 8 + (mode === Mode.sealed ? SEALED_HANDSHAKE_LENGTH : 0);
  const headerLength = lengthOffset + 4;
  const macLength = isDataMode(mode as Mode) ? MAC_LENGTH : 0;
  if (headerLength + TAG_LENGTH + macLength > frame.length) return reject('E_FRAME_SHAPE', 'frame ends inside its header', { sender });

  const sessionId = frame.subarray(sessionAt, counterOffset);
  const sessionIdHex = sessionIds.get(frame, sessionAt, SESSION_ID_LENGTH, hexAt);
  const timestamp = readSafeU64(frame, timestampOffset);
  if (timestamp === undefined) return reject('E_FRAME_SHAPE', 'timestamp beyond 2^53 ms', { sender, sessionId: sessionIdHex });
  const bodyLength = readU32(frame, lengthOffset);
  if (bodyLength < TAG_LENGTH || headerLength + bodyLength + macLength !== frame.length) {
    return reject('E_FRAME_SHAPE', `ciphertext length ${bodyLength} does not match a frame of ${frame.length} bytes`, { sender, sessionId: sessionIdHex });
  }
  const counter = readU64(frame, counterOffset);
  if (macLength === 0 && counter !== 0n) return reject('E_FRAME_SHAPE', `handshake frame with counter ${counter}, not 0`, { sender, sessionId: sessionIdHex });
  const bodyEnd = headerLength + bodyLength;
  return {
    mode: mode as Mode,
    sender,
    recipient,
    sessionId,
    sessionIdHex,
    counter,
    timestamp,
    sealedHandshake: mode === Mode.sealed ? frame.subarray(timestampOffset + 8, lengthOffset) : undefined,
    frame,
    header: frame.subarray(0, headerLength),
    counterOffset,
    body: frame.subarray(headerLength, bodyEnd),
    mac: frame.subarray(bodyEnd),
  };
}

export function isRejection(value: FrameView | Rejection): value is Rejection {
  return 'ok' in value;
}

/** A frame's header as parsed, before any check beyond its shape: for routing and logs only. */
export interface FrameSummary {
  readonly mode: Mode;
  readonly sender: string;
  readonly recipient: string;
  readonly sessionId: string;
  readonly counter: bigint;
  readonly timestamp: number;
}

/**
 * Read a frame's header without authenticating anything, e.g. to send a handshake init to
 * `SessionResponder.accept` and data to `open`. Never act on these fields otherwise.
 */
export function inspectFrame(frame: Uint8Array, maxFrameSize = DEFAULT_MAX_FRAME_SIZE): FrameSummary | Rejection {
  const view = parseFrame(frame, maxFrameSize);
  if (isRejection(view)) return view;
  return { mode: view.mode, sender: view.sender, recipient: view.recipient, sessionId: view.sessionIdHex, counter: view.counter, timestamp: view.timestamp };
}
