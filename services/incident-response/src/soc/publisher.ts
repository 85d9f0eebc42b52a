/**
 * Publishes incidents on the SOC stream (DESIGN §7): the OCSF Detection Finding as the body of
 * a binary-mode CloudEvent.
 *
 * On a channel (issue 12 "Channels": `channel` set, and the key manager announced its first
 * epoch): one copy, sealed under the channel's current epoch key, on
 * `bulwark.incident.<severity>.<category>.<channel token>`; every analyst the epoch was wrapped
 * to opens it, an analyst revoked (a later epoch without it) opens nothing sealed after its
 * revocation. A service that holds no key for the channel's current epoch, or for which the
 * key manager has announced no epoch yet, publishes nothing (the workflow retries) rather than
 * under an older key or as sealed copies.
 *
 * Without a channel (a deployment with no key manager channel, `BULWARK_INCIDENT_CHANNEL`
 * unset) each finding is **sealed to each enrolled analyst** (SealedSender, one copy per analyst) on `bulwark.incident.<severity>.<category>.<recipient>`;
 * an analyst's consumer filters its own recipient token, and anyone else holds frames it cannot
 * open. `ce-id` = `Nats-Msg-Id` = `<incident id>.<revision>.<recipient or channel>`: the same
 * finding re-published after a restart is deduplicated by JetStream.
 */
import { createStreamPublisher, incidentSubject, recipientToken, type Bus, type PublishAck, type StreamPublisher } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import type { ChannelKeyring } from '@bulwark/channel';
import { ChannelSender, SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { BulwarkError } from '@bulwark/errors';
import { analystConsumers } from '@bulwark/nats-auth';
import type { SecurityEvent } from '../incidents/security-event.js';
import { SEVERITIES, type Severity } from '../rules/load.js';
import { CE_SOURCE, CE_TYPE_PREFIX, cloudEventHeaders } from './cloudevents.js';
import { detectionFinding, type FindingActivity } from './ocsf.js';

/**
 * The consumers an analyst reads its own copies through, one per severity from `floor` up:
 * exactly the durables and filters the bus grants it (libs/nats-auth `analystConsumers`).
 */
export function socConsumers(principal: string, floor: Severity = 'info'): { durable: string; filterSubject: string }[] {
  const wanted = new Set(SEVERITIES.slice(SEVERITIES.indexOf(floor)));
  return analystConsumers(principal)
    .filter((g) => wanted.has(g.filter.split('.')[2] as Severity))
    .map((g) => ({ durable: g.durable, filterSubject: g.filter }));
}

export interface SocPublisherOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** Enrolled analysts: principal ids with a directory entry. */
  readonly analysts: () => readonly string[];
  /** The SOC channel and this service's epoch keys for it (from the ledger). */
  readonly channel?: { readonly id: string; readonly keyring: ChannelKeyring };
}

export class SocPublisher {
  readonly #o: SocPublisherOptions;
  readonly #publishers = new Map<string, StreamPublisher>();
  #channel: { sender: ChannelSender; publisher: StreamPublisher } | undefined;

  constructor(options: SocPublisherOptions) {
    this.#o = options;
  }

  #publisherFor(analyst: string): StreamPublisher {
    let p = this.#publishers.get(analyst);
    if (p === undefined) {
      const { bus, provider, identity, directory } = this.#o;
      p = createStreamPublisher(bus, new SealedSender({ provider, self: identity, directory, recipientId: analyst }), 'incidents');
      this.#publishers.set(analyst, p);
    }
    return p;
  }

  /** The channel's publisher under its current epoch (undefined without a channel); throws before its first epoch and when this service holds no key for it. */
  #onChannel(): StreamPublisher | undefined {
    const channel = this.#o.channel;
    if (channel === undefined) return undefined;
    const last = channel.keyring.lastAnnouncement(channel.id);
    if (last === undefined) throw new BulwarkError('E_SOC_CHANNEL', `SOC channel ${channel.id}: the key manager has announced no epoch yet; the finding is not published`, { channel: channel.id });
    const key = channel.keyring.current(channel.id);
    if (key === undefined) throw new BulwarkError('E_SOC_CHANNEL', `SOC channel ${channel.id}: ${this.#o.identity.id} holds no key for epoch ${last.epoch}; the finding is not published`, { channel: channel.id, epoch: last.epoch });
    if (this.#channel === undefined) {
      const sender = new ChannelSender({ provider: this.#o.provider, senderId: this.#o.identity.id, epochKey: key });
      this.#channel = { sender, publisher: createStreamPublisher(this.#o.bus, sender, 'incidents') };
    } else if (this.#channel.sender.epoch !== key.epoch) {
      this.#channel.sender.rotate(key);
    }
    return this.#channel.publisher;
  }

  /** One copy on the channel, or one per enrolled analyst; throws if any copy was not stored (the caller retries: copies already stored dedupe). */
  async publish(incident: SecurityEvent, activity: FindingActivity, revision: number, actions: readonly { action: string; outcome: string }[] = []): Promise<PublishAck[]> {
    const now = Date.now();
    const finding = detectionFinding(incident, activity, now, actions);
    const body = new TextEncoder().encode(JSON.stringify(finding));
    const subject = incidentSubject(incident.severity, incident.category);
    const acks: PublishAck[] = [];
    const channel = this.#onChannel();
    const copies = channel === undefined ? this.#o.analysts().map((analyst) => ({ to: analyst, publisher: () => this.#publisherFor(analyst) })) : [{ to: this.#o.channel!.id, publisher: () => channel }];
    for (const { to, publisher } of copies) {
      const token = recipientToken(to);
      const id = `${incident.id}.${revision}.${token}`.replace(/%/g, '_');
      const headers = cloudEventHeaders({ id, type: `${CE_TYPE_PREFIX}.${activity}`, source: CE_SOURCE, time: new Date(now).toISOString(), subject: incident.id });
      acks.push(await publisher().publish({ subject: `${subject}.${token}`, msgId: id, payload: body, headers }));
    }
    return acks;
  }
}
