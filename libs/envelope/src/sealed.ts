import type { CryptoProvider } from '@bulwark/crypto';
import { concatBytes, equalPublic, lengthPrefixed } from './bytes.js';
import type { Directory, DirectoryEntry } from './directory.js';
import { EnvelopeError, reject } from './errors.js';
import { HeaderTemplate, isRejection, Mode, parseFrame, SEALED_HANDSHAKE_LENGTH, SESSION_ID_LENGTH } from './frame.js';
import { encodeId } from './ids.js';
import { HandshakeState } from './noise/handshake-state.js';
import { resolveOptions, type EnvelopeOptions, type LocalIdentity, type OpenOptions, type OpenResult, type ResolvedOptions } from './options.js';
import { ReplayWindow } from './replay-window.js';
import { at, checkTimestamp, deriveTrafficKeys, label, openData, opened, sealData, SendCounter, type TrafficKeys } from './traffic.js';

/**
 * Sealed mode (DESIGN §3): one sender to one service through a durable stream, with no
 * round trip. Per epoch the sender runs Noise_K_25519_ChaChaPoly_SHA256 (both static keys
 * known from the directory) with a fresh ephemeral and an empty payload; the 48-byte
 * handshake message (e || tag) rides in every frame header of the epoch, so any instance of
 * the recipient service derives the same keys without shared state. The prologue binds
 * sender id, recipient id and session (epoch) id, so a frame re-addressed to another
 * recipient fails the handshake. Split()'s first key becomes k_enc || k_mac by HKDF.
 */
export const DEFAULT_EPOCH_MAX_MESSAGES = 1_000_000;
export const DEFAULT_EPOCH_MAX_AGE_MS = 10 * 60 * 1000;
const PROLOGUE_LABEL = label('sealed');
const KEYS_INFO = label('sealed keys');
const EMPTY = new Uint8Array(0);

function sealedPrologue(sender: Uint8Array, recipient: Uint8Array, sessionId: Uint8Array): Uint8Array {
  return concatBytes([PROLOGUE_LABEL, lengthPrefixed(sender), lengthPrefixed(recipient), sessionId]);
}

export interface SealedSenderOptions extends EnvelopeOptions {
  readonly self: LocalIdentity;
  readonly directory: Directory;
  /** The recipient service's principal id (`svc.audit-ledger`). */
  readonly recipientId: string;
  /** Start a new epoch (new ephemeral, new session id, counter back to 0) after this many frames. Default 1 000 000. */
  readonly epochMaxMessages?: number;
  /** ... or after this long. Default 10 minutes. */
  readonly epochMaxAgeMs?: number;
}

interface SendEpoch {
  readonly template: HeaderTemplate;
  readonly keys: TrafficKeys;
  readonly counter: SendCounter;
  readonly startedAt: number;
  readonly recipientKey: Uint8Array;
  /** Our own static key the epoch was sealed under: a rotation of our key starts a new epoch. */
  readonly senderKey: Uint8Array;
}

export class SealedSender {
  readonly #options: ResolvedOptions;
  readonly #self: LocalIdentity;
  readonly #directory: Directory;
  readonly #recipientId: string;
  readonly #maxMessages: bigint;
  readonly #maxAgeMs: number;
  #epoch: SendEpoch | undefined;

  constructor(options: SealedSenderOptions) {
    this.#options = resolveOptions(options);
    this.#self = options.self;
    this.#directory = options.directory;
    encodeId(options.self.id, 'self id');
    encodeId(options.recipientId, 'recipient id');
    this.#recipientId = options.recipientId;
    this.#maxMessages = BigInt(options.epochMaxMessages ?? DEFAULT_EPOCH_MAX_MESSAGES);
    this.#maxAgeMs = options.epochMaxAgeMs ?? DEFAULT_EPOCH_MAX_AGE_MS;
  }

  get recipientId(): string {
    return this.#recipientId;
  }

