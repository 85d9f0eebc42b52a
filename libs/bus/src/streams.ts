import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Bus } from './connect.js';
import { natsOf } from './connect.js';
import { BusConfigError } from './errors.js';
import { DEFAULT_STREAM_LIMITS, type StreamLimits } from './stream-limits.js';
import { INCIDENT_SEVERITIES, LEDGER_SUBJECT_ROOT, type StreamKey } from './subjects.js';

/** What a Bulwark stream should look like; everything else is the server's default. */
export interface StreamSpec {
  readonly key: StreamKey;
  /** Subjects before the namespace prefix is applied. */
  readonly subjects: readonly string[];
  /** `workqueue`: a message is removed once a consumer acknowledged it (one consumer per subject). */
  readonly retention: 'limits' | 'workqueue';
  readonly storage: 'file' | 'memory';
  /** Messages with the same `Nats-Msg-Id` inside this window are stored once. */
  readonly duplicateWindowMs: number;
  /** 0 keeps messages until limits evict them. */
  readonly maxAgeMs: number;
  /** Size limits; a full stream refuses new messages (discard new), it never drops stored ones. */
  readonly limits: StreamLimits;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The three streams of DESIGN §2. BULWARK_EVENTS is the ledger's inbox, a work queue: a
 * message is removed once the ledger acknowledged it (after its commit), so its limits bound
 * the ledger's backlog rather than 30 days of history (which would fill them in normal
 * operation and, with discard new, deny every decision). BULWARK_INCIDENTS lists one wildcard per severity
 * rather than `bulwark.incident.>`: the incident service's commands
 * (`bulwark.incident.ack|resolve|list`) share that root, and a stream that captured a
 * request subject would store the request and answer it with a publish ack.
 */
export const DEFAULT_STREAMS: Readonly<Record<StreamKey, StreamSpec>> = Object.freeze({
  events: {
    key: 'events',
    subjects: ['bulwark.evt.>'],
    retention: 'workqueue',
    storage: 'file',
    duplicateWindowMs: 2 * 60 * 1000,
    maxAgeMs: 30 * DAY_MS,
    limits: DEFAULT_STREAM_LIMITS.events,
  },
  ledger: {
    key: 'ledger',
    subjects: [`${LEDGER_SUBJECT_ROOT}.>`],
    retention: 'limits',
    storage: 'file',
    duplicateWindowMs: 2 * 60 * 1000,
    maxAgeMs: 0,
    limits: DEFAULT_STREAM_LIMITS.ledger,
  },
  incidents: {
    key: 'incidents',
    subjects: INCIDENT_SEVERITIES.map((s) => `bulwark.incident.${s}.>`),
    retention: 'limits',
    storage: 'file',
    duplicateWindowMs: 2 * 60 * 1000,
    maxAgeMs: 90 * DAY_MS,
    limits: DEFAULT_STREAM_LIMITS.incidents,
  },
});

/** The three streams with the given limits (e.g. `[bus]` of @bulwark/config); a stream not named keeps its default limits. */
export function streamSpecs(limits: Partial<Readonly<Record<StreamKey, StreamLimits>>> = {}): StreamSpec[] {
  return Object.values(DEFAULT_STREAMS).map((spec) => ({ ...spec, limits: limits[spec.key] ?? spec.limits }));
}

export type StreamOutcome = 'created' | 'unchanged' | 'updated';

/**
 * Creates the stream, or brings an existing one to the spec. Safe to run again and from
 * several processes at once: the server accepts an identical create, and a lost race is
 * reconciled by reading the stream back.
 *
 * Fields the server can change in place (subjects, duplicate window, max age, the size
 * limits and the discard policy) are updated to the spec: the code's spec is the desired
 * state. Fields it cannot change (storage, retention) fail with `BusConfigError`
 * `E_BUS_STREAM_CONFLICT` naming the stream and the fields: such a change needs a
 * deliberate migration, never a silent one. A limit lowered below what the stream already
 * holds fails with `E_BUS_STREAM_LIMIT`: NATS 2.9 would apply it by deleting the oldest
 * messages (events the ledger may not have committed yet), whatever the discard policy.
 */
