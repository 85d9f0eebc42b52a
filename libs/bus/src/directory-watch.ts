import { KvWatchInclude, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/nats-core';
import {
  TrustedDirectory,
  decodeSignedDirectoryEntry,
  verifyDirectoryEntry,
  type Directory,
  type DirectoryEntry,
  type EntryRejectionReason,
  type SignedDirectoryEntry,
  type TrustedDirectoryOptions,
} from '@bulwark/envelope';
import type { Bus, Stoppable } from './connect.js';
import { directoryBucketName, openDirectoryBucket } from './directory-bucket.js';
import { BusConfigError, BusTimeoutError } from './errors.js';

/** Why a bucket value was not admitted: the entry's own reasons, or a key that is not the entry's id. */
export type DirectoryRejectionReason = EntryRejectionReason | 'E_DIRECTORY_KEY';

export interface DirectoryRejection {
  /** The KV key the value was written under. */
  readonly key: string;
  readonly revision: number;
  readonly reason: DirectoryRejectionReason;
  readonly detail: string;
}

export interface KvDirectoryOptions extends TrustedDirectoryOptions {
  /** Every value that was dropped: unsigned, wrongly signed, malformed, rolled back, or under another id's key. */
  readonly onRejected?: (rejection: DirectoryRejection) => void;
  /** The watch ended on its own (connection closed for good): from then on every lookup fails. */
  readonly onFailed?: (error: Error) => void;
  /** How long `open` waits for the bucket's current contents (default 5000 ms). */
  readonly readyTimeoutMs?: number;
}

/**
 * Envelope's `Directory`, fed from the NATS KV bucket (DESIGN §3). It watches the bucket from
 * its first kept revision, admits through a `TrustedDirectory` (signature by the pinned root
 * key; no lower version and no un-revocation ever replaces what is held), and serves only
 * entries valid at the moment of the lookup. A revoked entry or a deleted key takes effect on
 * the next lookup. A deleted key is remembered with the version it had, so an older entry
 * written under it afterwards is a rollback, not a fresh start.
 *
 * Fail-secure: if the watch dies, every lookup answers `undefined` until a new directory is opened.
 */
/**
 * How long the entry a rotation replaced still opens sealed frames its principal made before it
 * switched (JetStream messages in flight). The old version was rotated away, not revoked, so the
 * bound is a consumer's lag under load (the ledger's reached seconds on this 2-core machine with
 * the suite running, and at 5 s decision events sealed just before a switch were refused and lost
 * from the audit), not trust. A revocation, or an entry of another version, ends it at once; the
 * key manager's republish of the same entry does not.
 */
export const SUPERSEDED_GRACE_MS = 30_000;

export class KvDirectory implements Directory, Stoppable {
  readonly bucket: string;
  readonly #options: KvDirectoryOptions;
  readonly #trusted: TrustedDirectory;
  readonly #clock: () => number;
  /** Highest version admitted per id, the floor for what may come after a deletion. */
  readonly #versions = new Map<string, number>();
  /** Ids whose key was deleted or purged, with the version held at the time. */
  readonly #deleted = new Map<string, number>();
  /** The entry a rotation replaced, per id, and until when it may open frames in flight (`superseded`). */
  readonly #superseded = new Map<string, { readonly entry: DirectoryEntry; readonly until: number }>();
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #stopped = false;
  #failed = false;
  #untrack: () => void = () => undefined;

  private constructor(bucket: string, options: KvDirectoryOptions) {
    this.bucket = bucket;
    this.#options = options;
    this.#trusted = new TrustedDirectory(options);
    this.#clock = options.clock ?? Date.now;
  }

  /** Opens the bucket (creating it if needed) and resolves once its current contents are loaded. */
  static async open(bus: Bus, options: KvDirectoryOptions): Promise<KvDirectory> {
    const directory = new KvDirectory(directoryBucketName(bus), options);
    const kv = await openDirectoryBucket(bus);
    await directory.#start(kv, options.readyTimeoutMs ?? 5000, bus);
    directory.#untrack = bus.track(directory);
    return directory;
  }

  async #start(kv: KV, timeoutMs: number, bus: Bus): Promise<void> {
    let lastSeq: number;
    let watch: QueuedIterator<KvWatchEntry>;
    try {
      // Everything up to the bucket's last sequence at start is the snapshot `open` waits for.
      lastSeq = (await kv.status()).streamInfo.state.last_seq;
      watch = await kv.watch({ include: KvWatchInclude.AllHistory });
    } catch (cause) {
      throw new BusConfigError('E_BUS_DIRECTORY', `cannot watch the directory bucket ${this.bucket} on ${bus.url}: ${cause instanceof Error ? cause.message : String(cause)}`, { bucket: this.bucket, url: bus.url }, { cause });
    }
    this.#watch = watch;
    let markReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => {
      markReady = resolve;
      if (lastSeq === 0) resolve();
    });
    void (async () => {
      try {
        for await (const entry of watch) {
          this.#apply(entry);
          if (entry.revision >= lastSeq) markReady();
        }
        if (!this.#stopped) this.#fail(new Error(`directory watch on ${this.bucket} ended`));
      } catch (error) {
        if (!this.#stopped) this.#fail(error instanceof Error ? error : new Error(String(error)));
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([ready, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await this.stop();
      throw new BusTimeoutError('E_BUS_DIRECTORY_TIMEOUT', `directory bucket ${this.bucket} on ${bus.url}: contents not loaded within ${timeoutMs} ms`, { bucket: this.bucket, url: bus.url });
    }
  }

  #fail(error: Error): void {
    this.#failed = true;
    this.#options.onFailed?.(error);
  }

  #reject(entry: KvWatchEntry, reason: DirectoryRejectionReason, detail: string): void {
    this.#options.onRejected?.({ key: entry.key, revision: entry.revision, reason, detail });
  }

  #apply(entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT') {
      // DEL or PURGE: a removal is a revocation; remember the version it removed.
      this.#deleted.set(entry.key, this.#versions.get(entry.key) ?? 0);
      return;
    }
    let signed: SignedDirectoryEntry;
    try {
      // A copy: plain Uint8Array keys, detached from the client's message buffer.
      signed = decodeSignedDirectoryEntry(new Uint8Array(entry.value));
    } catch (error) {
      this.#reject(entry, 'E_ENTRY_SHAPE', error instanceof Error ? error.message : 'malformed entry');
      return;
    }
    // Checked first so a forged entry is reported as forged, whatever else is wrong with it.
    const verdict = verifyDirectoryEntry(this.#options.provider, this.#options.rootPublicKey, signed, this.#clock());
    if (!verdict.ok && (verdict.reason === 'E_ENTRY_SIGNATURE' || verdict.reason === 'E_ENTRY_SHAPE')) {
      this.#reject(entry, verdict.reason, verdict.detail);
      return;
    }
    const id = signed.entry.id;
    // A validly signed entry copied under another principal's key must not stand for that key.
    if (id !== entry.key) {
      this.#reject(entry, 'E_DIRECTORY_KEY', `directory entry '${id}' was written under the key '${entry.key}'`);
      return;
    }
    const deletedAt = this.#deleted.get(id);
    if (deletedAt !== undefined && signed.entry.keyVersion <= deletedAt) {
      this.#reject(entry, 'E_ENTRY_ROLLBACK', `directory entry '${id}' v${signed.entry.keyVersion} cannot replace v${deletedAt}, which was deleted`);
      return;
    }
    const before = this.#trusted.lookup(id);
    const admitted = this.#trusted.put(signed);
    if (!admitted.ok) {
      this.#reject(entry, admitted.reason, admitted.detail);
      return;
    }
    // A rotation (a higher, unrevoked version over a valid one) leaves the old entry a grace; a
    // revocation or another version ends it; a republish of the same entry leaves it as it is.
    if (before !== undefined && !signed.entry.revoked && signed.entry.keyVersion > before.keyVersion) {
      this.#superseded.set(id, { entry: before, until: this.#clock() + SUPERSEDED_GRACE_MS });
    } else if (signed.entry.revoked || before === undefined || signed.entry.keyVersion !== before.keyVersion) {
      this.#superseded.delete(id);
    }
    this.#deleted.delete(id);
    this.#versions.set(id, Math.max(this.#versions.get(id) ?? 0, signed.entry.keyVersion));
  }

  lookup(id: string): DirectoryEntry | undefined {
    if (this.#failed || this.#stopped || this.#deleted.has(id)) return undefined;
    return this.#trusted.lookup(id);
  }

  superseded(id: string): DirectoryEntry | undefined {
    const held = this.#superseded.get(id);
    if (held === undefined || this.#clock() >= held.until || this.lookup(id) === undefined) return undefined;
    return held.entry;
  }

  /** Why `lookup` answers what it does for `id`, one line, for diagnostics. */
  explain(id: string): string {
    if (this.#failed) return `directory ${this.bucket}: the watch failed; nothing is trusted`;
    if (this.#stopped) return `directory ${this.bucket} is stopped`;
    if (this.#deleted.has(id)) return `directory entry '${id}' was deleted (v${this.#deleted.get(id)})`;
    return this.#trusted.explain(id);
  }

  /** Stops the watch; lookups answer `undefined` afterwards. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#untrack();
    this.#watch?.stop();
    await Promise.resolve();
  }
}
