/**
 * The bus's authority table (DESIGN §3a, "The bus"), as data: what each principal's NATS
 * user may publish and subscribe to. The server enforces it from the user JWT; nothing
 * that is not listed here is allowed (allow lists only, no deny lists to forget).
 *
 * Every Bulwark subject is in the bus's namespace (`t.<id>.` and `T_<id>_` in tests), so the
 * table takes the namespace. JetStream API subjects (`$JS.API.*`) and `$SRV.*` are not
 * prefixed; the stream and bucket names inside them are.
 *
 * Reading the table: `cmd(c)` is a command request (its queue-group subject and the direct
 * subject of any instance, `bulwark.direct.*.<c without "bulwark.">`); `durable(...)` is
 * a principal's own JetStream durable consumer (create with its one filter, info, next, ack:
 * never delete, never another filter); `inbox` is `_INBOX.<principal token>.>`, the prefix
 * the principal's connection uses for every reply, so nobody else can subscribe to it.
 */
import { analystIncidentFilter, Commands, SOC_CHANNEL, DIRECT_SUBJECT_ROOT, INCIDENT_SEVERITIES, DIRECTORY_BUCKET, LEDGER_BATCH_SUBJECT, ledgerControlSubject, ServicePrincipals, StreamNames, type CommandSubject, type Namespace, type ServiceName, type StreamKey } from '@bulwark/bus';
import { parsePrincipalId, ROOT_KEY_OWNER } from '@bulwark/keystore';
import { NatsAuthError } from './errors.js';

/** The subjects one NATS user may use. */
export interface BusPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  /** May answer requests sent to it (`allow_responses`: one reply per request, within 2 min). */
  readonly respond: boolean;
}

/** Who a NATS user is: a principal (with `admin` for administrators), or the operator's own user. */
export type BusRole = { readonly kind: 'principal'; readonly id: string; readonly admin?: boolean } | { readonly kind: 'operator' };

/** The operator's NATS user (`bulwark init`, `bulwark up`, `bulwark status`): owned by `root` in the key store. */
export const OPERATOR_USER: BusRole = Object.freeze({ kind: 'operator' });
export const OPERATOR_USER_NAME = 'bulwark-operator';

/** The commands an agent may call (DESIGN §3a: "command requests that agents may call"). */
export const AGENT_CALLS: readonly CommandSubject[] = [
  Commands.policy.evaluate,
  Commands.policy.evaluateBatch,
  Commands.sandbox.assess,
  Commands.sandbox.schedule,
  Commands.sandbox.status,
  Commands.sandbox.terminate,
  // The output of its own finished sandboxes (the scheduler answers another's id as unknown).
  Commands.sandbox.logs,
  // SchemaPin: an agent checks a tool before using it; pinning, revoking, submitting tools to
  // sign and deciding reviews are administrators' (services/schemapin README).
  Commands.tools.verify,
  Commands.keys.get,
  // Its own key (services/key-manager): enrol with a join token, rotate to keys it generated.
  Commands.keys.enroll,
  Commands.keys.rotate,
  // A rotation requested of its own key (the key manager refuses it for another's, and records the attempt).
  Commands.keys.requestRotation,
  // Its own short-lived NATS credentials, renewed at half-life (issue 12).
  Commands.keys.renew,
];

/** Analysts: the incident commands, and the channel epochs of the ledger (their SOC stream's keys; not the rest of the ledger). */
export const ANALYST_CALLS: readonly CommandSubject[] = [Commands.incident.ack, Commands.incident.resolve, Commands.incident.list, Commands.keys.get, Commands.keys.enroll, Commands.keys.rotate, Commands.keys.requestRotation, Commands.keys.renew, Commands.audit.channelEpochs];

