import type { CryptoProvider } from '@bulwark/crypto';
import { concatBytes, lengthPrefixed, readSafeU64, readU64, textEncoder, writeU64 } from './bytes.js';
import type { Directory } from './directory.js';
import { EnvelopeError, reject, type Rejection } from './errors.js';
import { HeaderTemplate, isRejection, Mode, parseFrame, SESSION_ID_LENGTH } from './frame.js';
import { decodeId, encodeId } from './ids.js';
import { resolveOptions, type EnvelopeOptions, type OpenOptions, type OpenResult, type ResolvedOptions } from './options.js';
import { ReplayWindow } from './replay-window.js';
import type { SealedReceiver, SealedSender } from './sealed.js';
import { at, checkTimestamp, deriveTrafficKeys, label, openData, opened, sealData, SendCounter, type TrafficKeys } from './traffic.js';

/**
 * Channel mode (DESIGN §3): one publisher to many subscribers under a symmetric epoch key.
 * The key-manager creates each epoch key and wraps it to every authorized subscriber as a
 * sealed frame; revoking a subscriber means a new epoch that the revoked one never receives.
 *
 * A channel frame's session id is epoch (u64 LE, 8 bytes) || stream id (8 random bytes): each
 * publisher process picks a fresh stream per epoch, and its frame keys are
 *   k_enc || k_mac = HKDF(ikm = epoch key, salt = session id, info = label || sender || channel)
 * so two publishers (or two instances of one) never share a key and counter space.
 * Holding the epoch key is what authenticates a publisher: any member could write as any
 * sender id, so a channel carries what every member may see and say (the SOC stream).
 */
const KEYS_INFO = label('channel keys');
const EPOCH_KEY_TAG = lengthPrefixed(textEncoder.encode('bulwark/channel-epoch-key/v1'));
const KEY_LENGTH = 32;
const STREAM_ID_LENGTH = 8;
export const DEFAULT_STREAM_MAX_MESSAGES = 1_000_000;

export interface ChannelEpochKey {
  readonly channelId: string;
  /** Increases by one at every rotation or revocation. */
  readonly epoch: number;
  readonly key: Uint8Array;
}

export function createChannelEpochKey(provider: CryptoProvider, channelId: string, epoch: number): ChannelEpochKey {
  encodeId(channelId, 'channel id');
  checkEpoch(epoch);
  return { channelId, epoch, key: provider.randomBytes(KEY_LENGTH) };
}

/** tag (u8 len + "bulwark/channel-epoch-key/v1") | channel id (u8 len + ASCII) | epoch u64 LE | key (32). */
export function encodeChannelEpochKey(epochKey: ChannelEpochKey): Uint8Array {
  checkEpoch(epochKey.epoch);
  if (epochKey.key.length !== KEY_LENGTH) throw new EnvelopeError('E_EPOCH_KEY', 'envelope: channel epoch key is not 32 bytes', { channelId: epochKey.channelId });
  const epoch = new Uint8Array(8);
  writeU64(epoch, 0, BigInt(epochKey.epoch));
  return concatBytes([EPOCH_KEY_TAG, lengthPrefixed(encodeId(epochKey.channelId, 'channel id')), epoch, epochKey.key]);
}

export function decodeChannelEpochKey(bytes: Uint8Array): ChannelEpochKey | undefined {
  if (bytes.length < EPOCH_KEY_TAG.length + 2 || !EPOCH_KEY_TAG.every((b, i) => bytes[i] === b)) return undefined;
  const idLength = bytes[EPOCH_KEY_TAG.length]!;
  const channelId = decodeId(bytes, EPOCH_KEY_TAG.length + 1, idLength);
  const at = EPOCH_KEY_TAG.length + 1 + idLength;
  if (channelId === undefined || bytes.length !== at + 8 + KEY_LENGTH) return undefined;
  const epoch = readU64(bytes, at);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { channelId, epoch: Number(epoch), key: bytes.slice(at + 8) };
}

/** The key-manager's side: the epoch key as a sealed frame to one subscriber. */
export function wrapChannelEpochKey(sealer: SealedSender, epochKey: ChannelEpochKey): Uint8Array {
  return sealer.seal(encodeChannelEpochKey(epochKey));
}

/**
 * The subscriber's side: open a wrapped epoch key with its sealed receiver, accepting it only
 * from the issuer it trusts for channel keys (the key-manager's principal id).
 */
export function unwrapChannelEpochKey(
  receiver: SealedReceiver,
  frame: Uint8Array,
  issuerId: string,
): { readonly ok: true; readonly epochKey: ChannelEpochKey } | Rejection {
  const result = receiver.open(frame);
  if (!result.ok) return result;
  const where = { sender: result.sender, sessionId: result.sessionId };
  if (result.sender !== issuerId) return reject('E_UNKNOWN_SENDER', `channel epoch key from '${result.sender}', only '${issuerId}' issues them`, where);
  const epochKey = decodeChannelEpochKey(result.plaintext);
  if (epochKey === undefined) return reject('E_FRAME_SHAPE', 'sealed payload is not a channel epoch key', where);
  return { ok: true, epochKey };
}

