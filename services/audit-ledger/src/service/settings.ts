/**
 * The ledger service's own settings, from `SYMBIONT_LEDGER_*` environment variables (the
 * shared ones, NATS, database, keys, log level, come from @bulwark/config). Each is
 * validated at start; a bad value is an InputError naming the variable.
 */
import { availableParallelism } from 'node:os';
import { InputError } from '@bulwark/errors';
import { DEFAULT_STREAMS, ServicePrincipals, type Namespace, type StreamSpec } from '@bulwark/bus';

export interface LedgerSettings {
  /** The log's name: the first line of every checkpoint and the ledger key's note name. */
  readonly origin: string;
  /** PostgreSQL schema of the ledger's tables. */
  readonly schema: string;
  /** Bus namespace (tests); the root namespace when unset. */
  readonly namespace?: Namespace;
  /** Most events per transaction. */
  readonly batchMaxEvents: number;
  /** How long an event waits for company before an idle ledger commits it. */
  readonly batchMaxWaitMs: number;
  /** Sign a checkpoint after this many events (0: never by count). */
  readonly checkpointEvents: number;
  /** ... or after this long, if the log grew (0: never by time). */
  readonly checkpointMs: number;
  /** Bus messages handled at once (the durable consumer's concurrency): how many can wait in the transactions in progress. */
  readonly inFlight: number;
  /** Threads that sign event hashes while the service hashes the next batch (0: sign on the service's thread). */
  readonly signerWorkers: number;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
  /** Oldest frame accepted from the stream: its max age, so a backlog after downtime is drained, not dropped. */
  readonly staleAfterMs: number;
  /** The principal the full BULWARK_LEDGER batches are sealed to (before the channel's first epoch, or without a channel). */
  readonly republishTo: string;
  /**
   * The channel the full batches move to once the key manager announced its first epoch
   * (`bulwark.keys.channel`; the ledger must be one of its subscribers). Unset: sealed mode only.
   */
  readonly channel?: string;
  /**
   * The principals that replay control-plane events at start (policy, later key manager and
   * SchemaPin): each gets the control batches sealed to it, on its own subject.
   */
  readonly controlTo: readonly string[];
  /** Who may ask the ledger to re-publish (`bulwark.audit.republish`); default the deployment's administrators (SYMBIONT_POLICY_ADMINS). */
  readonly admins: readonly string[];
  /** The streams as configured (`[bus]` of @bulwark/config, set by main.ts); default DEFAULT_STREAMS. */
  readonly streams?: readonly StreamSpec[];
}

export const SETTINGS_ENV = {
  origin: 'SYMBIONT_LEDGER_ORIGIN',
  schema: 'SYMBIONT_LEDGER_SCHEMA',
  namespace: 'SYMBIONT_LEDGER_NAMESPACE',
  batchMaxEvents: 'SYMBIONT_LEDGER_BATCH_EVENTS',
  batchMaxWaitMs: 'SYMBIONT_LEDGER_BATCH_WAIT_MS',
  checkpointEvents: 'SYMBIONT_LEDGER_CHECKPOINT_EVENTS',
  checkpointMs: 'SYMBIONT_LEDGER_CHECKPOINT_MS',
  inFlight: 'SYMBIONT_LEDGER_IN_FLIGHT',
  signerWorkers: 'SYMBIONT_LEDGER_SIGNER_WORKERS',
  ackWaitMs: 'SYMBIONT_LEDGER_ACK_WAIT_MS',
  maxAckPending: 'SYMBIONT_LEDGER_MAX_ACK_PENDING',
  staleAfterMs: 'SYMBIONT_LEDGER_STALE_AFTER_MS',
  republishTo: 'SYMBIONT_LEDGER_REPUBLISH_TO',
  controlTo: 'SYMBIONT_LEDGER_CONTROL_TO',
  admins: 'SYMBIONT_LEDGER_ADMINS',
  channel: 'SYMBIONT_LEDGER_CHANNEL',
} as const satisfies Record<Exclude<keyof LedgerSettings, 'streams'>, string>;

export const DEFAULT_SETTINGS: LedgerSettings = {
  origin: 'bulwark.local/audit',
  schema: 'audit_ledger',
  batchMaxEvents: 2000,
  batchMaxWaitMs: 5,
  checkpointEvents: 10_000,
  checkpointMs: 10_000,
  inFlight: 256,
  // One per core beyond the service's own thread.
  signerWorkers: Math.max(1, availableParallelism() - 1),
  ackWaitMs: 30_000,
  maxAckPending: 1024,
  staleAfterMs: DEFAULT_STREAMS.events.maxAgeMs,
  republishTo: ServicePrincipals.incident,
  controlTo: [ServicePrincipals.policy],
  admins: [],
};