/** Administrators (`--admin`) also administer policies, read and verify the audit trail, manage keys and tools. */
export const ADMIN_CALLS: readonly CommandSubject[] = [
  ...ANALYST_CALLS,
  Commands.policy.evaluate,
  Commands.policy.adminRegister,
  Commands.policy.adminUpdate,
  Commands.policy.adminRollback,
  Commands.policy.adminList,
  ...Object.values(Commands.audit),
  ...Object.values(Commands.keys),
  ...Object.values(Commands.tools),
  Commands.sandbox.status,
  Commands.sandbox.terminate,
];

/** The other services' commands each service calls. */
export const SERVICE_CALLS: Readonly<Record<ServiceName, readonly CommandSubject[]>> = {
  // Every service but the key manager (which signs its own) renews its NATS credentials there (keys.renew).
  // policy, schemapin, incident-response, the sandbox scheduler and the ledger rotate their own identity on the interval (keys.get says when, keys.rotate; @bulwark/service-host rotation.ts).
  policy: [Commands.audit.query, Commands.keys.get, Commands.keys.rotate, Commands.keys.renew],
  audit: [Commands.keys.get, Commands.keys.rotate, Commands.keys.renew],
  keys: [Commands.audit.query],
  sandbox: [Commands.policy.evaluate, Commands.audit.query, Commands.keys.get, Commands.keys.rotate, Commands.keys.renew],
  tools: [Commands.policy.evaluate, Commands.audit.query, Commands.keys.get, Commands.keys.rotate, Commands.keys.renew],
  // Containment is a policy change (admin.list, admin.register, admin.update once released); evidence is an inclusion proof;
  // keys.get tells a retried revocation it already happened; recovery re-enrolls an agent by an invitation and releases it by a
  // policy update (services/incident-response).
  incident: [
    Commands.policy.evaluate, Commands.policy.adminList, Commands.policy.adminRegister, Commands.policy.adminUpdate, Commands.audit.query, Commands.audit.checkpoint,
    Commands.audit.proofInclusion, Commands.sandbox.status, Commands.sandbox.terminate, Commands.keys.revoke, Commands.keys.get, Commands.keys.invite, Commands.keys.renew, Commands.keys.rotate,
  ],
};

/** Event subjects (`bulwark.evt.<root>.>`) every service may publish besides its own: raised for anyone. */
export const SERVICE_EVENT_ROOTS: readonly string[] = ['security', 'auth', 'alert'];

/** A durable consumer a principal owns: `durable` `*` for per-instance names (the filter still binds it). */
export interface DurableGrant {
  readonly stream: StreamKey;
  readonly durable: string;
  readonly filter: string;
}

/**
 * The streams each service reads through its own durables. Every service replays its own
 * control batches (`bulwark.ledger.control.<self>`, per-instance durables); the ledger
 * consumes every event through `audit-ledger`; every other service may read the full batches,
 * which it can open only as a subscriber of the ledger's channel (issue 12 "Channels").
 */
export function serviceDurables(service: ServiceName): readonly DurableGrant[] {
  const own: DurableGrant = { stream: 'ledger', durable: '*', filter: ledgerControlSubject(ServicePrincipals[service]) };
  switch (service) {
    case 'audit':
      return [{ stream: 'events', durable: LEDGER_DURABLE_NAME, filter: 'bulwark.evt.>' }];
    case 'incident':
    case 'policy':
    case 'keys':
    case 'sandbox':
    case 'tools':
      return [own, { stream: 'ledger', durable: '*', filter: LEDGER_BATCH_SUBJECT }];
    default: {
      const never: never = service;
      throw new Error(`unhandled service ${String(never)}`);
    }
  }
}

/**
 * An analyst's consumers of the SOC stream: one per severity, `<principal token>_<severity>`
 * filtering `bulwark.incident.<severity>.*.<recipient token>`, the copies sealed to it alone.
 * NATS 2.9.10 takes this form (one filter, inside the stream's subject of that severity); a
 * wider filter such as `bulwark.incident.*.>` would also deliver every other analyst's copies
 * (sealed to them, but their subjects, sizes and times would be read). The names are
 * injective: no severity is an `_`-suffix of another.
 */
