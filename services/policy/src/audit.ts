import { Events, type Bus, type EventPublisher } from '@bulwark/bus';
import type { EnforcementMode } from '@bulwark/config';
import { encodeEventBatch } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import { AlertRaiser, type AlertMetrics } from './alerts.js';
import { AuditGuard, type AuditCondition } from './audit-guard.js';
import { CommitWatch, ledgerAckFloor, type CommitSignal } from './commit-watch.js';
import { DecisionLog, type DecisionLogMetrics } from './decision-log.js';
import { createMasker } from './mask.js';

export interface PolicyAuditOptions {
  /** Record every decision (`[security] audit_enabled`, default true). When on, a decision that cannot be recorded is a Deny. */
  readonly enabled?: boolean;
  /** Dotted request paths masked in decision events (`[policy] decision_log_mask`), e.g. `context.user.ssn`. */
  readonly maskedFields?: readonly string[];
  /** With a key, masked values become a keyed hash (HMAC-SHA256) instead of `"***"`. */
  readonly maskKey?: Uint8Array;
  readonly maxQueue?: number;
  readonly maxBatch?: number;
  readonly lingerMs?: number;
  /** `[security] policy_enforcement_mode` (default `strict`): strict denies while the ledger lags more than `maxLedgerLagMs`. */
  readonly mode?: EnforcementMode;
  /** `[policy] max_ledger_lag_ms` (default 5 000). */
  readonly maxLedgerLagMs?: number;
  /** Where the ledger has committed up to on BULWARK_EVENTS (default: the ack floor of its durable `audit-ledger`). */
  readonly commitSignal?: CommitSignal;
  /** How often the commit signal is read and the audit condition checked (default min(1 000, maxLedgerLagMs / 5) ms). */
  readonly checkMs?: number;
}

export interface AuditMetrics extends DecisionLogMetrics {
  readonly condition: AuditCondition['kind'];
  /** How long the oldest decision not known committed by the ledger has waited, in ms. */
  readonly ledgerLagMs: number;
  /** Published batches not yet known committed. */
  readonly uncommittedBatches: number;
  readonly alerts: AlertMetrics;
}

/** The decision audit trail: the log, what the ledger has committed of it, and the guard that denies when either falls behind. */
export interface DecisionAudit {
  readonly log: DecisionLog;
  readonly guard: AuditGuard;
  metrics(): AuditMetrics;
  stop(): Promise<void>;
}

/**
 * Wires the audit parts (DESIGN §5): decisions are batched by the log and published to
 * BULWARK_EVENTS sealed to the ledger; each stored batch is watched until the ledger has
 * committed it; the guard turns a full or unreachable stream, a full queue and (strict) a
 * lagging ledger into denies, readiness and alerts.
 */
export function startDecisionAudit(options: { bus: Bus; events: EventPublisher; principal: string; audit: PolicyAuditOptions; logger?: Logger }): DecisionAudit {
  const { bus, events, audit, logger } = options;
  const maxLedgerLagMs = audit.maxLedgerLagMs ?? 5000;
  const checkMs = audit.checkMs ?? Math.max(20, Math.min(1000, Math.floor(maxLedgerLagMs / 5)));
  const commits = new CommitWatch({
    signal: audit.commitSignal ?? ledgerAckFloor(bus),
    pollMs: checkMs,
    onError: (e) => logger?.warn({ err: e }, 'cannot read how far the ledger has committed: decisions count as uncommitted'),
  });
  const log = new DecisionLog({
    mask: createMasker({ paths: audit.maskedFields ?? [], ...(audit.maskKey === undefined ? {} : { key: audit.maskKey }) }),
    publish: async (batchId, batch) => {
      const ack = await events.publish({ subject: Events.policy.decision, eventId: batchId, payload: encodeEventBatch(batch) });
      commits.published(ack.seq, batch[0]?.timestamp ?? Date.now());
    },
    ...(audit.maxQueue === undefined ? {} : { maxQueue: audit.maxQueue }),
    ...(audit.maxBatch === undefined ? {} : { maxBatch: audit.maxBatch }),
    ...(audit.lingerMs === undefined ? {} : { lingerMs: audit.lingerMs }),
    onError: (e) => {
      logger?.error({ err: e }, 'policy decisions could not be recorded: denying new requests until the ledger accepts them');
      // Called only once a publish failed, long after `guard` below exists.
      guard.check();
    },
  });
  const alerts = new AlertRaiser({ events, agentId: options.principal, ...(logger === undefined ? {} : { logger }) });
  const guard = new AuditGuard({ log, commits, mode: audit.mode ?? 'strict', maxLedgerLagMs, eventsStream: bus.streamName('events'), alerts, ...(logger === undefined ? {} : { logger }) });
  commits.start();
  const checker = setInterval(() => guard.check(), checkMs);
  checker.unref();
  return {
    log,
    guard,
    metrics: () => {
      const c = commits.metrics();
      return { ...log.metrics(), condition: guard.condition().kind, ledgerLagMs: guard.lagMs(), uncommittedBatches: c.outstanding, alerts: alerts.metrics() };
    },
    async stop() {
      clearInterval(checker);
      await log.stop();
      commits.stop();
      alerts.stop();
    },
  };
}
