/**
 * The audit event types (seed S4.1, DESIGN §2 and §4). A type is a dotted name, broad to
 * narrow, matching the event subject without its `bulwark.evt.` prefix: the policy
 * service's `bulwark.evt.policy.decision` is recorded as `policy.decision`.
 */

/** The seed's classes of audit events (S4.1), plus the ledger's and the keys' own. */
export type EventCategory =
  | 'agent_lifecycle'
  | 'policy_decision'
  | 'resource_allocation'
  | 'message_routing'
  | 'tool_invocation'
  | 'data_access'
  | 'security_violation'
  | 'alert'
  | 'key_operation'
  | 'audit';

/**
 * Every event type and its category. A mapped type over the union makes the compiler
 * reject a type without a category, so this table is the exhaustive list.
 */
const CATEGORY_OF = {
  // Agent lifecycle (S4.1 "agent lifecycle").
  'agent.created': 'agent_lifecycle',
  'agent.started': 'agent_lifecycle',
  'agent.stopped': 'agent_lifecycle',
  'agent.terminated': 'agent_lifecycle',
  'agent.suspended': 'agent_lifecycle',
  'agent.resumed': 'agent_lifecycle',

  // Policy service (DESIGN §2: bulwark.evt.policy.*).
  'policy.decision': 'policy_decision',
  'policy.registered': 'policy_decision',
  'policy.updated': 'policy_decision',
  'policy.rolledback': 'policy_decision',
  'policy.violation': 'security_violation',

  // Sandbox scheduler (bulwark.evt.sandbox.*): resource allocation and usage.
  'sandbox.assessed': 'resource_allocation',
  'sandbox.scheduled': 'resource_allocation',
  'sandbox.started': 'resource_allocation',
  'sandbox.exited': 'resource_allocation',
  'sandbox.killed': 'resource_allocation',
  'sandbox.limit_exceeded': 'security_violation',
  'sandbox.escape_suspected': 'security_violation',
  'resource.allocated': 'resource_allocation',
  'resource.released': 'resource_allocation',
  'resource.usage': 'resource_allocation',

  // Messages between agents (S4.1 "message sending/routing").
  'message.sent': 'message_routing',
  'message.routed': 'message_routing',
  'message.delivered': 'message_routing',
  'message.dropped': 'message_routing',

  // SchemaPin (bulwark.evt.tools.*) and external tool invocations.
  'tools.submitted': 'tool_invocation',
  'tools.analyzed': 'tool_invocation',
  'tools.signed': 'tool_invocation',
  'tools.pinned': 'tool_invocation',
  'tools.verified': 'tool_invocation',
  'tools.rejected': 'security_violation',
  'tools.revoked': 'tool_invocation',
  'tools.invoked': 'tool_invocation',
  'tools.completed': 'tool_invocation',
  'tools.failed': 'tool_invocation',

  // Data operations (S4.3: PHI access logging, data-subject rights).
  'data.accessed': 'data_access',
  'data.exported': 'data_access',
  'data.modified': 'data_access',
  'data.deleted': 'data_access',

  // Security violations and alerts.
  'bus.rejected': 'security_violation',
  'auth.failed': 'security_violation',
  'security.violation': 'security_violation',
  'incident.opened': 'alert',
  'incident.escalated': 'alert',
  'incident.mitigated': 'alert',
  'incident.acknowledged': 'alert',
  'incident.resolved': 'alert',
  'alert.raised': 'alert',

  // Key manager (bulwark.evt.keys.*).
  'keys.generated': 'key_operation',
  'keys.rotated': 'key_operation',
  'keys.revoked': 'key_operation',
  'keys.channel_epoch': 'key_operation',
  'keys.exported': 'key_operation',
  // Key lifecycle and enrollment (issue 12): each a ledger event of svc.key-manager, replayed to rebuild its state.
  'keys.invited': 'key_operation',
  'keys.enrolled': 'key_operation',
  'keys.disabled': 'key_operation',
  'keys.enabled': 'key_operation',
  'keys.min_version_raised': 'key_operation',
  'keys.deletion_scheduled': 'key_operation',
  'keys.deletion_cancelled': 'key_operation',
  'keys.deleted': 'key_operation',
  // An active version past the rotation interval and its grace, recorded once per version (its holder did not rotate).
  'keys.rotation_overdue': 'key_operation',
  // A rotation asked of the holder from outside its process (an administrator, or the principal itself): due until a newer version is active.
  'keys.rotation_requested': 'key_operation',

  // The ledger's own facts (bulwark.evt.audit.*).
  'audit.checkpoint': 'audit',
  'audit.cosigned': 'audit',
  'audit.verified': 'audit',
} as const satisfies Record<string, EventCategory>;

export type EventType = keyof typeof CATEGORY_OF;

export const EVENT_TYPES: readonly EventType[] = Object.freeze(Object.keys(CATEGORY_OF) as EventType[]);

const KNOWN = new Set<string>(EVENT_TYPES);

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && KNOWN.has(value);
}

/**
 * Events that change control-plane state (policies, keys, pinned tools) rather than record
 * activity. They are rare, and what a service replays at start to rebuild its configuration;
 * the ledger also re-publishes them apart (`bulwark.ledger.control`), so that a replay does
 * not wade through every decision ever made.
 */
const CONTROL_TYPES: ReadonlySet<string> = new Set<EventType>([
  'policy.registered',
  'policy.updated',
  'policy.rolledback',
  'keys.generated',
  'keys.rotated',
  'keys.revoked',
  'keys.channel_epoch',
  'keys.invited',
  'keys.enrolled',
  'keys.disabled',
  'keys.enabled',
  'keys.min_version_raised',
  'keys.deletion_scheduled',
  'keys.deletion_cancelled',
  'keys.deleted',
  'keys.rotation_overdue',
  'keys.rotation_requested',
  'tools.pinned',
  'tools.revoked',
]);

/** False for anything else, a string that is not an event type included. */
export function isControlEventType(type: string): boolean {
  return CONTROL_TYPES.has(type);
}

export function eventCategory(type: EventType): EventCategory {
  return CATEGORY_OF[type];
}

/** The JetStream subject a producer publishes an event of this type on (DESIGN §2). */
export function eventSubject(type: EventType): `bulwark.evt.${EventType}` {
  return `bulwark.evt.${type}`;
}

/** The event type a `bulwark.evt.<type>` subject carries; undefined for any other subject. */
export function eventTypeFromSubject(subject: string): EventType | undefined {
  const prefix = 'bulwark.evt.';
  if (!subject.startsWith(prefix)) return undefined;
  const type = subject.slice(prefix.length);
  return isEventType(type) ? type : undefined;
}
