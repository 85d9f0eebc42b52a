import { Events, type EventPublisher } from '@bulwark/bus';
import { encodeEvent, newEvent, type AuditEvent, type JsonObject } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';

export interface AlertMetrics {
  readonly raised: number;
  /** Alerts stored in BULWARK_EVENTS (for the ledger). */
  readonly recorded: number;
  /** Raised, not yet stored: the stream refuses them (full) or is unreachable; retried. */
  readonly pending: number;
}

/** Alerts waiting for the stream at most; past that the oldest waiting one is dropped (it was logged). */
const MAX_PENDING = 32;

/**
 * Raises operational alerts: each is logged at error level at once (the log line is the
 * alert when the audit path itself is what failed), counted, and recorded as an
 * `alert.raised` event when BULWARK_EVENTS takes it. A full stream refuses it too, so a
 * pending alert is retried with the same event id (JetStream dedupes) until it is stored:
 * the audit trail says what happened once there is room again.
 */
export class AlertRaiser {
  readonly #events: EventPublisher;
  readonly #agentId: string;
  readonly #logger: Logger | undefined;
  readonly #retryMs: number;
  #pending: AuditEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #sending = false;
  #stopped = false;
  #m = { raised: 0, recorded: 0 };

  constructor(options: { events: EventPublisher; agentId: string; logger?: Logger; retryMs?: number }) {
    this.#events = options.events;
    this.#agentId = options.agentId;
    this.#logger = options.logger;
    this.#retryMs = options.retryMs ?? 1000;
  }

  raise(kind: string, message: string, details: JsonObject): void {
    this.#m.raised++;
    this.#logger?.error({ alert: kind, ...details }, `ALERT ${kind}: ${message}`);
    const event = newEvent({ agentId: this.#agentId, eventType: 'alert.raised', details: { kind, message, ...details } });
    this.#pending.push(event);
    if (this.#pending.length > MAX_PENDING) this.#pending.shift();
    void this.#send();
  }

  metrics(): AlertMetrics {
    return { ...this.#m, pending: this.#pending.length };
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  async #send(): Promise<void> {
    if (this.#sending || this.#stopped) return;
    this.#sending = true;
    try {
      while (this.#pending.length > 0 && !this.#stopped) {
        const event = this.#pending[0]!;
        await this.#events.publish({ subject: Events.alert.raised, eventId: event.eventId, payload: encodeEvent(event) });
        if (this.#pending[0] === event) this.#pending.shift();
        this.#m.recorded++;
      }
    } catch {
      // Not stored (the stream is full or unreachable): the alert was logged; try again later.
      if (!this.#stopped) {
        this.#timer = setTimeout(() => void this.#send(), this.#retryMs);
        this.#timer.unref();
      }
    } finally {
      this.#sending = false;
    }
  }
}
