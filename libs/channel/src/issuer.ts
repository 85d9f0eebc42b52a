/**
 * The key manager's side of a channel: a new epoch is a fresh 32-byte key wrapped to each of
 * the epoch's subscribers, announced as a ledger event. The key manager keeps no epoch key:
 * once wrapped, the key is erased here, and only the subscribers (and the publisher, which is
 * one of them) can recover it from the ledger.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { announcementHash, type EpochAnnouncement, type EpochReason, type EpochWrap } from './announcement.js';
import { ChannelError } from './errors.js';
import { EPOCH_KEY_LENGTH, wrapEpochKey } from './wrap.js';

export interface ChannelIssuerIdentity {
  readonly id: string;
  readonly keyVersion: number;
  readonly x25519: { readonly secretKey: Uint8Array; readonly publicKey: Uint8Array };
}

/** A subscriber as the directory certifies it now: the key its wrap is made for. */
export interface SubscriberKey {
  readonly id: string;
  readonly keyVersion: number;
  readonly x25519PublicKey: Uint8Array;
}

export interface NewEpoch {
  readonly channel: string;
  /** The channel's last announcement (undefined: this creates the channel, epoch 1). */
  readonly last: EpochAnnouncement | undefined;
  readonly reason: EpochReason;
  readonly subject: string | null;
  readonly subscribers: readonly SubscriberKey[];
  readonly at: number;
  readonly by: string;
}

export function announceEpoch(provider: CryptoProvider, issuer: ChannelIssuerIdentity, change: NewEpoch): EpochAnnouncement {
  const epoch = (change.last?.epoch ?? 0) + 1;
  if (change.last !== undefined && change.last.channel !== change.channel) throw new ChannelError('E_CHANNEL_STATE', `channel ${change.channel}: the last announcement given is of channel ${change.last.channel}`, {});
  if (change.subscribers.length === 0) throw new ChannelError('E_CHANNEL_STATE', `channel ${change.channel}: an epoch needs at least one subscriber`, { channel: change.channel });
  const sorted = [...change.subscribers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) if (sorted[i - 1]!.id === sorted[i]!.id) throw new ChannelError('E_CHANNEL_STATE', `channel ${change.channel}: subscriber ${sorted[i]!.id} given twice`, { channel: change.channel });
  const key = provider.randomBytes(EPOCH_KEY_LENGTH);
  try {
    const subscribers: EpochWrap[] = sorted.map((s) => ({
      id: s.id,
      keyVersion: s.keyVersion,
      wrap: wrapEpochKey(
        provider,
        { channel: change.channel, epoch, recipient: s.id, recipientKeyVersion: s.keyVersion, recipientPublicKey: s.x25519PublicKey, issuer: issuer.id, issuerKeyVersion: issuer.keyVersion, issuerPublicKey: issuer.x25519.publicKey },
        issuer.x25519.secretKey,
        key,
      ),
    }));
    return {
      channel: change.channel,
      epoch,
      previous: change.last === undefined ? null : announcementHash(provider, change.last),
      reason: change.reason,
      subject: change.subject,
      at: change.at,
      issuer: issuer.id,
      issuerKeyVersion: issuer.keyVersion,
      issuerPublicKey: issuer.x25519.publicKey,
      subscribers,
      by: change.by,
    };
  } finally {
    key.fill(0);
  }
}
