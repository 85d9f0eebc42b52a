import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type ConsumerConfig, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import { describe } from './connect.js';
import { BusConfigError } from './errors.js';
import { headersCarrier, Headers } from './headers.js';
import type { FrameMeta, Opened, Rejected, StreamOpener } from './internal/frames.js';
import { runInExtractedTrace } from './internal/trace.js';
import { outOfNamespace } from './namespace.js';
import type { RejectionReporter } from './rejections.js';
import { assertToken, type StreamKey } from './subjects.js';

export interface ConsumerSpec {
  readonly stream: StreamKey;
  /** Durable name: one per consuming service (every instance shares it, and the work). */
  readonly durable: string;
  /** One subject filter (un-namespaced). NATS 2.9 takes only one per consumer. */
  readonly filterSubject?: string;
  /** How long a delivery may stay unacknowledged before JetStream redelivers it (default 30 s). */
  readonly ackWaitMs?: number;
  /** Deliveries before the bus gives up on a message and terminates it (default 10). */
  readonly maxDeliver?: number;
  /** Unacknowledged messages in flight across all instances (default 256). */
  readonly maxAckPending?: number;
  /** Redelivery delay after a handler failure: initial · 2^(delivery−1), capped (default 500 ms, 30 s). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** How long stop() waits for the handlers in progress (default 5 s). */
  readonly stopTimeoutMs?: number;
  /**
   * Messages this consumer hands to the handler at once (default 1: one at a time, in stream
   * order). Above 1, a handler that groups messages (e.g. into one database transaction)
   * gets them without one pull loop per message. Each message is still acknowledged only
   * after its own handler succeeded; a redelivery that arrives while the first delivery's
   * handler still runs is handled again, so such a handler must be idempotent.
   */
  readonly concurrency?: number;
  /**
   * Let the server delete the durable after this long without a consumer (NATS 2.9+).
   * For a per-instance durable (a projection that replays the whole stream on every boot),
   * so that instances that are gone do not leave their consumers behind. Default: never.
   */
  readonly inactiveThresholdMs?: number;
  /**
   * Envelope rejections worth another delivery instead of a term (each still reported), up to
   * maxDeliver, `retryInitialMs`·2^(delivery−1) apart: `E_UNKNOWN_EPOCH` for a channel reader
   * that learns a new epoch from the ledger a moment after the first frame under it arrives.
   */
  readonly redeliverRejected?: readonly string[];
  /**
   * Called when a frame rejected for one of `redeliverRejected` is terminated after its last
   * delivery: its owner learns that a frame was given up (e.g. to take its content another,
   * verified way) instead of the frame just being gone.
   */
  readonly onRejectedGivenUp?: (given: { readonly reason: string; readonly streamSeq: number; readonly deliveries: number }) => void;
}

/** One authenticated, decrypted message, as a handler sees it. */
export interface Delivery {
  /** The subject without the namespace prefix. */
  readonly subject: string;
  readonly plaintext: Uint8Array;
  /** Authenticated sender, session and counter from the envelope. */
  readonly meta: FrameMeta;
  /** `Nats-Msg-Id` (the event id), if the publisher set one. */
  readonly msgId: string | undefined;
  readonly streamSeq: number;
  /** A message header in the clear (e.g. CloudEvents `ce-*` attributes on the SOC stream); undefined when absent. */
  readonly header: (name: string) => string | undefined;
  /** 1 on first delivery. */
  readonly deliveryCount: number;
}

export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

export interface ConsumerMetrics {
  readonly processed: number;
  /** Authentic redeliveries of frames already processed here: acknowledged, handler not run. */
  readonly duplicates: number;
  /** Frames that failed an envelope check: terminated, handler not run. */
  readonly rejected: number;
  /** Handler failures, each answered with a delayed nak. */
  readonly failures: number;
  /** Messages terminated after maxDeliver failed attempts. */
  readonly exhausted: number;
}

export interface RunningConsumer {
  stop(): Promise<void>;
  metrics(): ConsumerMetrics;
}

const DEFAULTS = { ackWaitMs: 30_000, maxDeliver: 10, maxAckPending: 256, retryInitialMs: 500, retryMaxMs: 30_000, stopTimeoutMs: 5_000, concurrency: 1 };
/** Messages a pull keeps buffered ahead of the handlers. */
const PULL_BATCH = 64;

/**
 * Creates the durable pull consumer, or reconciles an existing one (ack wait, max
 * deliver and max ack pending are updated in place; a different filter is an error,
 * since it would silently change which messages the durable owns).
 */
