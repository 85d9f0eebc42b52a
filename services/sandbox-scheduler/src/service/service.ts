import { Commands, createRejectionReporter, ensureStreams, serveCommands, createEventPublisher, LEDGER_PRINCIPAL, type Bus, type CommandServer } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import type { Logger } from '@bulwark/telemetry';
import { createSandboxEvents, type SandboxEvents } from './events.js';
import { createHandlers, type AskPolicy } from './handlers.js';
import type { Scheduler } from './scheduler.js';

export interface SandboxServiceOptions {
  /** A connected bus; the service does not close it. */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** svc.sandbox-scheduler and its X25519 key. */
  readonly identity: LocalIdentity;
  readonly directory: Directory;
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
  stop(): Promise<void>;
}

/** Answers `bulwark.sandbox.{assess,schedule,status,terminate,logs}` over encrypted sessions (DESIGN §2, §6). */
export async function startSandboxService(options: SandboxServiceOptions): Promise<SandboxService> {
  const { bus, provider, identity, directory } = options;
  await ensureStreams(bus);
  const rejections = createRejectionReporter(createEventPublisher(bus, new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL })), { reporter: identity.id });
  const client = createBulwarkClient({ bus, sessions: { provider, self: identity, directory }, decisionTimeoutMs: options.decisionTimeoutMs ?? 1000 });
  const handlers = createHandlers({
    scheduler: options.scheduler,
    events: options.events ?? createSandboxEvents({ bus, provider, identity, directory }),
    askPolicy: options.askPolicy ?? ((request) => client.policy.evaluate(request)),
    terminators: options.terminators ?? ['svc.incident-response'],
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const orphans = await options.scheduler.reapOrphans();
  if (orphans.length > 0) options.logger?.warn({ orphans }, 'sandbox: deleted the containers of a scheduler that died without cleaning up');
  const server: CommandServer = await serveCommands(bus, {
    service: 'sandbox',
    version: options.version ?? '0.1.0',
    rejections,
    sessions: { provider, self: identity, directory },
    handlers: {
      [Commands.sandbox.assess]: handlers.assess,
      [Commands.sandbox.schedule]: handlers.schedule,
      [Commands.sandbox.status]: handlers.status,
      [Commands.sandbox.terminate]: handlers.terminate,
      [Commands.sandbox.logs]: handlers.logs,
    },
  });
  return {
    instanceId: server.instanceId,
    // No sandbox outlives the service that started it.
    stop: async () => {
      await server.stop();
      await options.scheduler.terminateAll();
    },
  };
}
