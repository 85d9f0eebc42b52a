/**
 * The channels as the key manager's state holds them, rebuilt from the verified ledger: per
 * channel its last announcement. A change is planned against this state (who subscribes to the
 * next epoch, and why) and only takes effect when its announcement comes back from the ledger
 * and `apply` accepts it.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { checkSuccessor, type EpochAnnouncement, type EpochReason } from './announcement.js';
import { ChannelError } from './errors.js';

export type ChannelChange =
  | { readonly action: 'create'; readonly channel: string; readonly subscribers: readonly string[] }
  | { readonly action: 'add'; readonly channel: string; readonly subscriber: string }
  | { readonly action: 'revoke'; readonly channel: string; readonly subscriber: string }
  | { readonly action: 'rotate'; readonly channel: string; readonly reason: 'interval' | 'on_demand' | 'subscriber_rekeyed'; readonly subject?: string };

export interface PlannedEpoch {
  readonly channel: string;
  readonly last: EpochAnnouncement | undefined;
  readonly reason: EpochReason;
  readonly subject: string | null;
  readonly subscribers: readonly string[];
}

export class ChannelBook {
  readonly #last = new Map<string, EpochAnnouncement>();

  constructor(private readonly provider: CryptoProvider) {}

  last(channel: string): EpochAnnouncement | undefined {
    return this.#last.get(channel);
  }

  channels(): readonly EpochAnnouncement[] {
    return [...this.#last.values()];
  }

  subscribers(channel: string): readonly string[] {
    return this.#last.get(channel)?.subscribers.map((s) => s.id) ?? [];
  }

  /** The channels `principal` subscribes to now. */
  channelsOf(principal: string): readonly string[] {
    return this.channels()
      .filter((a) => a.subscribers.some((s) => s.id === principal))
      .map((a) => a.channel);
  }

  /** Who the next epoch is for, or E_CHANNEL_STATE when the change does not fit the state. */
  plan(change: ChannelChange): PlannedEpoch {
    const last = this.#last.get(change.channel);
    const now = this.subscribers(change.channel);
    const refuse = (why: string): never => {
      throw new ChannelError('E_CHANNEL_STATE', `channel ${change.channel}: ${why}`, { channel: change.channel });
    };
    if (change.action !== 'create' && last === undefined) refuse('no such channel (create it first)');
    switch (change.action) {
      case 'create':
        if (last !== undefined) refuse(`exists already (epoch ${last.epoch})`);
        if (change.subscribers.length === 0) refuse('a channel needs at least one subscriber');
        return { channel: change.channel, last, reason: 'created', subject: null, subscribers: [...new Set(change.subscribers)] };
      case 'add':
        if (now.includes(change.subscriber)) refuse(`${change.subscriber} subscribes already`);
        return { channel: change.channel, last, reason: 'subscriber_added', subject: change.subscriber, subscribers: [...now, change.subscriber] };
      case 'revoke':
        if (!now.includes(change.subscriber)) refuse(`${change.subscriber} does not subscribe`);
        if (now.length === 1) refuse(`${change.subscriber} is its last subscriber`);
        return { channel: change.channel, last, reason: 'subscriber_revoked', subject: change.subscriber, subscribers: now.filter((s) => s !== change.subscriber) };
      case 'rotate':
        return { channel: change.channel, last, reason: change.reason, subject: change.subject ?? null, subscribers: now };
      default: {
        const never: never = change;
        throw new Error(`unhandled channel change ${JSON.stringify(never)}`);
      }
    }
  }

  /** Takes a committed announcement (from the verified reader); E_CHANNEL_ANNOUNCEMENT if it does not follow the channel's last. */
  apply(announcement: EpochAnnouncement): void {
    checkSuccessor(this.provider, this.#last.get(announcement.channel), announcement);
    this.#last.set(announcement.channel, announcement);
  }
}