export async function ensureStream(bus: Bus, spec: StreamSpec): Promise<StreamOutcome> {
  const desired = toConfig(bus, spec);
  for (let attempt = 0; ; attempt++) {
    const existing = await streamInfo(bus, desired.name);
    if (existing === undefined) {
      try {
        await natsOf(bus).jsm.streams.add(desired);
        return 'created';
      } catch (cause) {
        // Another process created it between our read and our add: read it back once.
        if (attempt === 0 && isApiError(cause)) continue;
        throw wrap(bus, desired.name, 'create', cause);
      }
    }
    const immutable = immutableDifferences(existing.config, desired);
    if (immutable.length > 0) {
      throw new BusConfigError(
        'E_BUS_STREAM_CONFLICT',
        `stream ${desired.name} on ${bus.url} exists with a different ${immutable.join(', ')}: the server cannot change that in place; migrate or delete the stream`,
        { stream: desired.name, fields: immutable, url: bus.url },
      );
    }
    if (mutableDifferences(existing.config, desired).length === 0) return 'unchanged';
    const over = limitsBelowUsage(existing, spec.limits);
    if (over.length > 0) {
      throw new BusConfigError(
        'E_BUS_STREAM_LIMIT',
        `stream ${desired.name} on ${bus.url} holds more than the new limit allows (${over.join(', ')}): lowering it would delete stored messages; let the stream drain or raise the limit`,
        { stream: desired.name, fields: over, url: bus.url },
      );
    }
    try {
      await natsOf(bus).jsm.streams.update(desired.name, {
        subjects: desired.subjects,
        duplicate_window: desired.duplicate_window,
        max_age: desired.max_age,
        max_bytes: desired.max_bytes,
        max_msgs: desired.max_msgs,
        max_msg_size: desired.max_msg_size,
        discard: desired.discard,
      });
      return 'updated';
    } catch (cause) {
      throw wrap(bus, desired.name, 'update', cause);
    }
  }
}

/** Ensures BULWARK_EVENTS, BULWARK_LEDGER and BULWARK_INCIDENTS (in the bus's namespace). */
export async function ensureStreams(
  bus: Bus,
  specs: readonly StreamSpec[] = Object.values(DEFAULT_STREAMS),
): Promise<Record<string, StreamOutcome>> {
  const outcomes: Record<string, StreamOutcome> = {};
  for (const spec of specs) outcomes[bus.streamName(spec.key)] = await ensureStream(bus, spec);
  return outcomes;
}

/** Names of the expected streams that are missing (for readiness). */
export async function missingStreams(bus: Bus, keys: readonly StreamKey[] = ['events', 'ledger', 'incidents']): Promise<string[]> {
  const missing: string[] = [];
  for (const key of keys) {
    const name = bus.streamName(key);
    if ((await streamInfo(bus, name)) === undefined) missing.push(name);
  }
  return missing;
}