export async function ensureConsumer(bus: Bus, spec: ConsumerSpec): Promise<'created' | 'unchanged' | 'updated'> {
  assertToken(spec.durable, 'durable consumer name');
  const stream = bus.streamName(spec.stream);
  const s = { ...DEFAULTS, ...spec };
  const desired: Partial<ConsumerConfig> = {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(s.ackWaitMs),
    max_deliver: s.maxDeliver,
    max_ack_pending: s.maxAckPending,
    ...(spec.filterSubject !== undefined ? { filter_subject: bus.subject(spec.filterSubject) } : {}),
    ...(spec.inactiveThresholdMs !== undefined ? { inactive_threshold: nanos(spec.inactiveThresholdMs) } : {}),
  };
  const where = `consumer ${spec.durable} on stream ${stream} (${bus.url})`;
  for (let attempt = 0; ; attempt++) {
    let existing: ConsumerConfig | undefined;
    try {
      existing = (await natsOf(bus).jsm.consumers.info(stream, spec.durable)).config;
    } catch (cause) {
      if (!(cause instanceof JetStreamApiError && cause.code === JetStreamApiCodes.ConsumerNotFound)) {
        throw new BusConfigError('E_BUS_CONSUMER', `cannot read ${where}: ${describe(cause)}`, { stream, durable: spec.durable }, { cause });
      }
    }
    if (existing === undefined) {
      try {
        await natsOf(bus).jsm.consumers.add(stream, desired);
        return 'created';
      } catch (cause) {
        if (attempt === 0 && cause instanceof JetStreamApiError) continue;
        throw new BusConfigError('E_BUS_CONSUMER', `cannot create ${where}: ${describe(cause)}`, { stream, durable: spec.durable }, { cause });
      }
    }
    if ((existing.filter_subject ?? '') !== (desired.filter_subject ?? '')) {
      throw new BusConfigError(
        'E_BUS_CONSUMER_CONFLICT',
        `${where} exists with filter "${existing.filter_subject ?? ''}", want "${desired.filter_subject ?? ''}": delete it or pick another durable name`,
        { stream, durable: spec.durable },
      );
    }
    if (existing.ack_wait === desired.ack_wait && existing.max_deliver === desired.max_deliver && existing.max_ack_pending === desired.max_ack_pending) {
      return 'unchanged';
    }
    try {
      await natsOf(bus).jsm.consumers.update(stream, spec.durable, {
        ack_wait: desired.ack_wait!,
        max_deliver: desired.max_deliver!,
        max_ack_pending: desired.max_ack_pending!,
      });
      return 'updated';
    } catch (cause) {
      throw new BusConfigError('E_BUS_CONSUMER', `cannot update ${where}: ${describe(cause)}`, { stream, durable: spec.durable }, { cause });
    }
  }
}

/**
 * How many messages the durable has not yet had acknowledged: those not delivered yet
 * (`pending`) and those delivered and awaiting their ack (`ackPending`). A projection that
 * replays a stream on boot is caught up when both are 0.
 */
export async function consumerBacklog(bus: Bus, stream: StreamKey, durable: string): Promise<{ pending: number; ackPending: number; ackFloor: number }> {
  const name = bus.streamName(stream);
  try {
    const info = await natsOf(bus).jsm.consumers.info(name, durable);
    // ack_floor.stream_seq: every message of the stream up to it that the durable owns was acknowledged (or terminated).
    return { pending: info.num_pending, ackPending: info.num_ack_pending, ackFloor: info.ack_floor.stream_seq };
  } catch (cause) {
    throw new BusConfigError('E_BUS_CONSUMER', `cannot read consumer ${durable} on stream ${name} (${bus.url}): ${describe(cause)}`, { stream: name, durable }, { cause });
  }
}

/**
 * Runs `handler` for each message of the durable consumer, one at a time, in stream order
 * (or up to `concurrency` at a time).
 *
 * - A frame that fails an envelope check is terminated (never redelivered), counted and
 *   reported; the handler never sees it.
 * - An authentic frame already processed by this process (same session and counter) is
 *   acknowledged without running the handler: the replay window reports it as a duplicate.
 * - The handler succeeds → the counter is committed to the replay window, then the
 *   message is acknowledged; the server's confirmation is awaited beside the next
 *   deliveries (and by stop()), not before them.
 * - The handler throws → nak with an exponential delay; after maxDeliver attempts, term.
 *
 * Delivery to handlers is at-least-once across processes: see the README's guarantees.
 */
