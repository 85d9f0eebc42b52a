/**
 * The `security.violation` events the ledger records about messages it refuses (DESIGN §3a,
 * CONTRACTS §2): an event its producer may not produce (`ledger.forbidden_producer`), an
 * authentic message that does not decode (`ledger.undecodable`), or a rotation of the ledger's own
 * key that it cannot follow (`ledger.rotation_key_not_held`, `ledger.rotation_version_not_next`,
 * `ledger.rotation_key_reused`, `ledger.rotation_malformed`). The ledger itself is their
 * producer (svc.audit-ledger); `agent_id` names the real producer of a forbidden event.
 *
 * Bounded: at most one violation per refused message (it counts the events refused with it),
 * and at most `burst` per producer, refilled one per `refillMs`. Beyond that a refused message
 * is still refused (and acknowledged: it will never be valid), and only counted; the next
 * violation recorded for that producer carries the counts (`suppressed_messages`,
 * `suppressed_events`), and `flush()` (the service calls it every `refillMs`) records a
 * `ledger.violations_suppressed` summary for a producer that went quiet. So a flood of
 * forbidden messages grows the ledger by at most `burst` + one per `refillMs` per producer.
 * (The counts of a process that crashes before its flush are lost with it.)
 *
 * A violation's event id is derived from the refused frame (sender, session, counter) under a
 * key only the ledger holds: a redelivery of the same frame after a crash records the same id,
 * which the ledger's dedupe turns into a no-op, and a producer cannot predict the id to take it
 * first with an event of its own. The key is derived from the ledger's genesis (version-1) secret
 * key, which its store keeps across rotations, so the ids stay the same after the ledger rotated.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import type { BulwarkError } from '@bulwark/errors';
import { newEventId, type AuditEvent, type JsonObject } from '@bulwark/events';
import type { ForbiddenProducerError } from '../errors.js';

/** What the recorder needs of a bus delivery (a subset of @bulwark/bus's Delivery). */
export interface RefusedDelivery {
  readonly subject: string;
  readonly meta: { readonly sender: string; readonly sessionId: string; readonly counter: bigint };
  readonly msgId: string | undefined;
  readonly streamSeq: number;
}

/** Why a rotation of the ledger's own key was refused before it reached the batcher (service.ts). */
export interface OwnRotationRefusal {
  readonly kind: 'ledger.rotation_key_not_held' | 'ledger.rotation_version_not_next' | 'ledger.rotation_key_reused' | 'ledger.rotation_malformed';
  /** The refused rotation event's id (a validated UUIDv7). */
  readonly eventId: string;
  readonly version: number | null;
  readonly why: string;
}

export interface ViolationBudget {
  /** Violations a producer may cause at once. */
  readonly burst: number;
  /** One more every this many milliseconds. */
  readonly refillMs: number;
}

export const DEFAULT_VIOLATION_BUDGET: ViolationBudget = Object.freeze({ burst: 20, refillMs: 3000 });

/** Producers tracked at once; beyond it the quietest entries (full budget, nothing suppressed) are dropped first. */
const MAX_TRACKED = 10_000;
const MAX_REASON = 500;

interface Bucket {
  tokens: number;
  at: number;
  suppressedMessages: number;
  suppressedEvents: number;
}

export interface ViolationRecorderOptions {
  readonly crypto: Pick<CryptoProvider, 'hmacSha256' | 'hkdfSha256'>;
  /** The ledger's principal: the violations' producer, and agent_id of undecodable ones. */
  readonly ledgerId: string;
  /** Secret key material of the ledger that outlives its rotations (its genesis Ed25519 secret key): the id key is derived from it. */
  readonly secret: Uint8Array;
  readonly budget?: ViolationBudget;
  readonly now?: () => number;
}

export class ViolationRecorder {
  readonly #crypto: ViolationRecorderOptions['crypto'];
  readonly #ledgerId: string;
  readonly #idKey: Uint8Array;
  readonly #budget: ViolationBudget;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #suppressed = 0;

  constructor(options: ViolationRecorderOptions) {
    this.#crypto = options.crypto;
    this.#ledgerId = options.ledgerId;
    this.#idKey = options.crypto.hkdfSha256(options.secret, new Uint8Array(0), new TextEncoder().encode('bulwark.ledger.violation-id.v1'), 32);
    this.#budget = options.budget ?? DEFAULT_VIOLATION_BUDGET;
    this.#now = options.now ?? Date.now;
  }

  /** Refused messages recorded only as a count so far (metrics). */
  get suppressed(): number {
    return this.#suppressed;
  }

