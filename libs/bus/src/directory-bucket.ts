import { DiscardPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { encodeSignedDirectoryEntry, type SignedDirectoryEntry } from '@bulwark/envelope';
import { isPrincipalId } from '@bulwark/keystore';
import { natsOf, type Bus } from './connect.js';
import { BusConfigError, BusPublishError, BusUsageError } from './errors.js';
import { DEFAULT_DIRECTORY_LIMITS, type DirectoryLimits } from './stream-limits.js';

/**
 * The directory (DESIGN §3, §8) lives in a NATS KV bucket: key = principal id, value = the
 * signed entry bytes of `encodeSignedDirectoryEntry`. The bucket is only transport: readers
 * trust an entry because the pinned root key signed it, never because it is in the bucket.
 */
export const DIRECTORY_BUCKET = 'BULWARK_DIRECTORY';

/** Revisions kept per key: a reader that starts later replays them to learn the highest version ever published. */
export const DIRECTORY_HISTORY = 64;

/** The bucket's name in the bus's namespace (`T_ab12_BULWARK_DIRECTORY` in tests). */
export function directoryBucketName(bus: Bus): string {
  return `${bus.namespace.streamPrefix}${DIRECTORY_BUCKET}`;
}

/**
 * Creates the bucket when missing, else opens it; safe from several processes at once.
 * A new bucket gets `limits` (default DEFAULT_DIRECTORY_LIMITS: 64 MiB, 100 000 revisions,
 * values up to 1 KiB) and discards new writes when full (fail secure: a full bucket refuses
 * a new entry rather than dropping the revisions readers use to detect rollbacks). When
 * `limits` is given, an existing bucket is reconciled to them too (the writer's side:
 * `bulwark init`, the key manager); readers open it without limits and change nothing.
 */
export async function openDirectoryBucket(bus: Bus, limits?: DirectoryLimits): Promise<KV> {
  const name = directoryBucketName(bus);
  const want = limits ?? DEFAULT_DIRECTORY_LIMITS;
  try {
    const kv = await new Kvm(natsOf(bus).js).create(name, { history: DIRECTORY_HISTORY, storage: StorageType.File, maxValueSize: want.maxValueSize, max_bytes: want.maxBytes });
    await reconcileBucketLimits(bus, `KV_${name}`, want, limits !== undefined);
    return kv;
  } catch (cause) {
    if (cause instanceof BusConfigError) throw cause;
    throw new BusConfigError('E_BUS_DIRECTORY', `cannot open the directory bucket ${name} on ${bus.url}: ${cause instanceof Error ? cause.message : String(cause)}`, { bucket: name, url: bus.url }, { cause });
  }
}

/**
 * Brings the bucket's stream to the limits: always on a bucket this call just created (the
 * client sets no message count), else only when asked. A limit below what the bucket holds
 * is refused (`E_BUS_STREAM_LIMIT`): NATS would apply it by deleting the oldest revisions.
 */
async function reconcileBucketLimits(bus: Bus, stream: string, limits: DirectoryLimits, explicit: boolean): Promise<void> {
  const info = await natsOf(bus).jsm.streams.info(stream);
  const c = info.config;
  const same = c.max_bytes === limits.maxBytes && c.max_msgs === limits.maxMessages && c.max_msg_size === limits.maxValueSize && c.discard === DiscardPolicy.New;
  const fresh = info.state.messages === 0 && c.max_msgs === -1;
  if (same || (!explicit && !fresh)) return;
  if (info.state.bytes > limits.maxBytes || info.state.messages > limits.maxMessages) {
    throw new BusConfigError(
      'E_BUS_STREAM_LIMIT',
      `directory bucket ${stream} on ${bus.url} holds ${info.state.messages} revisions, ${info.state.bytes} bytes: more than the new limits (${limits.maxMessages} revisions, ${limits.maxBytes} bytes) allow; lowering them would delete revisions`,
      { stream, url: bus.url },
    );
  }
  await natsOf(bus).jsm.streams.update(stream, {
    subjects: c.subjects,
    max_bytes: limits.maxBytes,
    max_msgs: limits.maxMessages,
    max_msg_size: limits.maxValueSize,
    discard: DiscardPolicy.New,
  });
}

export type PublishOutcome = 'created' | 'updated' | 'unchanged';

export interface PublishedEntry {
  readonly key: string;
  readonly revision: number;
  readonly outcome: PublishOutcome;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Writes a signed entry under its principal id. Publishing the same bytes again changes
 * nothing (`unchanged`), so a re-run is idempotent. Writes are compare-and-set on the
 * revision read just before, so two publishers racing cannot silently overwrite each other.
 * The bus does not verify the signature: readers do (`KvDirectory`).
 */
export async function publishDirectoryEntry(bus: Bus, signed: SignedDirectoryEntry, kv?: KV): Promise<PublishedEntry> {
  const key = signed.entry.id;
  if (!isPrincipalId(key)) {
    throw new BusUsageError('E_BUS_DIRECTORY_ID', `directory entry id ${JSON.stringify(key)} is not a principal id (svc.<service>, agent.<uuid>, analyst.<name>)`, { key });
  }
  const bytes = encodeSignedDirectoryEntry(signed);
  const bucket = kv ?? (await openDirectoryBucket(bus));
  try {
    const current = await bucket.get(key);
    if (current !== null && current.operation === 'PUT' && sameBytes(current.value, bytes)) return { key, revision: current.revision, outcome: 'unchanged' };
    const revision = current === null ? await bucket.create(key, bytes) : await bucket.update(key, bytes, current.revision);
    return { key, revision, outcome: current === null || current.operation !== 'PUT' ? 'created' : 'updated' };
  } catch (cause) {
    throw new BusPublishError(
      'E_BUS_DIRECTORY_PUBLISH',
      `cannot publish the directory entry for ${key} to ${directoryBucketName(bus)} on ${bus.url}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { key, bucket: directoryBucketName(bus), url: bus.url },
      { cause },
    );
  }
}

/** Removes the namespace's directory bucket (tests); refuses the root namespace, as `removeNamespaceStreams` does. */
export async function removeDirectoryBucket(bus: Bus): Promise<boolean> {
  if (bus.namespace.streamPrefix === '') {
    throw new BusConfigError('E_BUS_NAMESPACE', `refusing to remove the directory bucket of the root namespace on ${bus.url}`, { url: bus.url });
  }
  const stream = `KV_${directoryBucketName(bus)}`;
  try {
    return await natsOf(bus).jsm.streams.delete(stream);
  } catch (error) {
    if (/stream not found/i.test(error instanceof Error ? error.message : '')) return false;
    throw error;
  }
}
