import { BusUsageError } from './errors.js';

/**
 * Every subject and stream name Bulwark uses (DESIGN §2), as typed constants, so a
 * typo is a compile error rather than a message nobody receives.
 *
 * Subject tokens go broad to narrow. Commands are core NATS request/reply in a
 * queue group per service; events live on JetStream streams.
 */

export const Commands = {
  policy: {
    evaluate: 'bulwark.policy.evaluate',
    evaluateBatch: 'bulwark.policy.evaluate.batch',
    adminRegister: 'bulwark.policy.admin.register',
    adminUpdate: 'bulwark.policy.admin.update',
    adminRollback: 'bulwark.policy.admin.rollback',
    adminList: 'bulwark.policy.admin.list',
  },
  sandbox: {
    assess: 'bulwark.sandbox.assess',
    schedule: 'bulwark.sandbox.schedule',
    status: 'bulwark.sandbox.status',
    terminate: 'bulwark.sandbox.terminate',
    logs: 'bulwark.sandbox.logs',
  },
  audit: {
    query: 'bulwark.audit.query',
    proofInclusion: 'bulwark.audit.proof.inclusion',
    proofConsistency: 'bulwark.audit.proof.consistency',
    checkpoint: 'bulwark.audit.checkpoint',
    verify: 'bulwark.audit.verify',
    report: 'bulwark.audit.report',
    /** Any subscriber of a channel (analysts included): the key manager's channel announcements and key events, nothing else. */
    channelEpochs: 'bulwark.audit.channel_epochs',
    /** Administrators: re-publish the verified ledger into an emptied BULWARK_LEDGER (`bulwark recover`). */
    republish: 'bulwark.audit.republish',
  },
  keys: {
    generate: 'bulwark.keys.generate',
    rotate: 'bulwark.keys.rotate',
    revoke: 'bulwark.keys.revoke',
    get: 'bulwark.keys.get',
    directory: 'bulwark.keys.directory',
    channel: 'bulwark.keys.channel',
    // Key lifecycle and enrollment (issue 12; services/key-manager).
    list: 'bulwark.keys.list',
    invite: 'bulwark.keys.invite',
    enroll: 'bulwark.keys.enroll',
    disable: 'bulwark.keys.disable',
    enable: 'bulwark.keys.enable',
    scheduleDeletion: 'bulwark.keys.schedule-deletion',
    cancelDeletion: 'bulwark.keys.cancel-deletion',
    // A principal's own short-lived NATS user JWT, renewed at half-life (issue 12).
    renew: 'bulwark.keys.renew',
    // Asks the holder to rotate (administrators for anyone, a principal for itself): it rotates at its next check.
    requestRotation: 'bulwark.keys.request-rotation',
  },
  tools: {
    submit: 'bulwark.tools.submit',
    verify: 'bulwark.tools.verify',
    pin: 'bulwark.tools.pin',
    review: 'bulwark.tools.review',
    approve: 'bulwark.tools.approve',
    revoke: 'bulwark.tools.revoke',
  },
  incident: {
    ack: 'bulwark.incident.ack',
    resolve: 'bulwark.incident.resolve',
    list: 'bulwark.incident.list',
  },
} as const;

type ValuesOf<T> = T[keyof T];
/** The services that answer commands, by their subject's second token. */
export type ServiceName = keyof typeof Commands;
/** Any command subject of the table. */
export type CommandSubject = { [S in ServiceName]: ValuesOf<(typeof Commands)[S]> }[ServiceName];

/**
 * The principal id (DESIGN §3) each service's instances hold their session keys under;
 * clients look its static key up in the directory before a handshake.
 */
export const ServicePrincipals: Readonly<Record<ServiceName, string>> = Object.freeze({
  policy: 'svc.policy',
  sandbox: 'svc.sandbox-scheduler',
  audit: 'svc.audit-ledger',
  keys: 'svc.key-manager',
  tools: 'svc.schemapin',
  incident: 'svc.incident-response',
});

