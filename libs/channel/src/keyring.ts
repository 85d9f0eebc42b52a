/**
 * A subscriber's epoch keys, rebuilt from the ledger: feed it every verified ledger event (the
 * verified reader's `onEvent`), and it keeps, per channel, the key of each epoch it was a
 * subscriber of. Older epochs stay (history stays readable to whoever held them); an epoch the
 * subscriber was left out of leaves it without that epoch's key, and so without the keys of
 * every later epoch until it is added again.
 *
 * The ledger reader already checked the event's signature, chain and producer; the key ring
 * checks again what it relies on (defence in depth, DESIGN §3a): the producer is the issuer,
 * the announcement is well formed, its issuer key is the one trusted for the issuer, and the
 * wrap opens under that key. Anything else throws ChannelError, which halts the reader that
 * called it (fail secure).
 *
 * An announcement that does not follow the channel's last one (a replay, a reorder, the loser
 * of two key manager instances announcing the same epoch) is no epoch: it is skipped
 * ('out-of-order'), changing nothing, exactly as the key manager's own ChannelBook skips it,
 * so every subscriber and the key manager agree on each channel's epochs.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import type { ChannelEpochKey, Directory } from '@bulwark/envelope';
import type { LedgerEvent } from '@bulwark/events';
import { checkSuccessor, parseAnnouncement, type EpochAnnouncement } from './announcement.js';
import { ChannelError } from './errors.js';
import { unwrapEpochKey } from './wrap.js';

export const CHANNEL_EPOCH_EVENT = 'keys.channel_epoch';

export interface KeyringOptions {
  readonly provider: CryptoProvider;
  /** The subscriber: its id and its X25519 secret key per directory key version (undefined: not held any more). */
  readonly self: { readonly id: string; readonly x25519SecretKey: (keyVersion: number) => Uint8Array | undefined };
  /** The only principal whose announcements count (svc.key-manager). */
  readonly issuer: string;
  /**
   * The issuer's X25519 public key trusted for a key version, never taken from the announcement.
   * Versions the key ring saw in the ledger itself (the issuer's own `keys.generated`,
   * `keys.enrolled`, `keys.rotated` events) are trusted first, so an old announcement still
   * checks after the issuer rotated its key.
   */
  readonly issuerKey: (keyVersion: number) => Uint8Array | undefined;
  /** Only these channels are followed (default: every channel). */
  readonly channels?: readonly string[];
  /** Called with each epoch key this subscriber received, in ledger order. */
  readonly onEpoch?: (key: ChannelEpochKey, announcement: EpochAnnouncement) => void;
}

/** The version a key event gives its principal (services/key-manager state/facts.ts). */
const ISSUER_KEY_VERSION: Readonly<Record<string, (details: LedgerEvent['details']) => number | undefined>> = {
  'keys.generated': () => 1,
  'keys.enrolled': () => 2,
  'keys.rotated': (d) => (typeof d['version'] === 'number' && Number.isSafeInteger(d['version']) && d['version'] >= 1 ? d['version'] : undefined),
};

export type KeyringOutcome = 'ignored' | 'held' | 'not-subscribed' | 'unreadable' | 'out-of-order';

/** The key manager's principal: the only issuer of channel epochs (DESIGN §3a, keys.*). */
export const CHANNEL_ISSUER = 'svc.key-manager';