  seal(plaintext: Uint8Array): Uint8Array {
    const { provider, clock, maxFrameSize } = this.#options;
    const now = clock();
    // Looked up per frame so that a revocation or rotation of the recipient's key applies at once.
    const recipient = this.#directory.lookup(this.#recipientId);
    if (recipient === undefined) {
      throw new EnvelopeError('E_UNKNOWN_PEER', `envelope: no valid directory entry for sealed recipient '${this.#recipientId}'`, { recipientId: this.#recipientId });
    }
    let epoch = this.#epoch;
    if (
      epoch === undefined ||
      epoch.counter.used >= this.#maxMessages ||
      now - epoch.startedAt >= this.#maxAgeMs ||
      !equalPublic(epoch.recipientKey, recipient.x25519PublicKey) ||
      !equalPublic(epoch.senderKey, this.#self.x25519.publicKey)
    ) {
      epoch = this.#epoch = this.#startEpoch(provider, recipient, now);
    }
    return sealData(provider, epoch.template, epoch.keys, epoch.counter.take(), now, plaintext, maxFrameSize);
  }

  #startEpoch(provider: CryptoProvider, recipient: DirectoryEntry, now: number): SendEpoch {
    const sessionId = provider.randomBytes(SESSION_ID_LENGTH);
    const hs = new HandshakeState(provider, {
      pattern: 'K',
      initiator: true,
      prologue: sealedPrologue(encodeId(this.#self.id, 'self id'), encodeId(this.#recipientId, 'recipient id'), sessionId),
      s: this.#self.x25519,
      rs: recipient.x25519PublicKey,
    });
    const handshake = hs.writeMessage(EMPTY);
    const [toRecipient] = hs.split();
    return {
      template: new HeaderTemplate({ mode: Mode.sealed, sender: this.#self.id, recipient: this.#recipientId, sessionId, sealedHandshake: handshake }),
      keys: deriveTrafficKeys(provider, toRecipient.key!, hs.handshakeHash, KEYS_INFO),
      counter: new SendCounter(),
      startedAt: now,
      recipientKey: recipient.x25519PublicKey,
      senderKey: this.#self.x25519.publicKey,
    };
  }
}

export interface SealedReceiverOptions extends EnvelopeOptions {
  readonly self: LocalIdentity;
  readonly directory: Directory;
  /** Sender epochs whose keys and replay windows are kept; the oldest is dropped beyond this. Default 4096. */
  readonly maxEpochs?: number;
}

interface ReceiveEpoch {
  readonly handshake: Uint8Array;
  readonly senderKey: Uint8Array;
  readonly keys: TrafficKeys;
  readonly window: ReplayWindow;
}

/**
 * Opens sealed frames addressed to this principal. Keys of each sender epoch are derived on
 * its first authentic frame and cached with that epoch's replay window. The window lives in
 * this process only: after a restart, or on another instance, the skew window bounds replay,
 * and consumers dedupe by their own message ids (JetStream Nats-Msg-Id, event ids).
 */
export class SealedReceiver {
  readonly #options: ResolvedOptions;
  readonly #self: LocalIdentity;
  readonly #directory: Directory;
  readonly #maxEpochs: number;
  readonly #epochs = new Map<string, ReceiveEpoch>();

  constructor(options: SealedReceiverOptions) {
    this.#options = resolveOptions(options);
    this.#self = options.self;
    encodeId(options.self.id, 'self id');
    this.#directory = options.directory;
    this.#maxEpochs = options.maxEpochs ?? 4096;
  }

  open(frame: Uint8Array, openOptions: OpenOptions = {}): OpenResult {
    const { provider, clock, maxFrameSize } = this.#options;
    const view = parseFrame(frame, maxFrameSize);
    if (isRejection(view)) return view;
    if (view.mode !== Mode.sealed) return reject('E_MODE', `mode ${view.mode} frame given to a sealed receiver`, at(view));
    const skew = checkTimestamp(view, clock(), this.#options);
    if (skew) return skew;
    if (view.recipient !== this.#self.id) return reject('E_WRONG_RECIPIENT', `sealed frame for '${view.recipient}' reached '${this.#self.id}'`, at(view));
    const sender = this.#directory.lookup(view.sender);
    if (sender === undefined) return reject('E_UNKNOWN_SENDER', `no valid directory entry for '${view.sender}'`, at(view));

    const key = `${view.sender}/${view.sessionIdHex}`;
    // The sender's current key, then the one its own rotation replaced a moment ago (frames it
    // sealed before the switch, still in flight: Directory.superseded).
    const superseded = this.#directory.superseded?.(view.sender);
    const senderKeys = superseded === undefined ? [sender.x25519PublicKey] : [sender.x25519PublicKey, superseded.x25519PublicKey];
    let epoch = this.#epochs.get(key);
    let isNew = false;
    if (epoch === undefined || !equalPublic(epoch.handshake, view.sealedHandshake!) || !senderKeys.some((k) => equalPublic(epoch!.senderKey, k))) {
      if (view.sealedHandshake!.length !== SEALED_HANDSHAKE_LENGTH) return reject('E_HANDSHAKE', 'sealed handshake carries a payload', at(view));
      // Our current key, then the ones our own rotations replaced (LocalIdentity.previousX25519).
      const own = [this.#self.x25519, ...(this.#self.previousX25519 ?? [])];
      let found: { hs: HandshakeState; senderKey: Uint8Array } | undefined;
      search: for (const rs of senderKeys) {
        for (const s of own) {
          const attempt = new HandshakeState(provider, {
            pattern: 'K',
            initiator: false,
            prologue: sealedPrologue(encodeId(view.sender, 'sender id'), encodeId(view.recipient, 'recipient id'), view.sessionId),
            s,
            rs,
          });
          try {
            if (attempt.readMessage(view.sealedHandshake!).length !== 0) return reject('E_HANDSHAKE', 'sealed handshake carries a payload', at(view));
            found = { hs: attempt, senderKey: rs };
            break search;
          } catch {
            // Not this pair of keys: the next one, if any.
          }
        }
      }
      if (found === undefined) return reject('E_HANDSHAKE', `sealed handshake from '${view.sender}' does not authenticate`, at(view));
      const { hs } = found;
      const [fromSender] = hs.split();
      epoch = {
        handshake: view.sealedHandshake!.slice(),
        senderKey: found.senderKey,
        keys: deriveTrafficKeys(provider, fromSender.key!, hs.handshakeHash, KEYS_INFO),
        window: new ReplayWindow(),
      };
      isNew = true;
    }
    const defer = openOptions.deferCommit === true;
    const plaintext = openData(provider, view, epoch.keys, epoch.window, defer);
    if (!(plaintext instanceof Uint8Array)) return plaintext;
    // Only an epoch that produced an authentic frame takes a cache slot.
    if (isNew) this.#remember(key, epoch);
    return opened(view, plaintext, defer ? epoch.window : undefined);
  }

  #remember(key: string, epoch: ReceiveEpoch): void {
    this.#epochs.delete(key);
    while (this.#epochs.size >= this.#maxEpochs) {
      const oldest = this.#epochs.keys().next().value;
      if (oldest === undefined) break;
      this.#epochs.delete(oldest);
    }
    this.#epochs.set(key, epoch);
  }
}
