import { newEvent, newEventId, type AuditEvent, type JsonObject } from '@bulwark/events';
import { decisionToJson, type Decision } from '@bulwark/policy-language';
import { LRUCache } from 'lru-cache';

/** One decision waiting to be recorded; the request text is parsed and masked off the hot path. */
interface PendingDecision {
  readonly at: number;
  readonly peer: string;
  readonly requestText: string;
  readonly decision: Decision;
}

export interface DecisionLogOptions {
  /** Publishes one batch (an AuditEventBatch sealed to the ledger); resolves once stored. Same batchId on a retry. */
  readonly publish: (batchId: string, events: readonly AuditEvent[]) => Promise<void>;
  /** Masks configured request fields (see mask.ts). */
  readonly mask: (request: unknown) => unknown;
  /** Decisions held at most (default 10 000); past that, new requests are denied. */
  readonly maxQueue?: number;
  /** Events per batch (default 256). */
  readonly maxBatch?: number;
  /** How long a decision may wait for more to batch with (default 20 ms). */
  readonly lingerMs?: number;
  /** Delay before retrying a failed batch, doubling up to 5 s (default 100 ms). */
  readonly retryMs?: number;
  readonly onError?: (error: unknown) => void;
}

export interface DecisionLogMetrics {
  readonly queued: number;
  readonly recorded: number;
  readonly batches: number;
  readonly failures: number;
  /** Requests denied because the log could not take their decision (queue full or ledger failing). */
  readonly refused: number;
  readonly failing: boolean;
}

/** Decisions turned into events between two turns of the event loop (see #buildBatch). */
const BUILD_SLICE = 16;

/** Largest request text kept in a decision event; larger requests are logged by size only. */
const MAX_LOGGED_REQUEST = 16 * 1024;

/**
 * Every decision becomes a `policy.decision` audit event (DESIGN §5), off the request path:
 * `offer` only queues; a loop builds events, batches them and publishes each batch as one
 * AuditEventBatch. The queue is bounded, and `offer` refuses (the service then denies the
 * request, fail secure) while the queue is full or while the last publish failed: with
 * audit on, no decision is returned that the ledger is not going to receive. Decisions
 * already queued are retried with the same batch id (JetStream dedupes a retried batch).
 * A crash loses at most the queued decisions (at most `maxQueue`, at most ~lingerMs old).
 */
export class DecisionLog {
  readonly #o: Required<Omit<DecisionLogOptions, 'onError'>> & Pick<DecisionLogOptions, 'onError'>;
  #queue: PendingDecision[] = [];
  #inFlight: { id: string; events: readonly AuditEvent[] } | undefined;
  #failing = false;
  #lastError: unknown;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #m = { recorded: 0, batches: 0, failures: 0, refused: 0 };
  readonly #details = new LRUCache<string, { decision: Decision; peer: string; agentId: string; details: JsonObject }>({ max: 1024 });
  #retryMs: number;

  constructor(options: DecisionLogOptions) {
    this.#o = { maxQueue: 10_000, maxBatch: 256, lingerMs: 20, retryMs: 100, ...options };
    this.#retryMs = this.#o.retryMs;
  }

  /** True while a new decision can be recorded. */
  get accepting(): boolean {
    return !this.#stopped && !this.#failing && this.#queue.length < this.#o.maxQueue;
  }

  /** Queues the decision, or returns false (the caller must deny). */
  offer(peer: string, requestText: string, decision: Decision): boolean {
    if (!this.accepting) {
      this.#m.refused++;
      return false;
    }
    this.#queue.push({ at: Date.now(), peer, requestText, decision });
    this.#schedule(this.#queue.length >= this.#o.maxBatch ? 0 : this.#o.lingerMs);
    return true;
  }

  /** Why the last publish failed, while the log is failing (else undefined). */
  get failure(): unknown {
    return this.#failing ? this.#lastError : undefined;
  }

  /** True while the queue is at its bound (new decisions are refused). */
  get full(): boolean {
    return this.#queue.length >= this.#o.maxQueue;
  }

  /** When the oldest decision not yet stored in BULWARK_EVENTS was made (queued or in a batch being published), or undefined. */
  oldestPendingAt(): number | undefined {
    const inFlight = this.#inFlight?.events[0]?.timestamp;
    return inFlight ?? this.#queue[0]?.at;
  }

