import {
  createEventPublisher,
  createRejectionReporter,
  ensureStreams,
  LEDGER_PRINCIPAL,
  serveCommands,
  type Bus,
  type CommandServer,
  type StreamSpec,
} from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedSender, type ChannelReceiver, type Directory, type LocalIdentity, type SealedReceiver } from '@bulwark/envelope';
import { DecisionCache, type Decision, type PolicySet } from '@bulwark/policy-language';
import type { Logger } from '@bulwark/telemetry';
import { adminHandlers } from './admin.js';
import { startDecisionAudit, type AuditMetrics, type DecisionAudit, type PolicyAuditOptions } from './audit.js';
import { Decider } from './decide.js';
import { evaluationHandlers } from './handlers.js';
import { startProjection, type PolicyState } from './start-projection.js';

export type { PolicyAuditOptions } from './audit.js';

export interface PolicyServiceOptions {
  /** Told of every decision (metrics); must not throw. */
  readonly onDecision?: (decision: Decision) => void;
  /** A connected bus; the service does not close it. */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** The service's principal (`svc.policy`) and its X25519 key. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** The ledger's Ed25519 public key: replayed events must carry its signature. */
  readonly ledgerPublicKey: Uint8Array;
  /** Opens the ledger's re-published frames; default a SealedReceiver for `identity` accepting frames up to 10 years old (the stream is kept forever). */
  readonly ledgerReceiver?: SealedReceiver | ChannelReceiver;
  /** Principals allowed to call `.admin.register|update|rollback` (everyone authenticated may list). */
  readonly admins: readonly string[];
  readonly audit?: PolicyAuditOptions;
  /** The streams as configured (`streamSpecs(busLimits(config).streams)`); default DEFAULT_STREAMS. */
  readonly streams?: readonly StreamSpec[];
  /** Decisions cached per policy set version (default 10 000). */
  readonly cacheSize?: number;
  /** How long an admin call waits for its committed event to come back from the ledger (default 5 000 ms). */
  readonly applyWaitMs?: number;
  /** How long boot may take to replay the ledger (default 30 000 ms). */
  readonly bootTimeoutMs?: number;
  /** Classification levels, lowest first. */
  readonly levels?: readonly string[];
  readonly logger?: Logger;
  /** Semver reported on `$SRV.INFO` (default 0.1.0). */
  readonly version?: string;
}

export interface PolicyServiceMetrics {
  readonly setVersion: string;
  readonly decisions: number;
  readonly cache: { readonly hits: number; readonly misses: number; readonly size: number };
  /** The decision log, what the ledger has committed of it, the audit condition and the alerts raised (all zero with audit off). */
  readonly audit: AuditMetrics;
  readonly swaps: number;
  readonly skippedEvents: number;
}

export interface PolicyService {
  readonly instanceId: string;
  /** The policy set in force now. */
  current(): PolicySet;
  metrics(): PolicyServiceMetrics;
  /** Why the service is not ready (the `$SRV.STATS` reason beside the bus's own), or undefined. */
  notReady(): string | undefined;
  stop(): Promise<void>;
}

/**
 * Starts one policy service instance (DESIGN §2, §5), part by part:
 * 1. the decision audit trail (audit.ts): decisions batched to the ledger, denied when they cannot be recorded in time;
 * 2. the policy state (start-projection.ts): the ledger replayed, then followed; a committed policy event swaps the set;
 * 3. the commands (handlers.ts, admin.ts) over encrypted sessions, answered only once 2 caught up.
 */
export async function startPolicyService(options: PolicyServiceOptions): Promise<PolicyService> {
  const { bus, provider, identity, directory, logger } = options;
  await ensureStreams(bus, options.streams);
  const events = createEventPublisher(bus, new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL }));
  const rejections = createRejectionReporter(events, { reporter: identity.id });
  const auditEnabled = options.audit?.enabled ?? true;
  const audit: DecisionAudit = startDecisionAudit({ bus, events, principal: identity.id, audit: options.audit ?? {}, ...(logger === undefined ? {} : { logger }) });

  let state: PolicyState;
  try {
    state = await startProjection({ ...options, rejections, events });
  } catch (e) {
    await audit.stop();
    throw e;
  }
  const decider = new Decider({
    cache: new DecisionCache({ max: options.cacheSize ?? 10_000 }),
    ...(auditEnabled ? { audit } : {}),
    ...(options.onDecision === undefined ? {} : { onDecision: options.onDecision }),
  });
  const admin = { state, events, admins: options.admins, ...(options.applyWaitMs === undefined ? {} : { applyWaitMs: options.applyWaitMs }), ...(options.levels === undefined ? {} : { levels: options.levels }) };
  const notReady = () => state.notReady() ?? (auditEnabled ? audit.guard.notReady() : undefined);
  let server: CommandServer;
  try {
    server = await serveCommands(bus, {
      service: 'policy',
      version: options.version ?? '0.1.0',
      rejections,
      // Callers are judged by the ledger's key state too (issue 12): a revoked key is refused per frame whatever the bucket serves.
      sessions: { provider, self: identity, directory: state.keys.guard(directory) },
      handlers: { ...evaluationHandlers(state, decider), ...adminHandlers(admin) },
      notReady,
    });
  } catch (e) {
    await state.stop();
    await audit.stop();
    throw e;
  }

  let stopping: Promise<void> | undefined;
  return {
    instanceId: server.instanceId,
    current: () => state.current(),
    metrics: () => ({ setVersion: state.current().version, decisions: decider.decisions, cache: decider.cacheStats, audit: audit.metrics(), ...state.metrics() }),
    notReady,
    stop() {
      stopping ??= (async () => {
        await server.stop();
        await state.stop();
        await audit.stop();
      })();
      return stopping;
    },
  };
}
