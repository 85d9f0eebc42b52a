import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import { createNodeCryptoProvider } from '@bulwark/crypto';
import { encodeSignedDirectoryEntry, signDirectoryEntry, type DirectoryEntry } from '@bulwark/envelope';
import { natsOf, type Bus } from './connect.js';
import { directoryBucketName, openDirectoryBucket, publishDirectoryEntry, removeDirectoryBucket } from './directory-bucket.js';
import { KvDirectory, SUPERSEDED_GRACE_MS, type DirectoryRejection } from './directory-watch.js';
import { BusUsageError } from './errors.js';
import { cleanUp, eventually, testBus } from './bus.testing.js';

const provider = createNodeCryptoProvider();
const root = provider.ed25519.generateKeyPair();
const impostor = provider.ed25519.generateKeyPair();
const HOUR = 3_600_000;

function entry(id: string, keyVersion = 1, overrides: Partial<DirectoryEntry> = {}): DirectoryEntry {
  const now = Date.now();
  return {
    id,
    ed25519PublicKey: provider.ed25519.generateKeyPair().publicKey,
    x25519PublicKey: provider.x25519.generateKeyPair().publicKey,
    keyVersion,
    notBefore: now - HOUR,
    notAfter: now + HOUR,
    revoked: false,
    ...overrides,
  };
}

let bus: Bus;
let kv: KV;
let directories: KvDirectory[];
let rejections: DirectoryRejection[];

beforeEach(async () => {
  bus = await testBus('directory-test');
  kv = await openDirectoryBucket(bus);
  directories = [];
  rejections = [];
});

afterEach(async () => {
  await Promise.all(directories.map((d) => d.stop()));
  await removeDirectoryBucket(bus);
  await cleanUp(bus);
});

async function openDirectory(): Promise<KvDirectory> {
  const directory = await KvDirectory.open(bus, { provider, rootPublicKey: root.publicKey, onRejected: (r) => rejections.push(r) });
  directories.push(directory);
  return directory;
}

function signed(e: DirectoryEntry, by = root.secretKey): ReturnType<typeof signDirectoryEntry> {
  return signDirectoryEntry(provider, by, e);
}

describe('directory bucket', () => {
  it('is namespaced like the streams', () => {
    expect(directoryBucketName(bus)).toBe(`${bus.namespace.streamPrefix}BULWARK_DIRECTORY`);
    expect(bus.namespace.streamPrefix).not.toBe('');
  });

  it('publishes an entry under its principal id, and the same entry again as unchanged', async () => {
    const e = signed(entry('svc.policy'));
    const first = await publishDirectoryEntry(bus, e);
    expect(first.outcome).toBe('created');
    expect(new Uint8Array((await kv.get('svc.policy'))!.value)).toEqual(encodeSignedDirectoryEntry(e));
    const again = await publishDirectoryEntry(bus, e);
    expect(again).toEqual({ key: 'svc.policy', revision: first.revision, outcome: 'unchanged' });
    const revoked = await publishDirectoryEntry(bus, signed({ ...e.entry, revoked: true }));
    expect(revoked.outcome).toBe('updated');
  });

  it('refuses an id that is not a principal id, before touching NATS', async () => {
    await expect(publishDirectoryEntry(bus, signed(entry('svc.policy:x')))).rejects.toBeInstanceOf(BusUsageError);
    await expect(publishDirectoryEntry(bus, signed(entry('SVC.policy')))).rejects.toThrow(/not a principal id/);
  });
});