function integer(env: Readonly<Record<string, string | undefined>>, key: keyof typeof SETTINGS_ENV, min: number, max: number): number | undefined {
  const name = SETTINGS_ENV[key];
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new InputError('E_CONFIG', `${name}='${raw}' is not an integer in [${min}, ${max}]`, { name });
  return value;
}

function text(env: Readonly<Record<string, string | undefined>>, key: keyof typeof SETTINGS_ENV, pattern: RegExp, what: string): string | undefined {
  const name = SETTINGS_ENV[key];
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!pattern.test(raw)) throw new InputError('E_CONFIG', `${name}='${raw.slice(0, 80)}' is not ${what}`, { name });
  return raw;
}

const PRINCIPAL = /^(svc|agent|analyst)\.[a-z0-9._-]{1,100}$/;

/** A comma-separated list of distinct principal ids. */
function principals(env: Readonly<Record<string, string | undefined>>, key: keyof typeof SETTINGS_ENV): string[] | undefined {
  const name = SETTINGS_ENV[key];
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const ids = raw.split(',').map((id) => id.trim());
  const bad = ids.find((id) => !PRINCIPAL.test(id));
  if (bad !== undefined) throw new InputError('E_CONFIG', `${name}='${raw.slice(0, 80)}': '${bad.slice(0, 80)}' is not a principal id (comma-separated list)`, { name });
  if (new Set(ids).size !== ids.length) throw new InputError('E_CONFIG', `${name}='${raw.slice(0, 80)}' names a principal twice`, { name });
  return ids;
}

export function loadLedgerSettings(env: Readonly<Record<string, string | undefined>> = process.env): LedgerSettings {
  const d = DEFAULT_SETTINGS;
  const ns = text(env, 'namespace', /^[a-z0-9]{1,32}$/, 'a namespace id (1-32 lowercase letters and digits)');
  const channel = text(env, 'channel', /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/, 'a channel id (1-128 of A-Z a-z 0-9 . _ : @ -)');
  const settings: LedgerSettings = {
    origin: text(env, 'origin', /^[\x21-\x7e]{1,200}$/, 'a log origin (printable ASCII, no spaces, e.g. example.com/audit)') ?? d.origin,
    schema: text(env, 'schema', /^[a-z_][a-z0-9_]{0,62}$/, 'a schema name') ?? d.schema,
    ...(ns === undefined ? {} : { namespace: { streamPrefix: `T_${ns}_`, subjectPrefix: `t.${ns}.` } }),
    batchMaxEvents: integer(env, 'batchMaxEvents', 1, 100_000) ?? d.batchMaxEvents,
    batchMaxWaitMs: integer(env, 'batchMaxWaitMs', 0, 10_000) ?? d.batchMaxWaitMs,
    checkpointEvents: integer(env, 'checkpointEvents', 0, 1e9) ?? d.checkpointEvents,
    checkpointMs: integer(env, 'checkpointMs', 0, 86_400_000) ?? d.checkpointMs,
    inFlight: integer(env, 'inFlight', 1, 100_000) ?? d.inFlight,
    signerWorkers: integer(env, 'signerWorkers', 0, 64) ?? d.signerWorkers,
    ackWaitMs: integer(env, 'ackWaitMs', 1000, 3_600_000) ?? d.ackWaitMs,
    maxAckPending: integer(env, 'maxAckPending', 1, 100_000) ?? d.maxAckPending,
    staleAfterMs: integer(env, 'staleAfterMs', 30_000, 3650 * 86_400_000) ?? d.staleAfterMs,
    republishTo: text(env, 'republishTo', PRINCIPAL, 'a principal id') ?? d.republishTo,
    controlTo: principals(env, 'controlTo') ?? d.controlTo,
    admins: principals(env, 'admins') ?? principals({ [SETTINGS_ENV.admins]: env['SYMBIONT_POLICY_ADMINS'] }, 'admins') ?? d.admins,
    ...(channel === undefined ? {} : { channel }),
  };
  if (settings.maxAckPending < settings.inFlight) {
    throw new InputError('E_CONFIG', `${SETTINGS_ENV.maxAckPending}=${settings.maxAckPending} is below ${SETTINGS_ENV.inFlight}=${settings.inFlight}: the server would never hand over that many messages at once`, {});
  }
  return settings;
}
