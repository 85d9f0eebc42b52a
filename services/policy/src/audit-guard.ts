import { BusStreamFullError, type FullLimit } from '@bulwark/bus';
import type { EnforcementMode } from '@bulwark/config';
import type { Logger } from '@bulwark/telemetry';
import type { AlertRaiser } from './alerts.js';
import type { CommitWatch } from './commit-watch.js';
import type { DecisionLog } from './decision-log.js';

/** The state of the audit path, as decisions and readiness see it. */
export type AuditCondition =
  | { readonly kind: 'ok' }
  /** BULWARK_EVENTS refused the last batch because it is full (discard new). */
  | { readonly kind: 'stream_full'; readonly limit: FullLimit }
  /** The last batch did not reach BULWARK_EVENTS for another reason (unreachable, timeout). */
  | { readonly kind: 'audit_unavailable'; readonly why: string }
  /** The decision queue is at its bound. */
  | { readonly kind: 'queue_full' }
  /** The ledger has not committed this service's decisions for longer than the allowed lag. */
  | { readonly kind: 'ledger_lag'; readonly lagMs: number };

export interface AuditGuardOptions {
  readonly log: DecisionLog;
  readonly commits: CommitWatch;
  /** `strict` denies on ledger lag; `permissive` only reports it (readiness, alert). */
  readonly mode: EnforcementMode;
  readonly maxLedgerLagMs: number;
  /** BULWARK_EVENTS's name in this namespace, for the reasons. */
  readonly eventsStream: string;
  readonly alerts: AlertRaiser;
  readonly logger?: Logger;
}

const LIMIT_TEXT: Readonly<Record<FullLimit, string>> = { bytes: 'byte limit (max_bytes)', messages: 'message limit (max_msgs)', storage: "server's storage" };

/**
 * Decides, before a request is evaluated, whether its decision can be recorded (DESIGN §3a,
 * §5: every failure denies): never while the decision log cannot take it (a full
 * BULWARK_EVENTS, an unreachable one, a full queue), and in strict mode not while the
 * ledger is more than `maxLedgerLagMs` behind on this service's decisions. The same
 * condition is the service's readiness, and entering a bad one raises an alert.
 */
export class AuditGuard {
  readonly #o: AuditGuardOptions;
  #last: AuditCondition['kind'] = 'ok';

  constructor(options: AuditGuardOptions) {
    this.#o = options;
  }

  /** How long the oldest decision not known committed by the ledger has waited (0 when none). */
  lagMs(now = Date.now()): number {
    const oldest = Math.min(this.#o.commits.oldestUncommittedAt() ?? now, this.#o.log.oldestPendingAt() ?? now);
    return Math.max(0, now - oldest);
  }

  condition(now = Date.now()): AuditCondition {
    const failure = this.#o.log.failure;
    if (failure instanceof BusStreamFullError) return { kind: 'stream_full', limit: failure.context['limit'] as FullLimit };
    if (failure !== undefined) return { kind: 'audit_unavailable', why: failure instanceof Error ? failure.message : String(failure) };
    if (this.#o.log.full) return { kind: 'queue_full' };
    const lagMs = this.lagMs(now);
    if (lagMs > this.#o.maxLedgerLagMs) return { kind: 'ledger_lag', lagMs };
    return { kind: 'ok' };
  }

  /** Why a decision must be denied now, or undefined. Cheap: it runs before every evaluation. */
  denyReason(): string | undefined {
    if (this.#o.log.accepting) {
      // Only the ledger lag can deny while the log accepts, and only in strict mode.
      if (this.#o.mode !== 'strict' || this.lagMs() <= this.#o.maxLedgerLagMs) return undefined;
    }
    const c = this.condition();
    return c.kind === 'ok' ? 'audit log unavailable: the decision could not be recorded, so it is denied (audit_enabled)' : this.#reason(c);
  }

  /** The readiness check: why the service is not ready, or undefined. */
  notReady(): string | undefined {
    const c = this.condition();
    return c.kind === 'ok' ? undefined : this.#reason(c);
  }

  /** Looks at the condition and raises an alert when it turned bad (call periodically and after failures). */
  check(): void {
    const c = this.condition();
    if (c.kind === this.#last) return;
    const was = this.#last;
    this.#last = c.kind;
    if (c.kind === 'ok') {
      this.#o.logger?.warn({ was }, 'policy audit path recovered: decisions are recorded (and allowed) again');
      return;
    }
    const reason = this.#reason(c);
    switch (c.kind) {
      case 'stream_full':
        this.#o.alerts.raise('policy.audit_stream_full', reason, { stream: this.#o.eventsStream, limit: c.limit });
        return;
      case 'ledger_lag':
        this.#o.alerts.raise('policy.ledger_lag', reason, { lagMs: c.lagMs, maxLedgerLagMs: this.#o.maxLedgerLagMs, mode: this.#o.mode });
        return;
      case 'audit_unavailable':
      case 'queue_full':
        // The decision log's own error log says so; the events stream is what failed, so no event.
        this.#o.logger?.error({ condition: c.kind }, `policy audit path failing: ${reason}`);
        return;
      default: {
        const never: never = c;
        return never;
      }
    }
  }

  #reason(c: Exclude<AuditCondition, { kind: 'ok' }>): string {
    switch (c.kind) {
      case 'stream_full':
        return `audit stream ${this.#o.eventsStream} is full: its ${LIMIT_TEXT[c.limit]} is reached and it refuses new events, so the decision could not be recorded and is denied`;
      case 'audit_unavailable':
        return `audit log unavailable: the decision could not be recorded, so it is denied (audit_enabled)`;
      case 'queue_full':
        return `audit log unavailable: the decision queue is full, so the decision could not be recorded and is denied (audit_enabled)`;
      case 'ledger_lag':
        return `audit ledger lag: the ledger has not committed this service's decisions for ${c.lagMs} ms (policy.max_ledger_lag_ms = ${this.#o.maxLedgerLagMs}); ${this.#o.mode === 'strict' ? 'denied in strict mode until it catches up' : 'reported only (permissive mode)'}`;
      default: {
        const never: never = c;
        return never;
      }
    }
  }
}