/** An X25519 key pair as the key ring holds it (an `@bulwark/keystore` X25519KeyPair is one). */
interface HeldX25519 {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/**
 * The key ring of a service subscribing under its directory identity: announcements trusted from
 * the key manager's directory key, and each wrap opened with the key the subscriber held for the
 * version it was wrapped to. `identity` is read at each announcement, so pass the live object a
 * rotating service switches in place (service-host `rotatesOwnKeys`): its current version opens
 * with `x25519`; an earlier version with the held key (`x25519` or `previousX25519`) whose
 * public key is the one certified for that version, by `versionKey` (the ledger's key facts),
 * else by the directory entry when it is at that version. A version none of its held keys is
 * certified for is unreadable (the announcement is kept and retried by `retryUnreadable`).
 */
export function principalKeyring(options: {
  readonly provider: CryptoProvider;
  readonly identity: { readonly id: string; readonly version?: number; readonly x25519: HeldX25519; readonly previousX25519?: readonly HeldX25519[] };
  readonly directory: Directory;
  readonly channels: readonly string[];
  readonly onEpoch?: KeyringOptions['onEpoch'];
  /** The subscriber's X25519 public key certified for a version (e.g. the ledger's key book), undefined when unknown. */
  readonly versionKey?: (keyVersion: number) => Uint8Array | undefined;
}): ChannelKeyring {
  const { identity, directory, provider } = options;
  const secretFor = (v: number): Uint8Array | undefined => {
    if (identity.version === v) return identity.x25519.secretKey;
    const entry = directory.lookup(identity.id);
    const certified = options.versionKey?.(v) ?? (entry?.keyVersion === v ? entry.x25519PublicKey : undefined);
    if (certified === undefined) return undefined;
    return [identity.x25519, ...(identity.previousX25519 ?? [])].find((k) => provider.equal(k.publicKey, certified))?.secretKey;
  };
  return new ChannelKeyring({
    provider,
    self: { id: identity.id, x25519SecretKey: secretFor },
    issuer: CHANNEL_ISSUER,
    issuerKey: directoryIssuerKey(directory, CHANNEL_ISSUER),
    channels: options.channels,
    ...(options.onEpoch === undefined ? {} : { onEpoch: options.onEpoch }),
  });
}

/** The issuer's X25519 key from the directory, for the version the directory certifies now. */
export function directoryIssuerKey(directory: Directory, issuer: string): (keyVersion: number) => Uint8Array | undefined {
  return (keyVersion) => {
    const entry = directory.lookup(issuer);
    return entry?.keyVersion === keyVersion ? entry.x25519PublicKey : undefined;
  };
}

export class ChannelKeyring {
  readonly #o: KeyringOptions;
  readonly #last = new Map<string, EpochAnnouncement>();
  readonly #keys = new Map<string, Map<number, ChannelEpochKey>>();
  readonly #issuerKeys = new Map<number, Uint8Array>();
  /** Announcements listing this subscriber whose wrap it held no key for (channel → epoch → announcement). */
  readonly #unread = new Map<string, Map<number, EpochAnnouncement>>();
  /** Announcements skipped because they did not follow their channel's last one. */
  skipped = 0;

  constructor(options: KeyringOptions) {
    this.#o = options;
  }