  /** The violation for a message refused because its producer may not produce one of its events; undefined when over budget. */
  forbidden(delivery: RefusedDelivery, error: ForbiddenProducerError): AuditEvent | undefined {
    const c = error.context;
    const refused = c.messageEvents ?? 1;
    return this.#record(delivery.meta.sender, refused, (suppressed) => ({
      eventId: this.#frameId(delivery, timeOfUuidV7(c.eventId)),
      timestamp: this.#now(),
      agentId: delivery.meta.sender,
      eventType: 'security.violation',
      details: {
        kind: 'ledger.forbidden_producer',
        producer: delivery.meta.sender,
        claimed_event_type: c.eventType,
        claimed_agent_id: c.agentId,
        claimed_event_id: c.eventId,
        subject: delivery.subject,
        reason: c.reason.slice(0, MAX_REASON),
        refused_events: refused,
        msg_id: delivery.msgId ?? null,
        stream_seq: delivery.streamSeq,
        ...suppressed,
      },
    }));
  }

  /** The violation for a message that rotates the ledger's own key to a key it does not hold, or out of order (service.ts); undefined when over budget. */
  ownRotation(delivery: RefusedDelivery, refusal: OwnRotationRefusal, refused: number): AuditEvent | undefined {
    return this.#record(delivery.meta.sender, refused, (suppressed) => ({
      eventId: this.#frameId(delivery, timeOfUuidV7(refusal.eventId)),
      timestamp: this.#now(),
      agentId: delivery.meta.sender,
      eventType: 'security.violation',
      details: {
        kind: refusal.kind,
        producer: delivery.meta.sender,
        claimed_event_id: refusal.eventId,
        claimed_version: refusal.version,
        subject: delivery.subject,
        reason: refusal.why.slice(0, MAX_REASON),
        refused_events: refused,
        msg_id: delivery.msgId ?? null,
        stream_seq: delivery.streamSeq,
        ...suppressed,
      },
    }));
  }

  /** The violation for an authentic message that is not a valid event; undefined when over budget. */
  undecodable(delivery: RefusedDelivery, error: BulwarkError): AuditEvent | undefined {
    return this.#record(delivery.meta.sender, 1, (suppressed) => ({
      // No valid event id to take the time from: the id's time is now (a redelivery after a crash may record it again).
      eventId: this.#frameId(delivery, this.#now()),
      timestamp: this.#now(),
      agentId: this.#ledgerId,
      eventType: 'security.violation',
      details: {
        kind: 'ledger.undecodable',
        sender: delivery.meta.sender,
        subject: delivery.subject,
        msg_id: delivery.msgId ?? null,
        stream_seq: delivery.streamSeq,
        reason: error.message.slice(0, MAX_REASON),
        ...suppressed,
      },
    }));
  }

  /** A summary violation for each producer with suppressed messages whose budget allows one again. */
  flush(): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const [producer, bucket] of this.#buckets) {
      this.#refill(bucket);
      if (bucket.suppressedMessages === 0) {
        if (bucket.tokens >= this.#budget.burst) this.#buckets.delete(producer);
        continue;
      }
      if (bucket.tokens < 1) continue;
      bucket.tokens -= 1;
      out.push({
        eventId: newEventId(),
        timestamp: this.#now(),
        agentId: producer,
        eventType: 'security.violation',
        details: { kind: 'ledger.violations_suppressed', producer, suppressed_messages: bucket.suppressedMessages, suppressed_events: bucket.suppressedEvents },
      });
      bucket.suppressedMessages = 0;
      bucket.suppressedEvents = 0;
    }
    return out;
  }

  #record(producer: string, events: number, make: (suppressed: JsonObject) => AuditEvent): AuditEvent | undefined {
    const bucket = this.#bucket(producer);
    this.#refill(bucket);
    if (bucket.tokens < 1) {
      bucket.suppressedMessages += 1;
      bucket.suppressedEvents += events;
      this.#suppressed += 1;
      return undefined;
    }
    bucket.tokens -= 1;
    const suppressed: JsonObject = bucket.suppressedMessages === 0 ? {} : { suppressed_messages: bucket.suppressedMessages, suppressed_events: bucket.suppressedEvents };
    bucket.suppressedMessages = 0;
    bucket.suppressedEvents = 0;
    return make(suppressed);
  }

  #bucket(producer: string): Bucket {
    let bucket = this.#buckets.get(producer);
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_TRACKED) this.#evict();
      bucket = { tokens: this.#budget.burst, at: this.#now(), suppressedMessages: 0, suppressedEvents: 0 };
      this.#buckets.set(producer, bucket);
    }
    return bucket;
  }

  #refill(bucket: Bucket): void {
    const now = this.#now();
    const earned = Math.floor((now - bucket.at) / this.#budget.refillMs);
    if (earned <= 0) return;
    bucket.tokens = Math.min(this.#budget.burst, bucket.tokens + earned);
    bucket.at = bucket.tokens >= this.#budget.burst ? now : bucket.at + earned * this.#budget.refillMs;
  }

  /** Drops entries with nothing to report; if none, the oldest (its counts are lost: a bound on memory, not on the ledger). */
  #evict(): void {
    for (const [producer, bucket] of this.#buckets) {
      this.#refill(bucket);
      if (bucket.suppressedMessages === 0 && bucket.tokens >= this.#budget.burst) this.#buckets.delete(producer);
    }
    if (this.#buckets.size >= MAX_TRACKED) this.#buckets.delete(this.#buckets.keys().next().value!);
  }

  /** A UUIDv7 with this time, the rest keyed by the frame's identity (see the module comment). */
  #frameId(delivery: RefusedDelivery, timeMs: number): string {
    const { sender, sessionId, counter } = delivery.meta;
    const mac = this.#crypto.hmacSha256(this.#idKey, new TextEncoder().encode(`${sender}\n${sessionId}\n${counter}`));
    return uuidV7(timeMs, mac);
  }
}

/** The 48-bit millisecond time of a (validated, lowercase) UUIDv7. */
function timeOfUuidV7(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** RFC 9562 §5.7: 48 bits of time, version 7, 12 + 62 bits from `random` (at least 10 bytes). */
function uuidV7(timeMs: number, random: Uint8Array): string {
  const b = new Uint8Array(16);
  let t = Math.max(0, Math.min(Math.floor(timeMs), 2 ** 48 - 1));
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = 0x70 | (random[0]! & 0x0f);
  b[7] = random[1]!;
  b[8] = 0x80 | (random[2]! & 0x3f);
  b.set(random.subarray(3, 10), 9);
  const hex = Buffer.from(b).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
