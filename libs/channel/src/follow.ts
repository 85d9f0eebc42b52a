/**
 * A subscriber rebuilds its epoch keys from the ledger through the verified reader
 * (@bulwark/ledger-reader, DESIGN §3a): `keys.channel_epoch` is a control event, so the ledger
 * re-publishes it on the subscriber's own control subject (`bulwark.ledger.control.<id>`,
 * sealed to it; the subscriber must be in the ledger's SYMBIONT_LEDGER_CONTROL_TO). Each
 * verified event goes to the key ring; a key ring that throws (a wrap that does not open, an
 * announcement not from the key manager) halts the reader, and nothing more is learnt.
 *
 * A reader of a channel stream that also carries the announcements (the ledger's full stream)
 * may hand its own events to `keyring.apply` as well: the same announcement twice is skipped.
 */
import { Commands, type Bus, type RejectionReporter } from '@bulwark/bus';
import { SealedReceiver, type Directory, type LocalIdentity } from '@bulwark/envelope';
import type { AuditEvent } from '@bulwark/events';
import { ledgerQuery, startLedgerReader, startQueryReader, type LedgerReader, type QueryReader, type ReaderHaltedError } from '@bulwark/ledger-reader';
import type { Logger } from '@bulwark/telemetry';
import { CHANNEL_EPOCH_EVENT, ChannelKeyring, type KeyringOptions } from './keyring.js';

const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;

export interface FollowChannelsOptions extends Omit<KeyringOptions, 'self'> {
  readonly bus: Bus;
  /** The subscriber: its control subject, its sessions to the ledger, its wraps. */
  readonly identity: LocalIdentity;
  /** The subscriber's X25519 secret per key version (default: `identity.x25519` as version `keyVersion`). */
  readonly x25519SecretKey?: (keyVersion: number) => Uint8Array | undefined;
  /** The directory key version of `identity` (default 1). */
  readonly keyVersion?: number;
  readonly directory: Directory;
  readonly ledgerPublicKey: Uint8Array;
  readonly rejections: RejectionReporter;
  /** Publishes the reader's Critical security event when it halts. */
  readonly raise: (event: AuditEvent) => Promise<unknown>;
  readonly onHalt?: (halt: ReaderHaltedError) => void;
  readonly logger?: Logger;
  readonly syncIntervalMs?: number;
}

export interface ChannelFollower {
  readonly keyring: ChannelKeyring;
  readonly reader: LedgerReader;
  stop(): Promise<void>;
}

export async function followChannels(options: FollowChannelsOptions): Promise<ChannelFollower> {
  const { identity } = options;
  const keyVersion = options.keyVersion ?? 1;
  const keyring = new ChannelKeyring({
    ...options,
    self: { id: identity.id, x25519SecretKey: options.x25519SecretKey ?? ((v) => (v === keyVersion ? identity.x25519.secretKey : undefined)) },
  });
  const reader = await startLedgerReader({
    bus: options.bus,
    provider: options.provider,
    identity,
    directory: options.directory,
    // Old control batches are replayed from the stream's start: its retention, not the skew window, bounds their age.
    receiver: new SealedReceiver({ provider: options.provider, self: identity, directory: options.directory, staleAfterMs: TEN_YEARS_MS }),
    ledgerPublicKey: options.ledgerPublicKey,
    reader: `${identity.id}/channels`,
    mode: 'control',
    durablePrefix: 'channels',
    rejections: options.rejections,
    raise: options.raise,
    ...(options.onHalt === undefined ? {} : { onHalt: options.onHalt }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
    onEvent: (event) => void keyring.apply(event),
  });
  return { keyring, reader, stop: () => reader.stop() };
}

/** What `bulwark.audit.channel_epochs` serves: the announcements, and the issuer's key events the key ring checks them against. */
export const CHANNEL_EPOCH_TYPES: readonly string[] = Object.freeze([CHANNEL_EPOCH_EVENT, 'keys.generated', 'keys.enrolled', 'keys.rotated']);

export interface FollowChannelEpochsOptions extends Omit<KeyringOptions, 'self'> {
  readonly bus: Bus;
  /** The subscriber (any principal: an analyst, one enrolled after the ledger started): its session to the ledger, its wraps. */
  readonly identity: LocalIdentity;
  readonly x25519SecretKey?: (keyVersion: number) => Uint8Array | undefined;
  readonly keyVersion?: number;
  readonly directory: Directory;
  readonly ledgerPublicKey: Uint8Array;
  readonly rejections: RejectionReporter;
  readonly onHalt?: (halt: ReaderHaltedError) => void;
  readonly logger?: Logger;
  /** How often the ledger is asked for new epochs (default 5000 ms; 0: only on `refresh`). */
  readonly syncIntervalMs?: number;
  readonly queryTimeoutMs?: number;
}

export interface ChannelEpochFollower {
  readonly keyring: ChannelKeyring;
  readonly reader: QueryReader;
  /**
   * Asks the ledger for the announcements after the last one applied (on meeting a frame under
   * an epoch not held yet, or at start). Throws when the ledger cannot be asked or the reader
   * halted (a forged or mis-signed event: nothing after it is learnt).
   */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A subscriber that has no control subject of its own (an analyst) follows its epoch keys
 * through `bulwark.audit.channel_epochs`, the ledger's authenticated query restricted to the
 * key manager's channel events: each served event is checked by @bulwark/ledger-reader's query
 * reader (hash, the ledger's signature, producer, order) and then by the key ring (issuer,
 * issuer key, successor, the wrap to this subscriber's key). Nothing is taken from the bus.
 */
export async function followChannelEpochs(options: FollowChannelEpochsOptions): Promise<ChannelEpochFollower> {
  const { identity } = options;
  const keyVersion = options.keyVersion ?? 1;
  const keyring = new ChannelKeyring({
    ...options,
    self: { id: identity.id, x25519SecretKey: options.x25519SecretKey ?? ((v) => (v === keyVersion ? identity.x25519.secretKey : undefined)) },
  });
  const reader = startQueryReader({
    provider: options.provider,
    ledgerPublicKey: options.ledgerPublicKey,
    reader: `${identity.id}/channel-epochs`,
    eventTypes: CHANNEL_EPOCH_TYPES,
    query: ledgerQuery(options.bus, { provider: options.provider, identity, directory: options.directory, rejections: options.rejections }, Commands.audit.channelEpochs, options.queryTimeoutMs ?? 5000),
    onEvent: (event) => void keyring.apply(event),
    ...(options.onHalt === undefined ? {} : { onHalt: options.onHalt }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
  });
  const refresh = async (): Promise<void> => {
    await reader.refresh();
    const halt = reader.halted;
    if (halt !== undefined) throw halt;
  };
  try {
    await refresh();
  } catch (e) {
    await reader.stop();
    throw e;
  }
  return { keyring, reader, refresh, stop: () => reader.stop() };
}
