/**
 * The policy service's use of the verified ledger reader (@bulwark/ledger-reader, DESIGN §3a
 * "Readers verify what they replay"). The policies are the control-plane events the ledger
 * re-publishes sealed to this service (`bulwark.ledger.control.<self>`); the reader checks
 * each one (signature, hash, control_previous_seq continuity, producer table), fills a gap
 * from the ledger's query, and halts on anything it cannot check. A halt is fail secure here:
 * the service swaps in a set that denies every request, naming the halt, and never again
 * applies a policy event (a restart rebuilds from seq 0 and checks everything anew).
 */
import { Events, type Bus, type EventPublisher, type EventSubject, type RejectionReporter } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import type { ChannelReceiver, Directory, LocalIdentity, SealedReceiver } from '@bulwark/envelope';
import { encodeEvent, type EventType, type LedgerEvent } from '@bulwark/events';
import { LedgerReaderTimeoutError, startLedgerReader, type LedgerKeys, type LedgerReader, type ReaderHaltedError } from '@bulwark/ledger-reader';
import { compilePolicySources, type PolicySet } from '@bulwark/policy-language';
import type { Logger } from '@bulwark/telemetry';
import { PolicyServiceError } from './errors.js';

const POLICY_CHANGE_TYPES: ReadonlySet<EventType> = new Set<EventType>(['policy.registered', 'policy.updated', 'policy.rolledback']);

/** The one policy of the set served once the reader halted: every decision names it. */
export const HALTED_POLICY = 'ledger_reader_halted';

export interface LedgerFollowerOptions {
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** This service's principal and keys: the ledger seals its control batches to it, and the reader asks the ledger for gaps with it. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** Opens the ledger's re-published frames (the envelope mode is the ledger's choice). */
  readonly receiver: SealedReceiver | ChannelReceiver;
  /** The ledger's Ed25519 public key: every event's hash and signature are checked against it. */
  readonly ledgerPublicKey: Uint8Array;
  readonly rejections: RejectionReporter;
  /** The service's event publisher (sealed to the ledger): the reader's Critical halt report goes through it. */
  readonly events: EventPublisher;
  /** Classification levels the deny-all set is compiled with (the service's). */
  readonly levels?: readonly string[];
  readonly logger?: Logger;
  /** The service's key state: the reader applies the key manager's facts to it (its sessions' directory guard). */
  readonly keys: LedgerKeys;
  /** Called for each verified committed policy change event, in ledger order. */
  readonly onEvent: (event: LedgerEvent) => void;
  /** Called once if the reader halts, with the set to serve from then on: it denies everything. */
  readonly onHalt: (denyAll: PolicySet) => void;
  /** How often the live reader asks the ledger whether it missed an event (default 10 000 ms). */
  readonly syncIntervalMs?: number;
}

export interface LedgerFollower {
  /** Resolves once the stream's control batches at start are applied and the ledger has nothing later. */
  caughtUp(timeoutMs: number): Promise<void>;
  /** Once the reader halted: the deny-all set to serve (else undefined). */
  readonly haltedSet: PolicySet | undefined;
  readonly reader: LedgerReader;
  stop(): Promise<void>;
}

/** A set with one policy that denies every request: its decisions name the halt's seq and the policy `ledger_reader_halted`. */
export function haltedPolicySet(halt: ReaderHaltedError, levels?: readonly string[]): PolicySet {
  return compilePolicySources([{ text: `policy ${HALTED_POLICY} {\n    deny: any\n}\n`, file: 'ledger-reader' }], {
    version: `halted-ledger-${halt.seq}`,
    ...(levels === undefined ? {} : { levels }),
  });
}

export async function followLedger(options: LedgerFollowerOptions): Promise<LedgerFollower> {
  let haltedSet: PolicySet | undefined;
  const reader = await startLedgerReader({
    bus: options.bus,
    provider: options.provider,
    identity: options.identity,
    directory: options.directory,
    receiver: options.receiver,
    ledgerPublicKey: options.ledgerPublicKey,
    reader: `${options.identity.id}/policies`,
    mode: 'control',
    durablePrefix: 'policy',
    rejections: options.rejections,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
    keys: options.keys,
    // Key and tool-pin events share the control subject: key facts go to `keys`, pins are counted in the order, not applied here.
    onEvent: (event) => {
      if (POLICY_CHANGE_TYPES.has(event.eventType)) options.onEvent(event);
    },
    onHalt: (halt) => {
      haltedSet = haltedPolicySet(halt, options.levels);
      options.logger?.error({ code: halt.code, seq: halt.seq, problem: halt.problem }, 'policy ledger reader halted: every request is denied until the service is restarted from a ledger it can verify');
      options.onHalt(haltedSet);
    },
    raise: (event) => options.events.publish({ subject: Events.security.violation satisfies EventSubject, eventId: event.eventId, payload: encodeEvent(event) }),
  });
  return {
    get haltedSet() {
      return haltedSet;
    },
    reader,
    async caughtUp(timeoutMs) {
      try {
        await reader.caughtUp(timeoutMs);
      } catch (e) {
        if (e instanceof LedgerReaderTimeoutError) throw new PolicyServiceError('E_POLICY_BOOT', `policy service: ${e.message}`, { ...e.context }, { cause: e });
        throw e;
      }
    },
    stop: () => reader.stop(),
  };
}
