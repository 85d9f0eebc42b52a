/**
 * The sealing of BULWARK_LEDGER's full batches (`bulwark.ledger.batch`, issue 12 "Channels").
 * Without a channel (SYMBIONT_LEDGER_CHANNEL unset) they are sealed to one principal
 * (SYMBIONT_LEDGER_REPUBLISH_TO). With one, they are sealed to that principal only until the
 * key manager announced the channel's first epoch, and from then on under the channel's
 * current epoch key, which every subscriber of the epoch (every projection the key manager
 * enrolled, the incident detectors among them) holds.
 *
 * The ledger learns the epochs from what it commits, not from a stream: each chunk ends at a
 * `keys.channel_epoch` event (republisher.ts), and once the chunk is on the stream its
 * announcements are applied (the ledger unwraps its own copy of the key, @bulwark/channel), so
 * every later chunk is sealed under the new epoch, and a subscriber the new epoch leaves out
 * cannot read anything committed after its revocation. Before a chunk this instance did not
 * see (at start, or after another instance published some), the announcements below it are
 * read from the table, so the chunk is sealed under the epoch in force at its first event.
 *
 * Fail secure: once the channel exists, a ledger that holds no key for its current epoch (it
 * was left out, or an announcement did not check) publishes no full batch at all, rather than
 * falling back to an older key or to sealed mode. Ingest and the control batches go on.
 */