  /** One verified ledger event: anything but a channel epoch announcement (or a key version of the issuer) is ignored. */
  apply(event: LedgerEvent): KeyringOutcome {
    const { provider, issuer } = this.#o;
    if (event.eventType !== CHANNEL_EPOCH_EVENT) {
      this.#learnIssuerKey(event);
      return 'ignored';
    }
    if (event.producer !== issuer) {
      throw new ChannelError('E_CHANNEL_ISSUER', `keys.channel_epoch at seq ${event.seq} was produced by ${event.producer}; only ${issuer} announces epochs`, { seq: event.seq, producer: event.producer });
    }
    const a = parseAnnouncement(event.details);
    if (this.#o.channels !== undefined && !this.#o.channels.includes(a.channel)) return 'ignored';
    const trusted = a.issuer === issuer ? (this.#issuerKeys.get(a.issuerKeyVersion) ?? this.#o.issuerKey(a.issuerKeyVersion)) : undefined;
    if (trusted === undefined || !provider.equal(trusted, a.issuerPublicKey)) {
      throw new ChannelError('E_CHANNEL_ISSUER', `channel ${a.channel} epoch ${a.epoch}: wrapped by ${a.issuer} key version ${a.issuerKeyVersion}, which is not a key trusted for ${issuer}`, { channel: a.channel, epoch: a.epoch });
    }
    if (!follows(provider, this.#last.get(a.channel), a)) {
      this.skipped++;
      return 'out-of-order';
    }
    const mine = a.subscribers.find((s) => s.id === this.#o.self.id);
    this.#last.set(a.channel, a);
    if (mine === undefined) return 'not-subscribed';
    if (this.#open(a)) return 'held';
    let unread = this.#unread.get(a.channel);
    if (unread === undefined) this.#unread.set(a.channel, (unread = new Map()));
    unread.set(a.epoch, a);
    return 'unreadable';
  }

  /** Opens this subscriber's wrap in a checked announcement with the key it holds for the wrap's version; false when it holds none. */
  #open(a: EpochAnnouncement): boolean {
    const mine = a.subscribers.find((s) => s.id === this.#o.self.id)!;
    const secret = this.#o.self.x25519SecretKey(mine.keyVersion);
    if (secret === undefined) return false;
    const bytes = unwrapEpochKey(
      this.#o.provider,
      { channel: a.channel, epoch: a.epoch, recipient: mine.id, recipientKeyVersion: mine.keyVersion, issuer: a.issuer, issuerKeyVersion: a.issuerKeyVersion, issuerPublicKey: a.issuerPublicKey },
      secret,
      mine.wrap,
    );
    const key: ChannelEpochKey = { channelId: a.channel, epoch: a.epoch, key: bytes };
    let held = this.#keys.get(a.channel);
    if (held === undefined) this.#keys.set(a.channel, (held = new Map()));
    held.set(a.epoch, key);
    this.#o.onEpoch?.(key, a);
    return true;
  }

  /**
   * Tries again the epochs that were unreadable (e.g. announced for the subscriber's new key
   * version a moment before its own rotation switched to it); each one opened now is held and
   * handed to `onEpoch`. Returns the epochs opened.
   */
  retryUnreadable(): number {
    let opened = 0;
    for (const [channel, unread] of this.#unread) {
      for (const [epoch, a] of unread) {
        if (!this.#open(a)) continue;
        unread.delete(epoch);
        opened++;
      }
      if (unread.size === 0) this.#unread.delete(channel);
    }
    return opened;
  }

  /** The epochs of the channel this subscriber was wrapped to but holds no key for, ascending. */
  unreadableEpochs(channel: string): readonly number[] {
    return [...(this.#unread.get(channel)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /** A key version of the issuer, from the issuer's own key events (produced by it, about it). */
  #learnIssuerKey(event: LedgerEvent): void {
    const version = ISSUER_KEY_VERSION[event.eventType]?.(event.details);
    const x = event.details['x25519'];
    if (version === undefined || event.producer !== this.#o.issuer || event.agentId !== this.#o.issuer || event.details['principal'] !== this.#o.issuer || typeof x !== 'string') return;
    const key = new Uint8Array(Buffer.from(x, 'base64'));
    if (key.length === 32 && Buffer.from(key).toString('base64') === x) this.#issuerKeys.set(version, key);
  }

  /** The key of `epoch`, if this subscriber was one of its subscribers. */
  epochKey(channel: string, epoch: number): ChannelEpochKey | undefined {
    return this.#keys.get(channel)?.get(epoch);
  }

  /** The channel's latest epoch's key, or undefined when this subscriber is not in the latest epoch. */
  current(channel: string): ChannelEpochKey | undefined {
    const last = this.#last.get(channel);
    if (last === undefined) return undefined;
    // The latest epoch may have been announced for a key version this subscriber switched to since.
    if (this.#unread.get(channel)?.has(last.epoch) === true) this.retryUnreadable();
    return this.epochKey(channel, last.epoch);
  }

  /** The latest announcement of the channel (subscribed or not). */
  lastAnnouncement(channel: string): EpochAnnouncement | undefined {
    return this.#last.get(channel);
  }

  /** The epochs whose keys are held, ascending. */
  heldEpochs(channel: string): readonly number[] {
    return [...(this.#keys.get(channel)?.keys() ?? [])].sort((a, b) => a - b);
  }
}

function follows(provider: CryptoProvider, last: EpochAnnouncement | undefined, next: EpochAnnouncement): boolean {
  try {
    checkSuccessor(provider, last, next);
    return true;
  } catch (e) {
    if (e instanceof ChannelError) return false;
    throw e;
  }
}
