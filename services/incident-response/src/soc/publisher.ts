/**
 * Publishes incidents on the SOC stream (DESIGN §7): the OCSF Detection Finding as the body of
 * a binary-mode CloudEvent. No channel key source exists yet (the key manager's
 * `bulwark.keys.channel` is not built), so each finding is **sealed to each enrolled analyst**
 * (SealedSender, one copy per analyst) on `bulwark.incident.<severity>.<category>.<recipient>`;
 * an analyst's consumer filters its own recipient token, and anyone else holds frames it cannot
 * open. `ce-id` = `Nats-Msg-Id` = `<incident id>.<revision>.<recipient>`: the same finding
 * re-published after a restart is deduplicated by JetStream.
 */
import { createStreamPublisher, incidentSubject, recipientToken, type Bus, type PublishAck, type StreamPublisher } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
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
}

export class SocPublisher {
  readonly #o: SocPublisherOptions;
  readonly #publishers = new Map<string, StreamPublisher>();

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

  /** One copy per enrolled analyst; throws if any copy was not stored (the caller retries: copies already stored dedupe). */
  async publish(incident: SecurityEvent, activity: FindingActivity, revision: number, actions: readonly { action: string; outcome: string }[] = []): Promise<PublishAck[]> {
    const now = Date.now();
    const finding = detectionFinding(incident, activity, now, actions);
    const body = new TextEncoder().encode(JSON.stringify(finding));
    const subject = incidentSubject(incident.severity, incident.category);
    const acks: PublishAck[] = [];
    for (const analyst of this.#o.analysts()) {
      const token = recipientToken(analyst);
      const id = `${incident.id}.${revision}.${token}`.replace(/%/g, '_');
      const headers = cloudEventHeaders({ id, type: `${CE_TYPE_PREFIX}.${activity}`, source: CE_SOURCE, time: new Date(now).toISOString(), subject: incident.id });
      acks.push(await this.#publisherFor(analyst).publish({ subject: `${subject}.${token}`, msgId: id, payload: body, headers }));
    }
    return acks;
  }
}
