import type { Bus, EventPublisher, RejectionReporter } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, type ChannelReceiver, type Directory, type LocalIdentity } from '@bulwark/envelope';
import type { LedgerEvent } from '@bulwark/events';
import { AppliedEvents, LedgerKeys, type AppliedWait } from '@bulwark/ledger-reader';
import type { PolicySet } from '@bulwark/policy-language';
import type { Logger } from '@bulwark/telemetry';
import { followLedger } from './ledger-follower.js';
import { PolicyProjection, type ApplyOutcome } from './projection.js';

export interface ProjectionOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  readonly ledgerPublicKey: Uint8Array;
  readonly ledgerReceiver?: SealedReceiver | ChannelReceiver;
  readonly rejections: RejectionReporter;
  /** The service's events publisher (sealed to the ledger): the reader reports a halt through it. */
  readonly events: EventPublisher;
  readonly levels?: readonly string[];
  readonly bootTimeoutMs?: number;
  readonly logger?: Logger;
}

/** The policies as the ledger has them: the set in force, swapped as committed events arrive. */
export interface PolicyState {
  /** The policy set in force now (one immutable object; a request reads it once). */
  current(): PolicySet;
  /** Versions and texts by name, for the admin commands. */
  readonly projection: PolicyProjection;
  /** The key manager's facts as the ledger has them: `keys.guard(directory)` is what the service's sessions ask (issue 12). */
  readonly keys: LedgerKeys;
  /** Waits for a published event to come back committed: its outcome, or undefined after `timeoutMs`. Call before publishing. */
  awaitCommitted(eventId: string, timeoutMs: number): AppliedWait<ApplyOutcome>;
  metrics(): { readonly swaps: number; readonly skippedEvents: number };
  /** Why the state cannot be trusted (the ledger reader halted: every request is denied), or undefined. */
  notReady(): string | undefined;
  stop(): Promise<void>;
}

const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;

/**
 * Rebuilds the policies from the ledger (DESIGN §4, §5) and keeps following it: replays
 * the ledger's control batches from the start, resolves once the replay caught up, then
 * swaps in a new immutable set for each committed policy event. This is the one place the
 * service reads BULWARK_LEDGER (the verified ledger reader replaces `followLedger` here).
 */
export async function startProjection(options: ProjectionOptions): Promise<PolicyState> {
  const { provider, identity, directory, logger } = options;
  const projection = new PolicyProjection(options.levels);
  let current: PolicySet = projection.build();
  let live = false;
  let swaps = 0;
  let skipped = 0;
  const applied = new AppliedEvents<ApplyOutcome>();
  const keys = new LedgerKeys();

  const onEvent = (event: LedgerEvent): void => {
    if (event.eventType === 'policy.decision' || event.eventType === 'policy.violation') return;
    const outcome = projection.apply(event);
    if (outcome.kind === 'skipped') {
      skipped++;
      logger?.warn({ eventId: event.eventId, seq: event.seq, why: outcome.why }, 'policy event skipped');
    } else if (live) {
      current = projection.build();
      swaps++;
      logger?.info({ policy: outcome.name, version: outcome.version, setVersion: current.version }, 'policy set swapped');
    }
    applied.settle(event.eventId, outcome);
  };

  const follower = await followLedger({
    bus: options.bus,
    provider,
    identity,
    directory,
    receiver: options.ledgerReceiver ?? new SealedReceiver({ provider, self: identity, directory, staleAfterMs: TEN_YEARS_MS }),
    ledgerPublicKey: options.ledgerPublicKey,
    rejections: options.rejections,
    events: options.events,
    ...(options.levels === undefined ? {} : { levels: options.levels }),
    ...(logger === undefined ? {} : { logger }),
    keys,
    onEvent,
    // Fail secure: a reader that halted (a ledger it cannot verify) leaves a set that denies everything.
    onHalt: (denyAll) => {
      current = denyAll;
    },
  });
  try {
    await follower.caughtUp(options.bootTimeoutMs ?? 30_000);
  } catch (e) {
    await follower.stop();
    throw e;
  }
  current = follower.haltedSet ?? projection.build();
  live = true;
  logger?.info({ setVersion: current.version, policies: current.policies.length }, 'policy state rebuilt from the ledger');

  return {
    current: () => current,
    projection,
    keys,
    awaitCommitted: (eventId, timeoutMs) => applied.wait(eventId, timeoutMs),
    metrics: () => ({ swaps, skippedEvents: skipped }),
    notReady: () => (follower.haltedSet === undefined ? undefined : `ledger reader halted: every request is denied (set ${follower.haltedSet.version})`),
    stop: () => follower.stop(),
  };
}
