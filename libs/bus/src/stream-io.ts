import type { ChannelSender, SealedSender, StreamReceiver } from '@bulwark/envelope';
import type { Bus } from './connect.js';
import { startConsumer, type ConsumerSpec, type DeliveryHandler, type RunningConsumer } from './consumer.js';
import { BusUsageError } from './errors.js';
import { openerOf, sealerOf } from './internal/envelope-ports.js';
import { publishSealed, type PublishAck } from './publisher.js';
import { RejectionReporter, type RejectionReporterOptions } from './rejections.js';
import { Events, incidentSubject, type EventSubject, type IncidentSeverity, type StreamKey } from './subjects.js';
import { DEFAULT_STREAMS } from './streams.js';

export interface StreamPublisher {
  /**
   * Seals `payload` with the publisher's envelope sender and publishes it with
   * `Nats-Msg-Id` = `msgId`; resolves once the stream acknowledged it as stored.
   */
  publish(message: { subject: string; msgId: string; payload: Uint8Array; timeoutMs?: number; headers?: Readonly<Record<string, string>> }): Promise<PublishAck>;
}

/**
 * A publisher onto one stream. `sender` is a SealedSender (one recipient, e.g. the
 * ledger) or a ChannelSender (every subscriber holding the channel's epoch key): the
 * bus has no way to publish a payload that did not go through the envelope.
 */
export function createStreamPublisher(bus: Bus, sender: SealedSender | ChannelSender, stream: StreamKey): StreamPublisher {
  const sealer = sealerOf(sender);
  const roots = DEFAULT_STREAMS[stream].subjects.map((s) => s.slice(0, -1));
  return {
    async publish({ subject, msgId, payload, timeoutMs, headers }) {
      if (!roots.some((root) => subject.startsWith(root))) {
        throw new BusUsageError('E_BUS_SUBJECT', `subject ${subject} is not captured by stream ${bus.streamName(stream)}`, { subject, stream });
      }
      return publishSealed(bus, sealer, { subject, msgId, plaintext: payload, expectStream: stream, ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(headers === undefined ? {} : { headers }) });
    },
  };
}

export interface EventPublisher {
  /** Publishes one event to BULWARK_EVENTS, sealed to the ledger; `eventId` (UUIDv7) dedupes. */
  publish(event: { subject: EventSubject; eventId: string; payload: Uint8Array; timeoutMs?: number }): Promise<PublishAck>;
}

/** Events, sealed to the ledger's principal by `sender` (a SealedSender whose recipient is the ledger). */
export function createEventPublisher(bus: Bus, sender: SealedSender): EventPublisher {
  const inner = createStreamPublisher(bus, sender, 'events');
  return {
    publish: ({ subject, eventId, payload, timeoutMs }) => inner.publish({ subject, msgId: eventId, payload, ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
  };
}

export interface IncidentPublisher {
  /** Publishes to `bulwark.incident.<severity>.<category>` on BULWARK_INCIDENTS, sealed to the SOC channel. */
  publish(incident: { severity: IncidentSeverity; category: string; incidentId: string; payload: Uint8Array; headers?: Readonly<Record<string, string>> }): Promise<PublishAck>;
}

export function createIncidentPublisher(bus: Bus, sender: ChannelSender): IncidentPublisher {
  const inner = createStreamPublisher(bus, sender, 'incidents');
  return {
    publish: ({ severity, category, incidentId, payload, headers }) => inner.publish({ subject: incidentSubject(severity, category), msgId: incidentId, payload, ...(headers === undefined ? {} : { headers }) }),
  };
}

/**
 * Runs `handler` for each message of a durable pull consumer, after the envelope opened
 * it (see `startConsumer` in consumer.ts for the acknowledgement rules).
 *
 * The receiver's `skewMs` bounds how old a frame may be when it is consumed: a consumer
 * of a durable stream must allow for its backlog (a ledger down for an hour meets hour-old
 * frames), or backlog frames are rejected as stale and terminated.
 */
export function startStreamConsumer(
  bus: Bus,
  receiver: StreamReceiver,
  spec: ConsumerSpec,
  handler: DeliveryHandler,
  rejections: RejectionReporter,
): Promise<RunningConsumer> {
  // Uncommitted frames are held at most until acknowledged; JetStream caps those at max_ack_pending.
  const opener = openerOf(receiver, (spec.maxAckPending ?? 256) + 64);
  return startConsumer(bus, spec, opener, handler, rejections);
}

/**
 * A rejection reporter that publishes `bulwark.evt.bus.rejected` through `events` (sealed
 * to the ledger), rate-limited as RejectionReporter describes.
 */
export function createRejectionReporter(
  events: EventPublisher,
  options: Omit<RejectionReporterOptions, 'publish'>,
): RejectionReporter {
  const encoder = new TextEncoder();
  return new RejectionReporter({
    ...options,
    publish: async (event) => {
      await events.publish({ subject: Events.bus.rejected, eventId: event.event_id, payload: encoder.encode(JSON.stringify(event)) });
    },
  });
}
