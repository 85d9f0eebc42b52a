import { createEventPublisher, Events, LEDGER_PRINCIPAL, type Bus, type EventSubject } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedSender, type Directory, type LocalIdentity } from '@bulwark/envelope';
import { encodeEvent, newEvent, type EventType, type JsonObject } from '@bulwark/events';

const SUBJECTS = {
  'sandbox.assessed': Events.sandbox.assessed,
  'sandbox.scheduled': Events.sandbox.scheduled,
  'sandbox.started': Events.sandbox.started,
  'sandbox.exited': Events.sandbox.exited,
  'sandbox.killed': Events.sandbox.killed,
  'sandbox.limit_exceeded': Events.sandbox.limitExceeded,
  'sandbox.escape_suspected': Events.sandbox.escapeSuspected,
} as const satisfies Partial<Record<EventType, EventSubject>>;

export type SandboxEventType = keyof typeof SUBJECTS;

/** Publishes `sandbox.*` events sealed to the ledger; the ledger records svc.sandbox-scheduler as their producer. */
export interface SandboxEvents {
  publish(eventType: SandboxEventType, agentId: string, details: JsonObject): Promise<void>;
}

export function createSandboxEvents(options: { bus: Bus; provider: CryptoProvider; identity: LocalIdentity; directory: Directory }): SandboxEvents {
  const sender = new SealedSender({ provider: options.provider, self: options.identity, directory: options.directory, recipientId: LEDGER_PRINCIPAL });
  const events = createEventPublisher(options.bus, sender);
  return {
    async publish(eventType, agentId, details) {
      const event = newEvent({ agentId, eventType, details });
      await events.publish({ subject: SUBJECTS[eventType], eventId: event.eventId, payload: encodeEvent(event) });
    },
  };
}
