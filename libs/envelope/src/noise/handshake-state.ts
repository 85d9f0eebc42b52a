import type { CryptoProvider, X25519KeyPair } from '@bulwark/crypto';
import { concatBytes } from '../bytes.js';
import { EnvelopeError } from '../errors.js';
import type { CipherState } from './cipher-state.js';
import { PATTERNS, protocolName, type HandshakePattern, type PatternName, type Token } from './patterns.js';
import { SymmetricState } from './symmetric-state.js';

const DHLEN = 32;
const TAGLEN = 16;
/** Noise §3: every handshake and transport message is at most 65535 bytes. */
export const MAX_NOISE_MESSAGE = 65535;

export interface HandshakeInit {
  readonly pattern: PatternName;
  readonly initiator: boolean;
  readonly prologue: Uint8Array;
  /** Local static key pair. */
  readonly s?: X25519KeyPair;
  /** Local ephemeral key pair; generated from provider.randomBytes when absent (vectors inject it). */
  readonly e?: X25519KeyPair;
  /** Remote static public key known in advance. */
  readonly rs?: Uint8Array;
  /** Remote ephemeral public key known in advance (no pattern used here needs it). */
  readonly re?: Uint8Array;
}

/**
 * Noise §5.3 HandshakeState for the 25519_ChaChaPoly_SHA256 suite. Write and read the
 * pattern's messages in turn; once all are done, `split()` gives the transport CipherStates.
 * Any failure (bad tag, low-order point, wrong turn, wrong length) throws, and the state must
 * then be dropped.
 */
export class HandshakeState {
  readonly #provider: CryptoProvider;
  readonly #pattern: HandshakePattern;
  readonly #initiator: boolean;
  readonly #symmetric: SymmetricState;
  #s: X25519KeyPair | undefined;
  #e: X25519KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #next = 0;

  constructor(provider: CryptoProvider, init: HandshakeInit) {
    this.#provider = provider;
    this.#pattern = PATTERNS[init.pattern];
    this.#initiator = init.initiator;
    this.#s = init.s;
    this.#e = init.e;
    this.#rs = init.rs;
    this.#re = init.re;
    this.#symmetric = new SymmetricState(provider, protocolName(init.pattern));
    this.#symmetric.mixHash(init.prologue);
    // Pre-messages (§7.1): the initiator's public keys first, then the responder's.
    for (const token of this.#pattern.initiatorPre) this.#symmetric.mixHash(this.#preKey(token, this.#initiator));
    for (const token of this.#pattern.responderPre) this.#symmetric.mixHash(this.#preKey(token, !this.#initiator));
  }

  get isComplete(): boolean {
    return this.#next >= this.#pattern.messages.length;
  }

  get handshakeHash(): Uint8Array {
    return this.#symmetric.handshakeHash;
  }

  /** The peer's static public key, once known (pre-message or received `s`). */
  get remoteStatic(): Uint8Array | undefined {
    return this.#rs;
  }

  writeMessage(payload: Uint8Array): Uint8Array {
    const tokens = this.#turn(true);
    const parts: Uint8Array[] = [];
    for (const token of tokens) {
      switch (token) {
        case 'e': {
          this.#e ??= this.#generateEphemeral();
          parts.push(this.#e.publicKey);
          this.#symmetric.mixHash(this.#e.publicKey);
          break;
        }
        case 's':
          parts.push(this.#symmetric.encryptAndHash(this.#required(this.#s, 's').publicKey));
          break;
        default:
          this.#mixDh(token);
      }
    }
    parts.push(this.#symmetric.encryptAndHash(payload));
    const message = concatBytes(parts);
    if (message.length > MAX_NOISE_MESSAGE) throw this.#error(`message of ${message.length} bytes exceeds ${MAX_NOISE_MESSAGE}`);
    this.#next++;
    return message;
  }

  readMessage(message: Uint8Array): Uint8Array {
    if (message.length > MAX_NOISE_MESSAGE) throw this.#error(`message of ${message.length} bytes exceeds ${MAX_NOISE_MESSAGE}`);
    const tokens = this.#turn(false);
    let offset = 0;
    const take = (length: number): Uint8Array => {
      if (offset + length > message.length) throw this.#error(`message of ${message.length} bytes is too short`);
      const field = message.subarray(offset, offset + length);
      offset += length;
      return field;
    };
    for (const token of tokens) {
      switch (token) {
        case 'e':
          this.#re = take(DHLEN).slice();
          this.#symmetric.mixHash(this.#re);
          break;
        case 's':
          this.#rs = this.#symmetric.decryptAndHash(take(this.#symmetric.hasKey() ? DHLEN + TAGLEN : DHLEN)).slice();
          break;
        default:
          this.#mixDh(token);
      }
    }
    const payload = this.#symmetric.decryptAndHash(message.subarray(offset));
    this.#next++;
    return payload;
  }

  /** After the last message: [initiator → responder, responder → initiator]. */
  split(): [CipherState, CipherState] {
    if (!this.isComplete) throw this.#error('split before the handshake is complete');
    return this.#symmetric.split();
  }

  #turn(writing: boolean): readonly Token[] {
    const tokens = this.#pattern.messages[this.#next];
    if (tokens === undefined) throw this.#error('handshake already complete');
    const initiatorTurn = this.#next % 2 === 0;
    if ((initiatorTurn === this.#initiator) !== writing) {
      throw this.#error(`out of turn: message ${this.#next} is not ours to ${writing ? 'write' : 'read'}`);
    }
    return tokens;
  }

  /** §5.3: ee, es, se, ss as seen from this side (es = initiator's e with responder's s). */
  #mixDh(token: 'ee' | 'es' | 'se' | 'ss'): void {
    let local: X25519KeyPair | undefined;
    let remote: Uint8Array | undefined;
    switch (token) {
      case 'ee':
        [local, remote] = [this.#e, this.#re];
        break;
      case 'es':
        [local, remote] = this.#initiator ? [this.#e, this.#rs] : [this.#s, this.#re];
        break;
      case 'se':
        [local, remote] = this.#initiator ? [this.#s, this.#re] : [this.#e, this.#rs];
        break;
      case 'ss':
        [local, remote] = [this.#s, this.#rs];
        break;
      default: {
        const unreachable: never = token;
        throw this.#error(`unknown token ${String(unreachable)}`);
      }
    }
    const secretKey = this.#required(local, `local key for ${token}`).secretKey;
    this.#symmetric.mixKey(this.#provider.x25519.sharedSecret(secretKey, this.#required(remote, `remote key for ${token}`)));
  }

  #preKey(token: 'e' | 's', local: boolean): Uint8Array {
    if (token === 'e') return local ? this.#required(this.#e, 'pre-message e').publicKey : this.#required(this.#re, 'pre-message re');
    return local ? this.#required(this.#s, 'pre-message s').publicKey : this.#required(this.#rs, 'pre-message rs');
  }

  #generateEphemeral(): X25519KeyPair {
    const secretKey = this.#provider.randomBytes(32);
    return { secretKey, publicKey: this.#provider.x25519.publicKey(secretKey) };
  }

  #required<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw this.#error(`${what} is missing`);
    return value;
  }

  #error(why: string): EnvelopeError {
    return new EnvelopeError('E_HANDSHAKE', `noise: ${why}`, { initiator: this.#initiator, message: this.#next });
  }
}