/** The ledger's principal: sealed events on BULWARK_EVENTS are addressed to it. */
export const LEDGER_PRINCIPAL = ServicePrincipals.audit;

/**
 * The ledger's durable consumer on BULWARK_EVENTS. It acknowledges a message only after the
 * transaction holding all of its events committed, so its ack floor is a commit watermark.
 */
export const LEDGER_DURABLE = 'audit-ledger';

export const Events = {
  policy: {
    decision: 'bulwark.evt.policy.decision',
    registered: 'bulwark.evt.policy.registered',
    updated: 'bulwark.evt.policy.updated',
    rolledback: 'bulwark.evt.policy.rolledback',
    violation: 'bulwark.evt.policy.violation',
  },
  sandbox: {
    assessed: 'bulwark.evt.sandbox.assessed',
    scheduled: 'bulwark.evt.sandbox.scheduled',
    started: 'bulwark.evt.sandbox.started',
    exited: 'bulwark.evt.sandbox.exited',
    killed: 'bulwark.evt.sandbox.killed',
    limitExceeded: 'bulwark.evt.sandbox.limit_exceeded',
    escapeSuspected: 'bulwark.evt.sandbox.escape_suspected',
  },
  audit: {
    checkpoint: 'bulwark.evt.audit.checkpoint',
  },
  security: {
    /** A service reports a security violation (`security.violation`), e.g. a ledger reader that halted (@bulwark/ledger-reader). */
    violation: 'bulwark.evt.security.violation',
  },
  keys: {
    generated: 'bulwark.evt.keys.generated',
    rotated: 'bulwark.evt.keys.rotated',
    revoked: 'bulwark.evt.keys.revoked',
    channelEpoch: 'bulwark.evt.keys.channel_epoch',
    /** A key store backup made (`bulwark keys backup`): its hash, anchored in the ledger. */
    exported: 'bulwark.evt.keys.exported',
    invited: 'bulwark.evt.keys.invited',
    enrolled: 'bulwark.evt.keys.enrolled',
    disabled: 'bulwark.evt.keys.disabled',
    enabled: 'bulwark.evt.keys.enabled',
    minVersionRaised: 'bulwark.evt.keys.min_version_raised',
    deletionScheduled: 'bulwark.evt.keys.deletion_scheduled',
    deletionCancelled: 'bulwark.evt.keys.deletion_cancelled',
    deleted: 'bulwark.evt.keys.deleted',
    /** An active version past the rotation interval and its grace (once per version). */
    rotationOverdue: 'bulwark.evt.keys.rotation_overdue',
    /** A rotation requested of the holder (an administrator, or the principal itself): `keys.get` says due until a newer version is active. */
    rotationRequested: 'bulwark.evt.keys.rotation_requested',
  },
  tools: {
    submitted: 'bulwark.evt.tools.submitted',
    analyzed: 'bulwark.evt.tools.analyzed',
    signed: 'bulwark.evt.tools.signed',
    pinned: 'bulwark.evt.tools.pinned',
    verified: 'bulwark.evt.tools.verified',
    rejected: 'bulwark.evt.tools.rejected',
    revoked: 'bulwark.evt.tools.revoked',
  },
  incident: {
    opened: 'bulwark.evt.incident.opened',
    acknowledged: 'bulwark.evt.incident.acknowledged',
    mitigated: 'bulwark.evt.incident.mitigated',
    escalated: 'bulwark.evt.incident.escalated',
    resolved: 'bulwark.evt.incident.resolved',
  },
  bus: {
    /** A frame failed an envelope check and was dropped (the bus's own security event). */
    rejected: 'bulwark.evt.bus.rejected',
  },
  alert: {
    /** A service raises an operational security alert (`alert.raised`), e.g. its audit stream is full. */
    raised: 'bulwark.evt.alert.raised',
  },
} as const;

export type EventSubject = { [S in keyof typeof Events]: ValuesOf<(typeof Events)[S]> }[keyof typeof Events];

export const INCIDENT_SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type IncidentSeverity = (typeof INCIDENT_SEVERITIES)[number];