import { createStreamPublisher, type Bus } from '@bulwark/bus';
import { principalKeyring, type ChannelKeyring } from '@bulwark/channel';
import type { CryptoProvider } from '@bulwark/crypto';
import { ChannelSender, EnvelopeError, SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { parseJson, type EventType, type JsonObject, type LedgerEvent } from '@bulwark/events';
import { LedgerError } from '../errors.js';
import type { LedgerDb } from '../ledger.js';
import { wireEventOfRow, type WireEvent } from './batch-wire.js';
import type { LedgerPublisher } from './republisher.js';

export const CHANNEL_EPOCH_TYPE = 'keys.channel_epoch';

export interface FullStreamOptions {
  readonly bus: Bus;
  readonly db: LedgerDb;
  readonly provider: CryptoProvider;
  /** The ledger's live identity (switched in place by its own rotation). */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** The ledger's X25519 public key of each identity version (its key facts, its store): an epoch wrapped to an earlier version opens with the key held for it. */
  readonly versionKey?: (keyVersion: number) => Uint8Array | undefined;
  /** Sealed mode's recipient (before the channel's first epoch, or without a channel). */
  readonly republishTo: string;
  /** The channel of the full batches (SYMBIONT_LEDGER_CHANNEL), if any. */
  readonly channel?: string;
  /** The stream publisher around a sender (default: createStreamPublisher on BULWARK_LEDGER). */
  readonly publisherOf?: (sender: SealedSender | ChannelSender) => LedgerPublisher;
}

function ledgerEventOf(e: WireEvent): LedgerEvent {
  return {
    eventId: e.eventId,
    timestamp: e.timestamp,
    agentId: e.agentId,
    eventType: e.eventType as EventType,
    details: parseJson(e.detailsJcs, 'details') as JsonObject,
    producer: e.producer,
    seq: e.seq,
    previousHash: e.previousHash,
    eventHash: e.eventHash,
    signature: e.signature,
  };
}

export class FullStreamSealer implements LedgerPublisher {
  readonly #o: FullStreamOptions;
  readonly #sealed: LedgerPublisher;
  readonly #publisherOf: (sender: SealedSender | ChannelSender) => LedgerPublisher;
  readonly #keyring: ChannelKeyring | undefined;
  #sender: ChannelSender | undefined;
  #onChannel: LedgerPublisher | undefined;
  /** Why no full batch may be published any more (an announcement the ledger could not apply). */
  #broken: Error | undefined;
  /** Every announcement below this seq has been applied. */
  #appliedBelow = 0;

  constructor(options: FullStreamOptions) {
    this.#o = options;
    const { bus, provider, identity, directory } = options;
    this.#publisherOf = options.publisherOf ?? ((sender) => createStreamPublisher(bus, sender, 'ledger'));
    this.#sealed = withholdingUnsealable(this.#publisherOf(new SealedSender({ provider, self: identity, directory, recipientId: options.republishTo })), options.republishTo);
    this.#keyring =
      options.channel === undefined
        ? undefined
        : principalKeyring({ provider, identity, directory, channels: [options.channel], ...(options.versionKey === undefined ? {} : { versionKey: options.versionKey }) });
  }

  /** The channel's epoch the next full batch is sealed under (undefined: sealed mode). */
  get epoch(): number | undefined {
    return this.#sender?.epoch;
  }

  /** Whether a chunk must end after this event (so that the next one is sealed under the epoch it announces). */
  static endsChunk(event: WireEvent): boolean {
    return event.eventType === CHANNEL_EPOCH_TYPE;
  }

  /** Applies the stored announcements in [appliedBelow, seq): chunks published by another instance, or before a restart. */
  async #catchUp(seq: number): Promise<void> {
    if (seq < this.#appliedBelow) throw new LedgerError('E_LEDGER', `ledger channel ${this.#o.channel}: a chunk from seq ${seq} comes after the announcements up to seq ${this.#appliedBelow - 1} were applied`, { seq });
    const rows = await this.#o.db.selectFrom('events').selectAll().where('event_type', '=', CHANNEL_EPOCH_TYPE).where('seq', '>=', BigInt(this.#appliedBelow)).where('seq', '<', BigInt(seq)).orderBy('seq').execute();
    this.applied(rows.map(wireEventOfRow));
    this.#appliedBelow = seq;
  }

  /** A chunk is on the stream: its announcements take effect for the chunks after it. */
  applied(events: readonly WireEvent[]): void {
    const keyring = this.#keyring;
    if (keyring === undefined || this.#broken !== undefined || events.length === 0) return;
    this.#appliedBelow = Math.max(this.#appliedBelow, events[events.length - 1]!.seq + 1);
    for (const event of events) {
      if (event.eventType !== CHANNEL_EPOCH_TYPE) continue;
      try {
        keyring.apply(ledgerEventOf(event));
      } catch (e) {
        this.#broken = new LedgerError('E_LEDGER', `ledger channel ${this.#o.channel}: the announcement at seq ${event.seq} could not be applied (${e instanceof Error ? e.message : String(e)}); this instance publishes no full batch any more (readers fill from the query; restart it once resolved)`, { seq: event.seq }, { cause: e });
        return;
      }
    }
  }

  /** `msgId` is the republisher's `<first seq>-<last seq>`: the chunk is sealed under the epoch in force at its first seq. */
  async publish(message: { subject: string; msgId: string; payload: Uint8Array }): Promise<unknown> {
    const channel = this.#o.channel;
    if (channel !== undefined) {
      const first = Number(/^(\d+)-\d+$/.exec(message.msgId)?.[1] ?? Number.NaN);
      if (!Number.isSafeInteger(first)) throw new LedgerError('E_LEDGER', `ledger full batch: message id '${message.msgId}' is not <first seq>-<last seq>`, {});
      if (first !== this.#appliedBelow) await this.#catchUp(first);
    }
    if (this.#broken !== undefined) throw new LedgerError('E_LEDGER_WITHHELD', this.#broken.message, {}, { cause: this.#broken });
    const last = channel === undefined ? undefined : this.#keyring!.lastAnnouncement(channel);
    if (channel === undefined || last === undefined) return this.#sealed.publish(message);
    const key = this.#keyring!.current(channel);
    if (key === undefined) {
      throw new LedgerError('E_LEDGER_WITHHELD', `ledger channel ${channel}: ${this.#o.identity.id} holds no key for epoch ${last.epoch}; no full batch is published (it is not a subscriber of the epoch, or its key version changed)`, { channel, epoch: last.epoch });
    }
    if (this.#sender === undefined) {
      this.#sender = new ChannelSender({ provider: this.#o.provider, senderId: this.#o.identity.id, epochKey: key });
      this.#onChannel = this.#publisherOf(this.#sender);
    } else if (this.#sender.epoch !== key.epoch) {
      this.#sender.rotate(key);
    }
    return this.#onChannel!.publish(message);
  }
}

/**
 * A batch sealed to a recipient the directory does not serve (absent, revoked, expired) cannot be
 * published until it is back: withheld (E_LEDGER_WITHHELD), not retried, so that one missing
 * reader does not hold the stream, and every other reader's batches, behind it.
 */
export function withholdingUnsealable(publisher: LedgerPublisher, recipient: string): LedgerPublisher {
  return {
    async publish(message) {
      try {
        return await publisher.publish(message);
      } catch (error) {
        if (error instanceof EnvelopeError && error.code === 'E_UNKNOWN_PEER') {
          throw new LedgerError('E_LEDGER_WITHHELD', `ledger: no valid directory entry for ${recipient}; its batch is not published (its reader fills the gap from the ledger's query)`, { recipient }, { cause: error });
        }
        throw error;
      }
    },
  };
}