describe('KvDirectory', () => {
  it('serves an entry the root signed, once it is published', async () => {
    const directory = await openDirectory();
    const e = entry('svc.audit-ledger');
    expect(directory.lookup(e.id)).toBeUndefined();
    await publishDirectoryEntry(bus, signed(e));
    await eventually(() => directory.lookup(e.id) !== undefined, 5000, 'the entry to appear');
    expect(directory.lookup(e.id)?.x25519PublicKey).toEqual(e.x25519PublicKey);
    expect(rejections).toEqual([]);
  });

  it('loads what the bucket already holds before open resolves', async () => {
    const e = entry('svc.policy');
    await publishDirectoryEntry(bus, signed(e));
    const directory = await openDirectory();
    expect(directory.lookup('svc.policy')?.ed25519PublicKey).toEqual(e.ed25519PublicKey);
  });

  it('ignores and reports a forged entry written straight into the bucket, and garbage', async () => {
    const directory = await openDirectory();
    await kv.put('svc.policy', encodeSignedDirectoryEntry(signed(entry('svc.policy'), impostor.secretKey)));
    await kv.put('svc.schemapin', new Uint8Array([1, 2, 3]));
    const good = entry('svc.key-manager');
    await publishDirectoryEntry(bus, signed(good));
    await eventually(() => directory.lookup(good.id) !== undefined, 5000, 'the valid entry');
    expect(directory.lookup('svc.policy')).toBeUndefined();
    expect(directory.lookup('svc.schemapin')).toBeUndefined();
    expect(rejections.map((r) => [r.key, r.reason])).toEqual([
      ['svc.policy', 'E_ENTRY_SIGNATURE'],
      ['svc.schemapin', 'E_ENTRY_SHAPE'],
    ]);
  });

  it('does not let a signed entry stand for another principal', async () => {
    const directory = await openDirectory();
    await kv.put('svc.schemapin', encodeSignedDirectoryEntry(signed(entry('svc.policy'))));
    await eventually(() => rejections.length === 1, 5000, 'the rejection');
    expect(rejections[0]?.reason).toBe('E_DIRECTORY_KEY');
    expect(directory.lookup('svc.schemapin')).toBeUndefined();
    expect(directory.lookup('svc.policy')).toBeUndefined();
  });

  it('keeps the entry a rotation replaced as superseded for SUPERSEDED_GRACE_MS, and not past a revocation', async () => {
    let offset = 0;
    const directory = await KvDirectory.open(bus, { provider, rootPublicKey: root.publicKey, clock: () => Date.now() + offset });
    directories.push(directory);
    const v1 = entry('svc.policy', 1);
    await publishDirectoryEntry(bus, signed(v1));
    await eventually(() => directory.lookup(v1.id)?.keyVersion === 1, 5000, 'v1');
    expect(directory.superseded(v1.id)).toBeUndefined();
    const v2 = entry('svc.policy', 2);
    await publishDirectoryEntry(bus, signed(v2));
    await eventually(() => directory.lookup(v1.id)?.keyVersion === 2, 5000, 'v2');
    expect(directory.superseded(v1.id)?.x25519PublicKey).toEqual(v1.x25519PublicKey);
    offset = SUPERSEDED_GRACE_MS;
    expect(directory.superseded(v1.id)).toBeUndefined();
    offset = 0;
    expect(directory.superseded(v1.id)?.keyVersion).toBe(1);
    // The key manager's republish of the same entry leaves the grace as it was (KV revision moves on, the entry does not).
    await publishDirectoryEntry(bus, signed(v2));
    await new Promise((r) => setTimeout(r, 200));
    expect(directory.superseded(v1.id)?.keyVersion).toBe(1);
    // A revocation ends the grace at once.
    await publishDirectoryEntry(bus, signed({ ...v2, revoked: true }));
    await eventually(() => directory.lookup(v1.id) === undefined, 5000, 'the revocation');
    expect(directory.superseded(v1.id)).toBeUndefined();
  });

  it('drops a revoked entry on the next lookup and never takes it back at the same version', async () => {
    const directory = await openDirectory();
    const e = entry('analyst.ana');
    await publishDirectoryEntry(bus, signed(e));
    await eventually(() => directory.lookup(e.id) !== undefined, 5000, 'the entry');
    await publishDirectoryEntry(bus, signed({ ...e, revoked: true }));
    await eventually(() => directory.lookup(e.id) === undefined, 5000, 'the revocation');
    expect(directory.explain(e.id)).toMatch(/revoked/);
    await kv.put(e.id, encodeSignedDirectoryEntry(signed(e)));
    await eventually(() => rejections.length === 1, 5000, 'the un-revocation to be refused');
    expect(rejections[0]?.reason).toBe('E_ENTRY_ROLLBACK');
    expect(directory.lookup(e.id)).toBeUndefined();
  });

  it('treats a deleted key as revoked, and refuses an older version written after it', async () => {
    const directory = await openDirectory();
    const v1 = entry('svc.policy', 1);
    const v2 = entry('svc.policy', 2);
    await publishDirectoryEntry(bus, signed(v1));
    await publishDirectoryEntry(bus, signed(v2));
    await eventually(() => directory.lookup('svc.policy')?.keyVersion === 2, 5000, 'v2');
    await kv.delete('svc.policy');
    await eventually(() => directory.lookup('svc.policy') === undefined, 5000, 'the deletion');
    await kv.put('svc.policy', encodeSignedDirectoryEntry(signed(v1)));
    await eventually(() => rejections.length === 1, 5000, 'the rollback to be refused');
    expect(rejections[0]).toMatchObject({ key: 'svc.policy', reason: 'E_ENTRY_ROLLBACK' });
    expect(directory.lookup('svc.policy')).toBeUndefined();
    const v3 = entry('svc.policy', 3);
    await publishDirectoryEntry(bus, signed(v3));
    await eventually(() => directory.lookup('svc.policy')?.keyVersion === 3, 5000, 'v3 after the deletion');
  });

  it('refuses an older version replacing a newer one, live and when replaying history', async () => {
    const live = await openDirectory();
    const v2 = entry('svc.sandbox-scheduler', 2);
    await publishDirectoryEntry(bus, signed(v2));
    await eventually(() => live.lookup(v2.id) !== undefined, 5000, 'v2');
    await kv.put(v2.id, encodeSignedDirectoryEntry(signed(entry(v2.id, 1))));
    await eventually(() => rejections.length === 1, 5000, 'the rollback');
    expect(rejections[0]?.reason).toBe('E_ENTRY_ROLLBACK');
    expect(live.lookup(v2.id)?.x25519PublicKey).toEqual(v2.x25519PublicKey);

    // A reader started later sees the bucket's last value (v1) only after its history (v2 first).
    rejections = [];
    const late = await openDirectory();
    expect(late.lookup(v2.id)?.keyVersion).toBe(2);
    expect(rejections.map((r) => r.reason)).toEqual(['E_ENTRY_ROLLBACK']);
  });

  it('fails secure: when its connection dies, it serves nothing and says so', async () => {
    const e = entry('svc.policy');
    await publishDirectoryEntry(bus, signed(e));
    const other = await testBus('directory-test-reader', bus.namespace);
    const failures: Error[] = [];
    const directory = await KvDirectory.open(other, { provider, rootPublicKey: root.publicKey, onFailed: (error) => failures.push(error) });
    expect(directory.lookup(e.id)).toBeDefined();
    await natsOf(other).nc.close();
    await eventually(() => failures.length === 1, 5000, 'the failure report');
    expect(directory.lookup(e.id)).toBeUndefined();
    expect(directory.explain(e.id)).toMatch(/the watch failed/);
    await other.close();
  });

  it('serves nothing after stop, and skips entries outside their validity', async () => {
    const directory = await openDirectory();
    const expired = entry('analyst.old', 1, { notBefore: 1000, notAfter: 2000 });
    const current = entry('analyst.now');
    await publishDirectoryEntry(bus, signed(expired));
    await publishDirectoryEntry(bus, signed(current));
    await eventually(() => directory.lookup(current.id) !== undefined, 5000, 'the current entry');
    expect(directory.lookup(expired.id)).toBeUndefined();
    expect(directory.explain(expired.id)).toMatch(/expired/);
    await directory.stop();
    expect(directory.lookup(current.id)).toBeUndefined();
  });
});
