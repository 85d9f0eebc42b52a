/**
 * Who may produce which event (DESIGN §3a "The events", CONTRACTS §2): the producer table as
 * data, in this one place. The ledger refuses at ingest an event its producer may not
 * produce; every reader of the ledger checks it again on replay (defence in depth). The
 * producer is the principal whose sealed frame delivered the event to the ledger, as the
 * envelope authenticated it (ChainFields.producer), never a field the sender wrote.
 */
import { isPrincipalId } from './event.js';
import { isEventType, type EventType } from './event-types.js';

/** Who may produce events of one type. */
export type ProducerRule =
  /** Only this service (`policy.*` ← `svc.policy`, ...). */
  | { readonly kind: 'service'; readonly service: `svc.${string}` }
  /** Activity about an agent: the agent itself (agent_id = producer, an `agent.*`), or any service acting for it. */
  | { readonly kind: 'self-or-service' }
  /** Any service (`svc.*`): reports only services are trusted to make. */
  | { readonly kind: 'any-service' }
  /** Any principal, analysts included (`bus.rejected`: its fields are claims of the reporter). */
  | { readonly kind: 'any-principal' };

const only = (service: `svc.${string}`): ProducerRule => Object.freeze({ kind: 'service', service });
const SELF_OR_SERVICE: ProducerRule = Object.freeze({ kind: 'self-or-service' });
const ANY_SERVICE: ProducerRule = Object.freeze({ kind: 'any-service' });
const ANY_PRINCIPAL: ProducerRule = Object.freeze({ kind: 'any-principal' });

const POLICY = only('svc.policy');
const LEDGER = only('svc.audit-ledger');
const KEYS = only('svc.key-manager');
const SCHEMAPIN = only('svc.schemapin');
const SANDBOX = only('svc.sandbox-scheduler');
const INCIDENTS = only('svc.incident-response');

/**
 * The rule of every event type. Typed over the whole EventType union, so a new event type
 * does not compile until it has a rule here (no type falls back to "anyone").
 */
export const PRODUCER_RULES: Readonly<Record<EventType, ProducerRule>> = Object.freeze({
  'agent.created': SELF_OR_SERVICE,
  'agent.started': SELF_OR_SERVICE,
  'agent.stopped': SELF_OR_SERVICE,
  'agent.terminated': SELF_OR_SERVICE,
  'agent.suspended': SELF_OR_SERVICE,
  'agent.resumed': SELF_OR_SERVICE,

  'policy.decision': POLICY,
  'policy.registered': POLICY,
  'policy.updated': POLICY,
  'policy.rolledback': POLICY,
  'policy.violation': POLICY,

  'sandbox.assessed': SANDBOX,
  'sandbox.scheduled': SANDBOX,
  'sandbox.started': SANDBOX,
  'sandbox.exited': SANDBOX,
  'sandbox.killed': SANDBOX,
  'sandbox.limit_exceeded': SANDBOX,
  'sandbox.escape_suspected': SANDBOX,
  'resource.allocated': SANDBOX,
  'resource.released': SANDBOX,
  'resource.usage': SANDBOX,

  'message.sent': SELF_OR_SERVICE,
  'message.routed': SELF_OR_SERVICE,
  'message.delivered': SELF_OR_SERVICE,
  'message.dropped': SELF_OR_SERVICE,

  'tools.submitted': SCHEMAPIN,
  'tools.analyzed': SCHEMAPIN,
  'tools.signed': SCHEMAPIN,
  'tools.pinned': SCHEMAPIN,
  'tools.verified': SCHEMAPIN,
  'tools.rejected': SCHEMAPIN,
  'tools.revoked': SCHEMAPIN,
  'tools.invoked': SELF_OR_SERVICE,
  'tools.completed': SELF_OR_SERVICE,
  'tools.failed': SELF_OR_SERVICE,

  'data.accessed': SELF_OR_SERVICE,
  'data.exported': SELF_OR_SERVICE,
  'data.modified': SELF_OR_SERVICE,
  'data.deleted': SELF_OR_SERVICE,

  'bus.rejected': ANY_PRINCIPAL,
  'auth.failed': ANY_SERVICE,
  'security.violation': ANY_SERVICE,
  'incident.opened': INCIDENTS,
  'incident.escalated': INCIDENTS,
  'incident.mitigated': INCIDENTS,
  'incident.acknowledged': INCIDENTS,
  'incident.resolved': INCIDENTS,
  'alert.raised': ANY_SERVICE,

  'keys.generated': KEYS,
  'keys.rotated': KEYS,
  'keys.revoked': KEYS,
  'keys.channel_epoch': KEYS,
  'keys.exported': KEYS,
  'keys.invited': KEYS,
  'keys.enrolled': KEYS,
  'keys.disabled': KEYS,
  'keys.enabled': KEYS,
  'keys.min_version_raised': KEYS,
  'keys.deletion_scheduled': KEYS,
  'keys.deletion_cancelled': KEYS,
  'keys.deleted': KEYS,
  'keys.rotation_overdue': KEYS,
  'keys.rotation_requested': KEYS,

  'audit.checkpoint': LEDGER,
  'audit.cosigned': LEDGER,
  'audit.verified': LEDGER,
} satisfies Record<EventType, ProducerRule>);

/** `svc.<name>`: what the ledger's envelope authenticated as a service (DESIGN §3). */
function isService(principal: string): boolean {
  return principal.startsWith('svc.') && principal.length > 4;
}

/**
 * Null when `producer` may produce an event of `eventType` about `agentId`; otherwise the
 * reason, one line naming all three. Never throws: anything unknown is refused.
 */
export function checkProducer(producer: string, eventType: string, agentId: string): string | null {
  if (!isPrincipalId(producer)) return `producer ${JSON.stringify(String(producer).slice(0, 80))} is not a principal id`;
  if (!isEventType(eventType)) return `${JSON.stringify(String(eventType).slice(0, 80))} is not a known event type`;
  const rule = PRODUCER_RULES[eventType];
  switch (rule.kind) {
    case 'service':
      return producer === rule.service ? null : `${eventType} may be produced only by ${rule.service}, not by ${producer}`;
    case 'self-or-service':
      if (isService(producer)) return null;
      if (producer.startsWith('agent.') && producer === agentId) return null;
      return `${eventType} about ${agentId} may be produced only by ${agentId.startsWith('agent.') ? `${agentId} itself or ` : ''}a service (svc.*), not by ${producer}`;
    case 'any-service':
      return isService(producer) ? null : `${eventType} may be produced only by a service (svc.*), not by ${producer}`;
    case 'any-principal':
      return null;
    default: {
      const never: never = rule;
      return `no producer rule for ${eventType} (${String(never)})`;
    }
  }
}