export function analystConsumers(principal: string): readonly DurableGrant[] {
  const token = principalToken({ kind: 'principal', id: principal });
  return INCIDENT_SEVERITIES.map((severity) => ({ stream: 'incidents', durable: `${token}_${severity}`, filter: analystIncidentFilter(severity, principal) }));
}

/**
 * An analyst's consumers of the SOC channel (`SOC_CHANNEL`, one copy per finding under the
 * channel's epoch key): one per severity, `<principal token>_soc_<severity>`, filtering
 * `bulwark.incident.<severity>.*.<channel token>`. Every analyst may receive these frames; only
 * the subscribers of an epoch open them (libs/channel).
 */
export function analystChannelConsumers(principal: string): readonly DurableGrant[] {
  const token = principalToken({ kind: 'principal', id: principal });
  return INCIDENT_SEVERITIES.map((severity) => ({ stream: 'incidents', durable: `${token}_soc_${severity}`, filter: analystIncidentFilter(severity, SOC_CHANNEL) }));
}

/** The audit ledger's durable on BULWARK_EVENTS (services/audit-ledger `LEDGER_DURABLE`). */
export const LEDGER_DURABLE_NAME = 'audit-ledger';

/**
 * The token of a principal in subjects and consumer names: its id with `.` as `_`
 * (`svc.policy` → `svc_policy`). Injective: a principal id has exactly one `.`, after its
 * kind, and kinds have no `_`.
 */
export function principalToken(role: BusRole): string {
  return role.kind === 'operator' ? OPERATOR_USER_NAME : role.id.replace('.', '_');
}

/** The inbox prefix a principal's connection must use (`inboxPrefix`): `_INBOX.<token>`. */
export function inboxPrefixFor(role: BusRole): string {
  return `_INBOX.${principalToken(role)}`;
}

function serviceOf(id: string): ServiceName | undefined {
  return (Object.keys(ServicePrincipals) as ServiceName[]).find((s) => ServicePrincipals[s] === id);
}