  metrics(): DecisionLogMetrics {
    return { queued: this.#queue.length + (this.#inFlight?.events.length ?? 0), ...this.#m, failing: this.#failing };
  }

  /** Publishes what is queued (waiting at most `timeoutMs`), then refuses further decisions. */
  async stop(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#queue.length > 0 || this.#inFlight !== undefined) && Date.now() < deadline) {
      if (this.#running === undefined) this.#schedule(0);
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    if (this.#running !== undefined || this.#stopped) return;
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#flush().finally(() => {
        this.#running = undefined;
        if (this.#queue.length > 0 || this.#inFlight !== undefined) this.#schedule(this.#failing ? this.#retryMs : 0);
      });
    }, delayMs);
  }

  async #flush(): Promise<void> {
    try {
      this.#inFlight ??= { id: newEventId(), events: await this.#buildBatch() };
      const batch = this.#inFlight;
      await this.#o.publish(batch.id, batch.events);
      this.#inFlight = undefined;
      this.#m.recorded += batch.events.length;
      this.#m.batches++;
      this.#failing = false;
      this.#lastError = undefined;
      this.#retryMs = this.#o.retryMs;
    } catch (e) {
      this.#m.failures++;
      this.#failing = true;
      this.#lastError = e;
      this.#retryMs = Math.min(5000, this.#retryMs * 2);
      this.#o.onError?.(e);
    }
  }

  /**
   * The events of the oldest queued decisions (at most maxBatch), built BUILD_SLICE decisions
   * at a time with a turn of the event loop between slices: requests that arrive meanwhile are
   * answered in between rather than after the whole batch. The decisions stay queued (counted,
   * and waited for by stop()) until their events exist.
   */
  async #buildBatch(): Promise<AuditEvent[]> {
    const count = Math.min(this.#queue.length, this.#o.maxBatch);
    const events: AuditEvent[] = [];
    for (let at = 0; at < count; at += BUILD_SLICE) {
      if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      for (const p of this.#queue.slice(at, Math.min(at + BUILD_SLICE, count))) events.push(...this.#toEvents(p));
    }
    this.#queue.splice(0, count);
    return events;
  }

  /**
   * The decision event, and for a Deny that a policy rule decided (a deny rule or an unmet
   * requirement, not the default deny) a `policy.violation` event too, which incident
   * detectors consume (DESIGN §7); it names the decision event it belongs to.
   */
  #toEvents(p: PendingDecision): AuditEvent[] {
    const decision = this.#toEvent(p);
    const d = p.decision;
    if (d.decision !== 'Deny' || d.policy === null) return [decision];
    const details = { decisionEventId: decision.eventId, policy: d.policy, version: d.version, rule: d.rule, ruleText: d.ruleText, reason: d.reason, setVersion: d.setVersion, peer: p.peer };
    return [decision, newEvent({ agentId: decision.agentId, eventType: 'policy.violation', timestamp: p.at, details: details as JsonObject })];
  }

  #toEvent(p: PendingDecision): AuditEvent {
    // The same request decided the same way for the same peer has the same details: built,
    // masked and canonicalised once, then shared by every event that records it.
    const memo = this.#details.get(p.requestText);
    if (memo !== undefined && memo.decision === p.decision && memo.peer === p.peer) {
      return newEvent({ agentId: memo.agentId, eventType: 'policy.decision', timestamp: p.at, details: memo.details });
    }
    const event = this.#buildEvent(p);
    this.#details.set(p.requestText, { decision: p.decision, peer: p.peer, agentId: event.agentId, details: event.details });
    return event;
  }

  #buildEvent(p: PendingDecision): AuditEvent {
    const d = p.decision;
    const details: Record<string, unknown> = {
      decision: d.decision,
      policy: d.policy,
      version: d.version,
      rule: d.rule,
      ruleText: d.ruleText,
      setVersion: d.setVersion,
      peer: p.peer,
    };
    const json = decisionToJson(d);
    for (const field of ['reason', 'conditions', 'approver', 'approvers', 'audit', 'diagnostics'] as const) {
      if (json[field] !== undefined) details[field] = json[field];
    }
    details['request'] = this.#loggedRequest(p.requestText);
    try {
      return newEvent({ agentId: p.peer, eventType: 'policy.decision', timestamp: p.at, details: details as JsonObject });
    } catch {
      // Details the ledger would refuse (too large once conditions are added), or a peer id
      // that is not a principal id: keep the decision under the service's own id, drop the request.
      const kept = { ...(details as JsonObject), request: { omitted: 'details too large or peer id not a principal id' } };
      return newEvent({ agentId: 'svc.policy', eventType: 'policy.decision', timestamp: p.at, details: kept });
    }
  }

  #loggedRequest(text: string): unknown {
    if (text.length > MAX_LOGGED_REQUEST) return { omitted: 'request too large', characters: text.length };
    try {
      return this.#o.mask(JSON.parse(text));
    } catch {
      return { omitted: 'request is not JSON', characters: text.length };
    }
  }
}