export interface ChannelSenderOptions extends Omit<EnvelopeOptions, 'skewMs' | 'staleAfterMs'> {
  /** The publisher's principal id. */
  readonly senderId: string;
  readonly epochKey: ChannelEpochKey;
  /** A fresh stream (new id, counter back to 0) after this many frames. Default 1 000 000. */
  readonly streamMaxMessages?: number;
}

interface Stream {
  readonly template: HeaderTemplate;
  readonly keys: TrafficKeys;
  readonly counter: SendCounter;
}

export class ChannelSender {
  readonly #options: ResolvedOptions;
  readonly #senderId: string;
  readonly #maxMessages: bigint;
  #epochKey: ChannelEpochKey;
  #stream: Stream | undefined;

  constructor(options: ChannelSenderOptions) {
    this.#options = resolveOptions(options);
    encodeId(options.senderId, 'sender id');
    this.#senderId = options.senderId;
    this.#maxMessages = BigInt(options.streamMaxMessages ?? DEFAULT_STREAM_MAX_MESSAGES);
    this.#epochKey = checkedEpochKey(options.epochKey);
  }

  get epoch(): number {
    return this.#epochKey.epoch;
  }

  /** Move to a newer epoch (after a revocation): every later frame uses it. */
  rotate(epochKey: ChannelEpochKey): void {
    checkedEpochKey(epochKey);
    if (epochKey.channelId !== this.#epochKey.channelId || epochKey.epoch <= this.#epochKey.epoch) {
      throw new EnvelopeError('E_EPOCH_KEY', `envelope: channel '${epochKey.channelId}' epoch ${epochKey.epoch} does not follow '${this.#epochKey.channelId}' epoch ${this.#epochKey.epoch}`, {});
    }
    this.#epochKey = epochKey;
    this.#stream = undefined;
  }