/** The permissions of `role` in `namespace`; throws `E_NATS_PRINCIPAL` for an id the table does not know. */
export function permissionsFor(role: BusRole, namespace: Namespace): BusPermissions {
  const ns = namespace.subjectPrefix;
  const sp = namespace.streamPrefix;
  const stream = (key: StreamKey): string => `${sp}${StreamNames[key]}`;
  const bucket = `${sp}${DIRECTORY_BUCKET}`;
  const publish: string[] = ['$JS.API.INFO'];
  const subscribe: string[] = [`${inboxPrefixFor(role)}.>`];

  const cmd = (c: CommandSubject): void => {
    publish.push(`${ns}${c}`, `${ns}${DIRECT_SUBJECT_ROOT}.*.${c.slice('bulwark.'.length)}`);
  };
  const durable = (g: DurableGrant): void => {
    const s = stream(g.stream);
    publish.push(
      `$JS.API.CONSUMER.CREATE.${s}.${g.durable}.${ns}${g.filter}`,
      `$JS.API.CONSUMER.INFO.${s}.${g.durable}`,
      `$JS.API.CONSUMER.MSG.NEXT.${s}.${g.durable}`,
      `$JS.ACK.${s}.${g.durable}.>`,
    );
  };
  // Everyone reads the signed directory (readers trust entries by the root's signature, not
  // by the bucket): stream info, its own watch consumers, direct gets, flow control.
  const readDirectory = (): void => {
    publish.push(
      `$JS.API.STREAM.INFO.KV_${bucket}`,
      `$JS.API.CONSUMER.CREATE.KV_${bucket}.*.$KV.${bucket}.>`,
      `$JS.API.DIRECT.GET.KV_${bucket}`,
      `$JS.API.DIRECT.GET.KV_${bucket}.>`,
      `$JS.FC.KV_${bucket}.>`,
    );
  };
  const rejected = `${ns}bulwark.evt.bus.rejected`;

  if (role.kind === 'operator') {
    // Stream and KV administration (the only user that may delete or purge), discovery.
    publish.push('$JS.API.>', `$KV.${bucket}.>`, '$JS.FC.>', '$JS.ACK.>', '$SRV.>');
    return freeze({ publish, subscribe, respond: false });
  }

  const principal = parsePrincipalId(role.id);
  if (principal === undefined || role.id === ROOT_KEY_OWNER) {
    throw new NatsAuthError('E_NATS_PRINCIPAL', `NATS permissions: ${JSON.stringify(role.id)} is not a principal id`, { principal: role.id });
  }
  readDirectory();
  switch (principal.kind) {
    case 'svc': {
      const service = serviceOf(role.id);
      if (service === undefined) {
        throw new NatsAuthError('E_NATS_PRINCIPAL', `NATS permissions: ${role.id} is not one of the services (${Object.values(ServicePrincipals).join(', ')})`, { principal: role.id });
      }
      if (role.admin === true) throw new NatsAuthError('E_NATS_PRINCIPAL', `NATS permissions: a service (${role.id}) cannot be an administrator`, { principal: role.id });
      // Its own events, the bus's rejection reports, and the events any service may raise
      // (CONTRACTS §2: security.violation, auth.failed, alert.raised); readiness of the bus streams.
      publish.push(`${ns}bulwark.evt.${service}.>`, rejected, ...SERVICE_EVENT_ROOTS.map((root) => `${ns}bulwark.evt.${root}.>`));
      for (const key of Object.keys(StreamNames) as StreamKey[]) publish.push(`$JS.API.STREAM.INFO.${stream(key)}`);
      if (service === 'audit') publish.push(`${ns}bulwark.ledger.>`);
      // Strict mode reads where the ledger has committed to (its durable's ack floor): info only.
      if (service === 'policy') publish.push(`$JS.API.CONSUMER.INFO.${stream('events')}.${LEDGER_DURABLE_NAME}`);
      if (service === 'incident') publish.push(`${ns}bulwark.incident.*.>`);
      if (service === 'keys') publish.push(`$KV.${bucket}.>`);
      for (const c of SERVICE_CALLS[service]) cmd(c);
      for (const g of serviceDurables(service)) durable(g);
      // Its own command subjects in its queue group only, the direct subjects of its
      // instances, and the micro-service discovery subjects of its own name.
      const queue = `bulwark-${service}`;
      for (const c of Object.values(Commands[service]) as CommandSubject[]) subscribe.push(`${ns}${c} ${queue}`);
      subscribe.push(`${ns}${DIRECT_SUBJECT_ROOT}.*.>`);
      for (const verb of ['PING', 'INFO', 'STATS']) subscribe.push(`$SRV.${verb}`, `$SRV.${verb}.${queue}`, `$SRV.${verb}.${queue}.*`);
      return freeze({ publish, subscribe, respond: true });
    }
    case 'agent':
      if (role.admin === true) throw new NatsAuthError('E_NATS_PRINCIPAL', `NATS permissions: an agent (${role.id}) cannot be an administrator`, { principal: role.id });
      // Its own lifecycle events, rejection reports, the commands agents call.
      publish.push(`${ns}bulwark.evt.agent.${principal.name}.>`, rejected);
      for (const c of AGENT_CALLS) cmd(c);
      return freeze({ publish, subscribe, respond: false });
    case 'analyst':
      publish.push(rejected);
      for (const c of role.admin === true ? ADMIN_CALLS : ANALYST_CALLS) cmd(c);
      // The SOC stream: its own copies only, through its own durables (one per severity).
      for (const g of [...analystConsumers(role.id), ...analystChannelConsumers(role.id)]) durable(g);
      return freeze({ publish, subscribe, respond: false });
    default: {
      const never: never = principal.kind;
      throw new Error(`unhandled principal kind ${String(never)}`);
    }
  }
}

function freeze(p: { publish: string[]; subscribe: string[]; respond: boolean }): BusPermissions {
  return Object.freeze({ publish: Object.freeze([...new Set(p.publish)]), subscribe: Object.freeze([...new Set(p.subscribe)]), respond: p.respond });
}