/** A stream's message count and sequence range, or undefined when it does not exist (recovery looks before it re-publishes). */
export async function streamState(bus: Bus, key: StreamKey): Promise<{ readonly name: string; readonly messages: number; readonly firstSeq: number; readonly lastSeq: number } | undefined> {
  const name = bus.streamName(key);
  const info = await streamInfo(bus, name);
  return info === undefined ? undefined : { name, messages: info.state.messages, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
}

/** The `Nats-Msg-Id` of a stream's first message (undefined when empty or missing): the operator's read (the message API). */
export async function firstMessageId(bus: Bus, key: StreamKey): Promise<string | undefined> {
  const name = bus.streamName(key);
  const info = await streamInfo(bus, name);
  if (info === undefined || info.state.messages === 0) return undefined;
  const message = await natsOf(bus).jsm.streams.getMessage(name, { seq: info.state.first_seq });
  return message?.header?.get('Nats-Msg-Id') ?? '';
}

/** Removes every message of a stream (the operator's, in recovery); returns how many. */
export async function purgeStream(bus: Bus, key: StreamKey): Promise<number> {
  const name = bus.streamName(key);
  try {
    return (await natsOf(bus).jsm.streams.purge(name)).purged;
  } catch (cause) {
    throw wrap(bus, name, 'purge', cause);
  }
}

/**
 * Deletes every stream whose name starts with the bus's stream prefix: the clean-up
 * after a test. Refuses the root namespace so it can never remove production streams.
 */
export async function removeNamespaceStreams(bus: Bus): Promise<string[]> {
  const prefix = bus.namespace.streamPrefix;
  if (prefix === '') {
    throw new BusConfigError('E_BUS_NAMESPACE', `refusing to remove streams of the root namespace on ${bus.url}`, { url: bus.url });
  }
  const removed: string[] = [];
  for await (const name of natsOf(bus).jsm.streams.names()) {
    if (name.startsWith(prefix)) {
      await natsOf(bus).jsm.streams.delete(name);
      removed.push(name);
    }
  }
  return removed;
}

function toConfig(bus: Bus, spec: StreamSpec): StreamConfig {
  return {
    name: bus.streamName(spec.key),
    subjects: spec.subjects.map((s) => bus.subject(s)),
    retention: spec.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: spec.storage === 'file' ? StorageType.File : StorageType.Memory,
    // Fail secure: a full stream refuses the new message (the publisher learns it and, for
    // decisions, denies) rather than silently dropping the oldest stored one.
    discard: DiscardPolicy.New,
    duplicate_window: nanos(spec.duplicateWindowMs),
    max_age: nanos(spec.maxAgeMs),
    max_bytes: spec.limits.maxBytes,
    max_msgs: spec.limits.maxMessages,
    max_msg_size: spec.limits.maxMessageSize,
    num_replicas: 1,
  } as StreamConfig;
}

function immutableDifferences(have: StreamConfig, want: StreamConfig): string[] {
  const diffs: string[] = [];
  if (have.storage !== want.storage) diffs.push(`storage (${have.storage}, want ${want.storage})`);
  if (have.retention !== want.retention) diffs.push(`retention (${have.retention}, want ${want.retention})`);
  return diffs;
}

function mutableDifferences(have: StreamConfig, want: StreamConfig): string[] {
  const diffs: string[] = [];
  const sorted = (xs: readonly string[] | undefined) => [...(xs ?? [])].sort().join(',');
  if (sorted(have.subjects) !== sorted(want.subjects)) diffs.push('subjects');
  if (have.duplicate_window !== want.duplicate_window) diffs.push('duplicate_window');
  if (have.max_age !== want.max_age) diffs.push('max_age');
  for (const field of ['max_bytes', 'max_msgs', 'max_msg_size', 'discard'] as const) {
    if (have[field] !== want[field]) diffs.push(field);
  }
  return diffs;
}

/** The limits the stream's current contents already exceed (a lower limit would purge them). */
function limitsBelowUsage(existing: StreamInfo, limits: StreamLimits): string[] {
  const over: string[] = [];
  if (existing.state.bytes > limits.maxBytes) over.push(`${existing.state.bytes} bytes > max_bytes ${limits.maxBytes}`);
  if (existing.state.messages > limits.maxMessages) over.push(`${existing.state.messages} messages > max_msgs ${limits.maxMessages}`);
  return over;
}

async function streamInfo(bus: Bus, name: string): Promise<StreamInfo | undefined> {
  try {
    return await natsOf(bus).jsm.streams.info(name);
  } catch (cause) {
    if (isApiError(cause) && cause.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw wrap(bus, name, 'read', cause);
  }
}

function isApiError(e: unknown): e is JetStreamApiError {
  return e instanceof JetStreamApiError;
}

function wrap(bus: Bus, stream: string, action: string, cause: unknown): BusConfigError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new BusConfigError('E_BUS_STREAM', `cannot ${action} stream ${stream} on ${bus.url}: ${why}`, { stream, url: bus.url }, { cause });
}
