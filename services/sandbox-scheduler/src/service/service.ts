import { Commands, createRejectionReporter, ensureStreams, serveCommands, createEventPublisher, Events, LEDGER_PRINCIPAL, type Bus, type CommandHandler, type CommandServer } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender, type ChannelReceiver, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { encodeEvent } from '@bulwark/events';
import { LedgerKeys, LedgerReaderTimeoutError, startLedgerReader, type ReaderHaltedError } from '@bulwark/ledger-reader';
import type { Logger } from '@bulwark/telemetry';
import { SandboxServiceError } from '../errors.js';
import { createSandboxEvents, type SandboxEvents } from './events.js';
import { createHandlers, type AskPolicy } from './handlers.js';
import { RunOnce } from './once.js';
import type { Scheduler } from './scheduler.js';

export interface SandboxServiceOptions {
  /** A connected bus; the service does not close it. */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** svc.sandbox-scheduler and its X25519 key. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
  /** The ledger's Ed25519 event key: the control events the ledger seals to this service are checked against it. */
  readonly ledgerPublicKey: Uint8Array;
  /** Opens the ledger's control batches (default: a SealedReceiver for `identity`). */
  readonly ledgerReceiver?: SealedReceiver | ChannelReceiver;
  /** How long the start waits for the ledger replay (default 30 000 ms). */
  readonly bootTimeoutMs?: number;
  readonly scheduler: Scheduler;
  /** Principals that may terminate any sandbox (default: svc.incident-response). */
  readonly terminators?: readonly string[];
  /** How long a schedule waits for the policy decision before it is a Deny (default 1000 ms). */
  readonly decisionTimeoutMs?: number;
  /** Replaces the policy call (tests); default the SDK's `policy.evaluate` over a session. */
  readonly askPolicy?: AskPolicy;
  readonly events?: SandboxEvents;
  readonly logger?: Logger;
  readonly version?: string;
}

export interface SandboxService {
  readonly instanceId: string;
  /** After its own identity was switched to a new version: drops the command sessions made under the old keys. */
  keysRotated(): void;
  stop(): Promise<void>;
}

const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;

/**
 * Answers `bulwark.sandbox.{assess,schedule,status,terminate,logs}` over encrypted sessions (DESIGN §2, §6).
 * Its callers are judged by the key manager's facts as well as by the directory (issue 12): the
 * verified reader replays the control events the ledger seals to this service (it must be in
 * SYMBIONT_LEDGER_CONTROL_TO) before anything is served, and a revoked key is refused per frame.
 */
export async function startSandboxService(options: SandboxServiceOptions): Promise<SandboxService> {
  const { bus, provider, identity, directory, logger } = options;
  await ensureStreams(bus);
  const events = createEventPublisher(bus, new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL }));
  const rejections = createRejectionReporter(events, { reporter: identity.id });
  const keys = new LedgerKeys();
  let halted: ReaderHaltedError | undefined;
  const reader = await startLedgerReader({
    bus,
    provider,
    identity,
    directory,
    receiver: options.ledgerReceiver ?? new SealedReceiver({ provider, self: identity, directory, staleAfterMs: TEN_YEARS_MS }),
    ledgerPublicKey: options.ledgerPublicKey,
    reader: `${identity.id}/keys`,
    mode: 'control',
    durablePrefix: 'sandbox',
    rejections,
    keys,
    ...(logger === undefined ? {} : { logger }),
    // Policy and pin events share the control subject: verified and counted in the order; the key facts went to `keys`.
    onEvent: () => undefined,
    // Fail secure: a revocation committed after the halt cannot be learnt, so every command is refused from then on.
    onHalt: (halt) => {
      halted = halt;
      logger?.error({ code: halt.code, seq: halt.seq, problem: halt.problem }, 'sandbox ledger reader halted: every command is refused until the service is restarted');
    },
    raise: (event) => events.publish({ subject: Events.security.violation, eventId: event.eventId, payload: encodeEvent(event) }),
  });
  try {
    await reader.caughtUp(options.bootTimeoutMs ?? 30_000);
  } catch (e) {
    await reader.stop();
    if (e instanceof LedgerReaderTimeoutError) throw new SandboxServiceError('E_SANDBOX_BOOT', `sandbox scheduler: ${e.message}`, { ...e.context }, { cause: e });
    throw e;
  }
  const client = createBulwarkClient({ bus, sessions: { provider, self: identity, directory }, decisionTimeoutMs: options.decisionTimeoutMs ?? 1000 });
  const handlers = createHandlers({
    scheduler: options.scheduler,
    events: options.events ?? createSandboxEvents({ bus, provider, identity, directory }),
    askPolicy: options.askPolicy ?? ((request) => client.policy.evaluate(request)),
    terminators: options.terminators ?? ['svc.incident-response'],
    // A retried schedule (its reply lost, e.g. at a switch of NATS user) answered from the first run, never run again.
    once: new RunOnce({ digest: (body) => provider.sha256(body) }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const orphans = await options.scheduler.reapOrphans();
  if (orphans.length > 0) options.logger?.warn({ orphans }, 'sandbox: deleted the containers of a scheduler that died without cleaning up');
  const server: CommandServer = await serveCommands(bus, {
    service: 'sandbox',
    version: options.version ?? '0.1.0',
    rejections,
    sessions: { provider, self: identity, directory: keys.guard(directory) },
    handlers: Object.fromEntries(
      [
        [Commands.sandbox.assess, handlers.assess],
        [Commands.sandbox.schedule, handlers.schedule],
        [Commands.sandbox.status, handlers.status],
        [Commands.sandbox.terminate, handlers.terminate],
        [Commands.sandbox.logs, handlers.logs],
      ].map(([subject, handler]) => [
        subject,
        (async (req) => {
          if (halted !== undefined) throw new SandboxServiceError('E_SANDBOX_HALTED', `sandbox scheduler: the ledger reader halted at seq ${halted.seq} (${halted.code}); every command is refused`, { seq: halted.seq });
          return (handler as CommandHandler)(req);
        }) satisfies CommandHandler,
      ]),
    ),
  });
  return {
    instanceId: server.instanceId,
    keysRotated: () => client.reset(),
    // No sandbox outlives the service that started it.
    stop: async () => {
      await server.stop();
      await options.scheduler.terminateAll();
      await reader.stop();
    },
  };
}
