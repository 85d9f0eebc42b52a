import { StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { encodeSignedDirectoryEntry, type SignedDirectoryEntry } from '@bulwark/envelope';
import { isPrincipalId } from '@bulwark/keystore';
import { natsOf, type Bus } from './connect.js';
import { BusConfigError, BusPublishError, BusUsageError } from './errors.js';

/**
 * The directory (DESIGN §3, §8) lives in a NATS KV bucket: key = principal id, value = the
 * signed entry bytes of `encodeSignedDirectoryEntry`. The bucket is only transport: readers
 * trust an entry because the pinned root key signed it, never because it is in the bucket.
 */
export const DIRECTORY_BUCKET = 'BULWARK_DIRECTORY';

/** Revisions kept per key: a reader that starts later replays them to learn the highest version ever published. */
export const DIRECTORY_HISTORY = 64;

/** A signed entry is under 300 bytes; the cap keeps a writer from parking large values in the bucket. */
const MAX_VALUE_SIZE = 1024;

/** The bucket's name in the bus's namespace (`T_ab12_BULWARK_DIRECTORY` in tests). */
export function directoryBucketName(bus: Bus): string {
  return `${bus.namespace.streamPrefix}${DIRECTORY_BUCKET}`;
}

/** Creates the bucket when missing, else opens it; safe from several processes at once. */
export async function openDirectoryBucket(bus: Bus): Promise<KV> {
  const name = directoryBucketName(bus);
  try {
    return await new Kvm(natsOf(bus).js).create(name, { history: DIRECTORY_HISTORY, storage: StorageType.File, maxValueSize: MAX_VALUE_SIZE });
  } catch (cause) {
    throw new BusConfigError('E_BUS_DIRECTORY', `cannot open the directory bucket ${name} on ${bus.url}: ${cause instanceof Error ? cause.message : String(cause)}`, { bucket: name, url: bus.url }, { cause });
  }
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