/**
 * The SOC stream's subject for one incident: `bulwark.incident.<severity>.<category>`.
 * The category is one subject token, so it may not hold `.`, `*`, `>` or spaces.
 */
export function incidentSubject(severity: IncidentSeverity, category: string): string {
  assertToken(category, 'incident category');
  return `bulwark.incident.${severity}.${category}`;
}

/** A subject token for a principal id: `.` `*` `>` `%` and spaces percent-encoded (reversible). */
export function recipientToken(principal: string): string {
  return principal.replace(/[%.*> ]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** The SOC stream's channel under `bulwark up` (issue 12 "Channels"): its subscribers are the analysts; NATS grants every analyst its subject. */
export const SOC_CHANNEL = 'soc.incidents';

/**
 * The copies of one severity's incidents sealed to `principal`, any category:
 * `bulwark.incident.<severity>.*.<recipient token>`. An analyst's consumer takes exactly this
 * filter, one per severity: NATS 2.9 gives a consumer one filter, inside one of the stream's
 * subjects (`bulwark.incident.<severity>.>`), and the permission table grants exactly these.
 */
export function analystIncidentFilter(severity: IncidentSeverity, principal: string): string {
  return `bulwark.incident.${severity}.*.${recipientToken(principal)}`;
}

/** The ledger re-publishes each committed event under this prefix (stream BULWARK_LEDGER). */
export const LEDGER_SUBJECT_ROOT = 'bulwark.ledger';

/**
 * The subject the ledger re-publishes committed events on: `AuditEventBatch`es of
 * consecutive events (one publish per event cost as much CPU as the append itself).
 */
export const LEDGER_BATCH_SUBJECT = `${LEDGER_SUBJECT_ROOT}.batch`;

/**
 * The same committed events again, only those that change control-plane state
 * (`isControlEventType`: policies, keys, pinned tools), sealed to each principal that replays
 * them at start, on `bulwark.ledger.control.<principal id>`, in batches named
 * `control:<principal id>:<first>-<last>` after the full batch they come from: what a service
 * replays, without every decision ever recorded and without frames it cannot open.
 */
export function ledgerControlSubject(recipient: string): string {
  if (!recipient.split('.').every((part) => TOKEN.test(part))) {
    throw new BusUsageError('E_BUS_SUBJECT', `control recipient "${recipient}" is not a principal id of subject tokens (A-Z a-z 0-9 _ - between dots)`, { recipient });
  }
  return `${LEDGER_SUBJECT_ROOT}.control.${recipient}`;
}

/** `bulwark.ledger.<event subject tail>`: e.g. `bulwark.ledger.policy.decision`. */
export function ledgerSubject(event: EventSubject): string {
  return `${LEDGER_SUBJECT_ROOT}.${event.slice('bulwark.evt.'.length)}`;
}

/**
 * Session requests after the handshake go straight to the instance that holds the
 * session: `bulwark.direct.<instance id>.<command without "bulwark.">`. A separate root
 * (rather than `<command>.<instance>`) keeps them from colliding with commands that
 * extend another command, like `bulwark.policy.evaluate.batch`.
 */
export const DIRECT_SUBJECT_ROOT = 'bulwark.direct';

export function directSubject(instanceId: string, command: string): string {
  assertToken(instanceId, 'instance id');
  return `${DIRECT_SUBJECT_ROOT}.${instanceId}.${command.slice('bulwark.'.length)}`;
}

export const StreamNames = {
  events: 'BULWARK_EVENTS',
  ledger: 'BULWARK_LEDGER',
  incidents: 'BULWARK_INCIDENTS',
} as const;
export type StreamKey = keyof typeof StreamNames;

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Throws unless `value` is one NATS subject token made of safe characters. */
export function assertToken(value: string, what: string): void {
  if (!TOKEN.test(value)) {
    throw new BusUsageError('E_BUS_SUBJECT', `${what} "${value}" is not a subject token: use only A-Z a-z 0-9 _ -`, { what, value });
  }
}