/** @internal over any opener port; the public entry is startStreamConsumer. */
export async function startConsumer(
  bus: Bus,
  spec: ConsumerSpec,
  opener: StreamOpener,
  handler: DeliveryHandler,
  rejections: RejectionReporter,
): Promise<RunningConsumer> {
  const s = { ...DEFAULTS, ...spec };
  if (!Number.isSafeInteger(s.concurrency) || s.concurrency < 1) {
    throw new BusConfigError('E_BUS_CONSUMER', `consumer ${spec.durable}: concurrency must be a positive integer, got ${s.concurrency}`, { durable: spec.durable });
  }
  await ensureConsumer(bus, spec);
  const consumer = await natsOf(bus).js.consumers.get(bus.streamName(spec.stream), spec.durable);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: Math.max(PULL_BATCH, s.concurrency), expires: 5_000 });
  const m = { processed: 0, duplicates: 0, rejected: 0, failures: 0, exhausted: 0 };
  // The server's confirmations of acks sent: awaited beside the next deliveries, never before
  // them. Waiting for one before handing over the next message held an in-order consumer for
  // the whole JetStream API timeout (5 s) whenever a confirmation was late or lost, though the
  // ack itself is on the wire as soon as `ackAck` is called (and a lost ack only means a
  // redelivery, acked as a duplicate below).
  const confirming = new Set<Promise<unknown>>();
  const acknowledge = (msg: JsMsg): void => {
    const confirmed = msg.ackAck().catch(() => false);
    confirming.add(confirmed);
    void confirmed.then(() => confirming.delete(confirmed));
  };

  const handle = async (msg: JsMsg): Promise<void> => {
    const subject = outOfNamespace(bus.namespace, msg.subject);
    // An opener that throws (a bug, not a bad frame) still must not let the frame through.
    const opened: Opened = await opener.open(msg.data).catch((): Rejected => ({ kind: 'rejected', reason: 'E_OPEN_FAILED' }));
    switch (opened.kind) {
      case 'rejected': {
        m.rejected += 1;
        rejections.report({ reason: opened.reason, sender: opened.sender, subject });
        const worthAnother = spec.redeliverRejected?.includes(opened.reason) === true;
        if (worthAnother && msg.info.deliveryCount < s.maxDeliver) {
          msg.nak(Math.min(s.retryMaxMs, s.retryInitialMs * 2 ** (msg.info.deliveryCount - 1)));
          return;
        }
        // No term reason: NATS 2.9 ignores a `+TERM <reason>` ack and would redeliver.
        msg.term();
        if (worthAnother) spec.onRejectedGivenUp?.({ reason: opened.reason, streamSeq: msg.seq, deliveries: msg.info.deliveryCount });
        return;
      }
      case 'duplicate':
        m.duplicates += 1;
        acknowledge(msg);
        return;
      case 'accepted': {
        const carrier = headersCarrier(msg.headers);
        const delivery: Delivery = {
          subject,
          plaintext: opened.plaintext,
          meta: opened.meta,
          msgId: carrier.get(Headers.msgId),
          streamSeq: msg.seq,
          header: (name) => carrier.get(name),
          deliveryCount: msg.info.deliveryCount,
        };
        try {
          await runInExtractedTrace(carrier, () => handler(delivery));
        } catch {
          m.failures += 1;
          if (msg.info.deliveryCount >= s.maxDeliver) {
            m.exhausted += 1;
            opened.abandon();
            msg.term();
          } else {
            msg.nak(Math.min(s.retryMaxMs, s.retryInitialMs * 2 ** (msg.info.deliveryCount - 1)));
          }
          return;
        }
        opened.commit();
        m.processed += 1;
        // If the ack is lost, the redelivery meets the committed counter and is acked as a duplicate.
        acknowledge(msg);
        return;
      }
      default: {
        const never: never = opened;
        throw new Error(`unhandled open outcome ${String(never)}`);
      }
    }
  };

  const settle = (msg: JsMsg): Promise<void> =>
    handle(msg).catch(() => {
      try {
        msg.nak(s.retryInitialMs);
      } catch {
        // Connection gone: JetStream redelivers once the ack wait expires.
      }
    });
  const loop = (async () => {
    const inHand = new Set<Promise<void>>();
    try {
      for await (const msg of messages) {
        const settled = settle(msg);
        inHand.add(settled);
        void settled.then(() => inHand.delete(settled));
        if (inHand.size >= s.concurrency) await Promise.race(inHand);
      }
    } finally {
      await Promise.all(inHand);
      await Promise.all(confirming);
    }
  })();
  // The loop must never become an unhandled rejection (Node would exit on it).
  const finished = loop.catch(() => undefined);

  let stopping: Promise<void> | undefined;
  const running: RunningConsumer = {
    stop() {
      stopping ??= (async () => {
        untrack();
        // A handler that never returns must not hold close() forever (closing the
        // iterator waits for it too): its message stays unacknowledged and JetStream
        // redelivers it after the ack wait.
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, s.stopTimeoutMs);
        });
        const closed = messages.close().catch(() => undefined);
        await Promise.race([Promise.all([closed, finished]), timeout]);
        clearTimeout(timer);
      })();
      return stopping;
    },
    metrics: () => ({ ...m }),
  };
  const untrack = bus.track(running);
  return running;
}
