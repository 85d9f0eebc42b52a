import type { CryptoProvider, FrameKeys } from '@bulwark/crypto';
import { textEncoder } from './bytes.js';
import { EnvelopeError, reject, type Rejection } from './errors.js';
import type { HeaderTemplate } from './frame.js';
import { MAC_LENGTH, TAG_LENGTH, type FrameView } from './frame.js';
import { MAX_NONCE } from './noise/cipher-state.js';
import type { Opened, OpenResult } from './options.js';
import type { ReplayWindow } from './replay-window.js';

/**
 * One direction's frame keys: ChaCha20-Poly1305 key and HMAC-SHA256 key, never the same bytes,
 * prepared by the provider's frame cipher (which may precompute per key).
 */
export type TrafficKeys = FrameKeys;

/**
 * k_enc || k_mac = HKDF-SHA256(ikm = secret, salt, info = label || context), 64 bytes (RFC 5869).
 * The secret is a Noise Split() output (session, sealed) or a channel epoch key.
 */
export function deriveTrafficKeys(provider: CryptoProvider, secret: Uint8Array, salt: Uint8Array, info: Uint8Array): TrafficKeys {
  const okm = provider.hkdfSha256(secret, salt, info, 64);
  return provider.frames.keys(okm.subarray(0, 32), okm.subarray(32, 64));
}

export function label(text: string): Uint8Array {
  return textEncoder.encode(`bulwark/envelope/v1 ${text}`);
}

/** Highest counter a sender may use: Noise reserves 2^64-1 (§5.1), so counters stop one below. */
export const LAST_COUNTER = MAX_NONCE - 1n;

/** A per-direction counter that only goes up and refuses to pass its limit (no wrap, ever). */
export class SendCounter {
  #next: bigint;

  constructor(
    start = 0n,
    private readonly last: bigint = LAST_COUNTER,
  ) {
    this.#next = start;
  }

  /** True once every counter up to the limit is used: the session, epoch or stream must be renewed. */
  get exhausted(): boolean {
    return this.#next > this.last;
  }

  get used(): bigint {
    return this.#next;
  }

  take(): bigint {
    if (this.#next > this.last) {
      throw new EnvelopeError('E_COUNTER_EXHAUSTED', `envelope: send counter reached its limit ${this.last}; rekey before sending more`, {});
    }
    return this.#next++;
  }
}

/**
 * One data frame: ciphertext = ChaCha20-Poly1305(k_enc, nonce(counter), ad = header, plaintext);
 * mac = HMAC-SHA256(k_mac, header || ciphertext || counter as 8 bytes LE), by the provider's
 * frame cipher into the frame's single buffer.
 */
export function sealData(
  provider: CryptoProvider,
  template: HeaderTemplate,
  keys: TrafficKeys,
  counter: bigint,
  timestamp: number,
  plaintext: Uint8Array,
  maxFrameSize: number,
): Uint8Array {
  const bodyLength = plaintext.length + TAG_LENGTH;
  const frameLength = template.length + bodyLength + MAC_LENGTH;
  if (frameLength > maxFrameSize) {
    throw new EnvelopeError('E_FRAME_SIZE', `envelope: a ${plaintext.length}-byte plaintext makes a ${frameLength}-byte frame, over the ${maxFrameSize}-byte maximum`, {
      plaintextLength: plaintext.length,
      maxFrameSize,
    });
  }
  const frame = template.allocate(counter, timestamp, bodyLength);
  provider.frames.seal(keys, frame, template.length, template.counterOffset, plaintext);
  return frame;
}

/** Skew check: the second check, after shape and size. */
export function checkTimestamp(view: FrameView, now: number, limits: { readonly skewMs: number; readonly staleAfterMs: number }): Rejection | undefined {
  if (view.timestamp < now - limits.staleAfterMs) return reject('E_STALE', `timestamp ${view.timestamp} is more than ${limits.staleAfterMs} ms before now (${now})`, at(view));
  if (view.timestamp > now + limits.skewMs) return reject('E_FUTURE', `timestamp ${view.timestamp} is more than ${limits.skewMs} ms after now (${now})`, at(view));
  return undefined;
}

/** Where a rejected frame claims to come from (built only on the rejection path). */
export function at(view: FrameView): { sender: string; sessionId: string } {
  return { sender: view.sender, sessionId: view.sessionIdHex };
}

/**
 * The cryptographic checks of a data frame, in order: mac (constant-time compare), AEAD,
 * then the replay window (only an authentic frame may move the window).
 */
export function openData(provider: CryptoProvider, view: FrameView, keys: TrafficKeys, window: ReplayWindow, deferCommit = false): Uint8Array | Rejection {
  const plaintext = provider.frames.open(keys, view.frame, view.header.length, view.counterOffset);
  if (plaintext === 'E_MAC') return reject('E_MAC', 'frame mac does not verify', at(view));
  if (plaintext === 'E_AEAD') return reject('E_AEAD', 'ciphertext tag does not verify', at(view));
  const verdict = deferCommit ? window.check(view.counter) : window.observe(view.counter);
  switch (verdict) {
    case 'fresh':
      return plaintext;
    case 'duplicate':
      return reject('E_REPLAY', `counter ${view.counter} already accepted`, at(view), true);
    case 'too-old':
      return reject('E_REPLAY', `counter ${view.counter} is older than the replay window`, at(view));
    default: {
      const unreachable: never = verdict;
      throw new Error(`unhandled replay verdict ${String(unreachable)}`);
    }
  }
}

const COMMITTED = (): void => undefined;

/**
 * The accepted result; with deferCommit its `commit` records the counter in `window`. A
 * session's result also names the session (a responder seals the reply in it).
 */
export function opened(view: FrameView, plaintext: Uint8Array, window: ReplayWindow | undefined): OpenResult;
export function opened<S>(view: FrameView, plaintext: Uint8Array, window: ReplayWindow | undefined, session: S): Opened & { readonly session: S };
export function opened<S>(view: FrameView, plaintext: Uint8Array, window: ReplayWindow | undefined, session?: S): Opened & { readonly session: S | undefined } {
  const counter = view.counter;
  // One object shape for every mode (session is undefined outside sessions).
  return {
    ok: true,
    mode: view.mode,
    plaintext,
    sender: view.sender,
    recipient: view.recipient,
    sessionId: view.sessionIdHex,
    counter,
    timestamp: view.timestamp,
    commit: window === undefined ? COMMITTED : () => window.record(counter),
    session,
  };
}
