import { randomUUID } from 'node:crypto';
import { consumerBacklog, ledgerControlSubject, LEDGER_PRINCIPAL, startStreamConsumer, type Bus, type RejectionReporter, type RunningConsumer } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import type { ChannelReceiver, SealedReceiver } from '@bulwark/envelope';
import { checkSealedEvent, decodeEventBatch, isLedgerEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { PolicyServiceError } from './errors.js';

const POLICY_CHANGE_TYPES: ReadonlySet<EventType> = new Set<EventType>(['policy.registered', 'policy.updated', 'policy.rolledback']);

export interface LedgerFollowerOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** This service's principal: the ledger seals its control batches to it, on its own subject. */
  readonly self: string;
  /** Opens the ledger's re-published frames (the envelope mode is the ledger's choice). */
  readonly receiver: SealedReceiver | ChannelReceiver;
  /** The ledger's Ed25519 public key: every event's hash and signature are checked against it. */
  readonly ledgerPublicKey: Uint8Array;
  readonly rejections: RejectionReporter;
  /** Called for each authentic committed policy event, in stream order. */
  readonly onEvent: (event: LedgerEvent) => void;
  /** Called for a frame that is authentic on the bus but is not a valid ledger event (logged, never applied). */
  readonly onInvalid: (why: string, streamSeq: number) => void;
}

export interface LedgerFollower {
  /** Resolves once every message in the stream at start has been handled (the replay caught up). */
  caughtUp(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Follows the ledger's control-plane batches sealed to this service on BULWARK_LEDGER
 * (`bulwark.ledger.control.<self>`: policy, key and tool-pin events only, so a start does not
 * replay every decision ever made) from the first message, on a durable of its own (each instance rebuilds the whole
 * state, DESIGN §4), which the server deletes a minute after the instance is gone. Only
 * events re-published by the ledger count: the frame must come from the ledger's principal
 * and each policy event must carry a valid hash and ledger signature; anything else is
 * reported and skipped. Control events of other services are skipped before any check.
 */
export async function followLedger(options: LedgerFollowerOptions): Promise<LedgerFollower> {
  const durable = `policy-${randomUUID()}`;
  const consumer: RunningConsumer = await startStreamConsumer(
    options.bus,
    options.receiver,
    { stream: 'ledger', durable, filterSubject: ledgerControlSubject(options.self), inactiveThresholdMs: 60_000, maxDeliver: 3, retryInitialMs: 50 },
    async (delivery) => {
      if (delivery.meta.sender !== LEDGER_PRINCIPAL) return options.onInvalid(`sent by ${delivery.meta.sender}, not the ledger`, delivery.streamSeq);
      let events;
      try {
        events = decodeEventBatch(delivery.plaintext);
      } catch (e) {
        return options.onInvalid(e instanceof Error ? e.message : String(e), delivery.streamSeq);
      }
      for (const event of events) {
        if (!POLICY_CHANGE_TYPES.has(event.eventType)) continue;
        if (!isLedgerEvent(event)) {
          options.onInvalid(`event ${event.eventId} has no chain fields`, delivery.streamSeq);
          continue;
        }
        const problem = checkSealedEvent(options.provider, options.ledgerPublicKey, event);
        if (problem !== null) {
          options.onInvalid(`event ${event.eventId} at seq ${event.seq}: ${problem}`, delivery.streamSeq);
          continue;
        }
        options.onEvent(event);
      }
    },
    options.rejections,
  );
  return {
    async caughtUp(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const backlog = await consumerBacklog(options.bus, 'ledger', durable);
        if (backlog.pending === 0 && backlog.ackPending === 0) return;
        if (Date.now() > deadline) {
          throw new PolicyServiceError('E_POLICY_BOOT', `policy service: ledger replay did not catch up within ${timeoutMs} ms (${backlog.pending} pending)`, { ...backlog, timeoutMs });
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop: () => consumer.stop(),
  };
}