  seal(plaintext: Uint8Array): Uint8Array {
    const { provider, clock, maxFrameSize } = this.#options;
    if (this.#stream === undefined || this.#stream.counter.used >= this.#maxMessages) this.#stream = this.#newStream(provider);
    return sealData(provider, this.#stream.template, this.#stream.keys, this.#stream.counter.take(), clock(), plaintext, maxFrameSize);
  }

  #newStream(provider: CryptoProvider): Stream {
    const sessionId = new Uint8Array(SESSION_ID_LENGTH);
    writeU64(sessionId, 0, BigInt(this.#epochKey.epoch));
    sessionId.set(provider.randomBytes(STREAM_ID_LENGTH), 8);
    const { channelId, key } = this.#epochKey;
    return {
      template: new HeaderTemplate({ mode: Mode.channel, sender: this.#senderId, recipient: channelId, sessionId }),
      keys: channelKeys(provider, key, sessionId, this.#senderId, channelId),
      counter: new SendCounter(),
    };
  }
}

export interface ChannelReceiverOptions extends EnvelopeOptions {
  readonly channelId: string;
  /** Publishers must hold a valid directory entry (a revoked publisher is refused at once). */
  readonly directory: Directory;
  /** How long frames of the previous epoch stay acceptable after a newer epoch is installed. Default: skewMs. */
  readonly graceMs?: number;
  /** Publisher streams whose keys and replay windows are kept. Default 4096. */
  readonly maxStreams?: number;
  /**
   * Keep every installed epoch, in any order (a reader replaying a stream from its start, such
   * as BULWARK_LEDGER's full channel, reads old messages under the epochs they were sealed in).
   * Default false: the current epoch, and the previous one for `graceMs`.
   */
  readonly keepHistory?: boolean;
}

interface HeldEpoch {
  readonly key: ChannelEpochKey;
  /** Accept this epoch's frames until then (Infinity for the current epoch). */
  retireAt: number;
}

interface ReceiveStream {
  readonly keys: TrafficKeys;
  readonly window: ReplayWindow;
}

export class ChannelReceiver {
  readonly #options: ResolvedOptions;
  readonly #channelId: string;
  readonly #directory: Directory;
  readonly #graceMs: number;
  readonly #maxStreams: number;
  readonly #keepHistory: boolean;
  readonly #epochs = new Map<number, HeldEpoch>();
  readonly #streams = new Map<string, ReceiveStream>();
  #current = -1;

  constructor(options: ChannelReceiverOptions) {
    this.#options = resolveOptions(options);
    encodeId(options.channelId, 'channel id');
    this.#channelId = options.channelId;
    this.#directory = options.directory;
    this.#graceMs = options.graceMs ?? this.#options.skewMs;
    this.#maxStreams = options.maxStreams ?? 4096;
    this.#keepHistory = options.keepHistory === true;
  }

  get currentEpoch(): number | undefined {
    return this.#current < 0 ? undefined : this.#current;
  }

  /**
   * Install an epoch key (unwrapped from the key-manager). A newer epoch becomes current and
   * starts the previous one's grace period; epochs older than that are forgotten at once.
   */
  install(epochKey: ChannelEpochKey): void {
    checkedEpochKey(epochKey);
    if (epochKey.channelId !== this.#channelId) {
      throw new EnvelopeError('E_EPOCH_KEY', `envelope: epoch key for channel '${epochKey.channelId}' given to a receiver of '${this.#channelId}'`, {});
    }
    if (this.#keepHistory) {
      if (!this.#epochs.has(epochKey.epoch)) this.#epochs.set(epochKey.epoch, { key: epochKey, retireAt: Infinity });
      this.#current = Math.max(this.#current, epochKey.epoch);
      return;
    }
    if (epochKey.epoch <= this.#current) return;
    const now = this.#options.clock();
    for (const [epoch, held] of this.#epochs) {
      if (epoch === this.#current) held.retireAt = now + this.#graceMs;
      else this.#epochs.delete(epoch);
    }
    for (const key of this.#streams.keys()) {
      if (!this.#epochs.has(streamEpoch(key))) this.#streams.delete(key);
    }
    this.#epochs.set(epochKey.epoch, { key: epochKey, retireAt: Infinity });
    this.#current = epochKey.epoch;
  }

  open(frame: Uint8Array, openOptions: OpenOptions = {}): OpenResult {
    const { provider, clock, maxFrameSize } = this.#options;
    const view = parseFrame(frame, maxFrameSize);
    if (isRejection(view)) return view;
    if (view.mode !== Mode.channel) return reject('E_MODE', `mode ${view.mode} frame given to a channel receiver`, at(view));
    const now = clock();
    const skew = checkTimestamp(view, now, this.#options);
    if (skew) return skew;
    if (view.recipient !== this.#channelId) return reject('E_WRONG_RECIPIENT', `frame for channel '${view.recipient}' reached '${this.#channelId}'`, at(view));
    if (this.#directory.lookup(view.sender) === undefined) return reject('E_UNKNOWN_SENDER', `no valid directory entry for publisher '${view.sender}'`, at(view));
    const epochNumber = readSafeU64(view.sessionId, 0);
    const held = epochNumber === undefined ? undefined : this.#epochs.get(epochNumber);
    if (held === undefined || now >= held.retireAt) return reject('E_UNKNOWN_EPOCH', `no key for channel '${this.#channelId}' epoch ${epochNumber ?? 'beyond 2^53'}`, at(view));

    const key = `${view.sender}/${view.sessionIdHex}`;
    let stream = this.#streams.get(key);
    const isNew = stream === undefined;
    stream ??= { keys: channelKeys(provider, held.key.key, view.sessionId, view.sender, this.#channelId), window: new ReplayWindow() };
    const defer = openOptions.deferCommit === true;
    const plaintext = openData(provider, view, stream.keys, stream.window, defer);
    if (!(plaintext instanceof Uint8Array)) return plaintext;
    if (isNew) this.#remember(key, stream);
    return opened(view, plaintext, defer ? stream.window : undefined);
  }

  #remember(key: string, stream: ReceiveStream): void {
    while (this.#streams.size >= this.#maxStreams) {
      const oldest = this.#streams.keys().next().value;
      if (oldest === undefined) break;
      this.#streams.delete(oldest);
    }
    this.#streams.set(key, stream);
  }
}

function channelKeys(provider: CryptoProvider, epochKey: Uint8Array, sessionId: Uint8Array, senderId: string, channelId: string): TrafficKeys {
  const info = concatBytes([KEYS_INFO, lengthPrefixed(encodeId(senderId, 'sender id')), lengthPrefixed(encodeId(channelId, 'channel id'))]);
  return deriveTrafficKeys(provider, epochKey, sessionId, info);
}

/** The epoch number from a stream key `<sender>/<session id hex>` (first 8 bytes, LE). */
function streamEpoch(key: string): number {
  const hex = key.slice(key.lastIndexOf('/') + 1, key.lastIndexOf('/') + 17);
  return Number(Buffer.from(hex, 'hex').readBigUInt64LE(0));
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new EnvelopeError('E_EPOCH_KEY', `envelope: channel epoch ${epoch} must be a non-negative safe integer`, { epoch });
}

function checkedEpochKey(epochKey: ChannelEpochKey): ChannelEpochKey {
  encodeChannelEpochKey(epochKey);
  return epochKey;
}

/**
 * A stream moving from sealed mode to a channel (BULWARK_LEDGER's full batches: sealed to one
 * principal until the channel's first epoch, on the channel after): each frame is opened by the
 * receiver of its mode, with that mode's checks; any other mode is refused.
 */
export class SealedOrChannelReceiver {
  constructor(
    readonly sealed: SealedReceiver,
    readonly channel: ChannelReceiver,
  ) {}

  open(frame: Uint8Array, openOptions: OpenOptions = {}): OpenResult {
    // Byte 1 is the mode (frame.ts); the channel receiver refuses every mode but its own.
    return frame[1] === Mode.sealed ? this.sealed.open(frame, openOptions) : this.channel.open(frame, openOptions);
  }
}

/** What opens a durable stream's frames (the bus consumers and the ledger reader take any of these). */
export type StreamReceiver = SealedReceiver | ChannelReceiver | SealedOrChannelReceiver;
