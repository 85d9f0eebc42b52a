// Test support for the key manager against the real NATS (NATS_URL): a namespace with its
// streams, a test root whose key is also the key manager's stored root (custody), the world's
// identities published to the directory bucket, and a ledger stand-in doing the ledger
// runtime's part of the contract for key events (commit, chain, sign, re-publish the control
// batches sealed to svc.key-manager with control_previous_seq; answer bulwark.audit.query), as
// services/policy/test/world.ts does for policy events.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '@bulwark/crypto';
import {
  Commands,
  CommandClient,
  connectBus,
  createStreamPublisher,
  ensureStreams,
  KvDirectory,
  LEDGER_BATCH_SUBJECT,
  ledgerControlSubject,
  LEDGER_PRINCIPAL,
  publishDirectoryEntry,
  removeDirectoryBucket,
  removeNamespaceStreams,
  RejectionReporter,
  serveCommands,
  startStreamConsumer,
  uniqueNamespace,
  type Bus,
  type CommandServer,
  type CommandSubject,
  type Namespace,
  type RunningConsumer,
} from '@bulwark/bus';
import { encodeDirectoryEntry, SealedReceiver, SealedSender, type SignedDirectoryEntry } from '@bulwark/envelope';
import { testWorld, type TestWorld } from '@bulwark/envelope/testing';
import { canonicalDetails, decodeEvent, encodeEventBatch, GENESIS_PREVIOUS_HASH, isControlEventType, sealEvent, type AuditEvent, type LedgerEvent } from '@bulwark/events';
import { FileKeyStore, openHsmKeyStore, Pkcs11Token, provisionHsmKeys, SoftwareKek, type HsmKeyStore } from '@bulwark/keystore';
import { createSoftHsmToken, type SoftHsmToken } from '@bulwark/testkit';
import { startKeyManager, type KeyManager, type KeyManagerOptions } from '../src/index.js';

export const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
export const provider = createCryptoProvider();
export const KM = 'svc.key-manager';
export const ADMIN = 'analyst.admin';
export const INCIDENT = 'svc.incident-response';
const DAY_MS = 86_400_000;

export const silentReporter = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

export class LedgerStandIn {
  readonly committed: LedgerEvent[] = [];
  #seq = 0;
  #previous: Uint8Array = GENESIS_PREVIOUS_HASH;
  #lastControl = -1;
  #consumer: RunningConsumer | undefined;
  #queries: CommandServer | undefined;
  readonly #publisher;
  /** Principals besides svc.key-manager that get the control batches (SYMBIONT_LEDGER_CONTROL_TO), e.g. channel subscribers. */
  readonly #controlTo = new Map<string, ReturnType<typeof createStreamPublisher>>();

  constructor(
    private readonly bus: Bus,
    private readonly world: TestWorld,
  ) {
    const sender = new SealedSender({ provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory, recipientId: KM });
    this.#publisher = createStreamPublisher(bus, sender, 'ledger');
  }

  /** From now on, control batches also go to `principal`, sealed to it. */
  alsoControlTo(principal: string): void {
    this.#controlTo.set(principal, createStreamPublisher(this.bus, new SealedSender({ provider, self: this.world.identity(LEDGER_PRINCIPAL), directory: this.world.directory, recipientId: principal }), 'ledger'));
  }

  async start(directory: KvDirectory): Promise<void> {
    const receiver = new SealedReceiver({ provider, self: this.world.identity(LEDGER_PRINCIPAL), directory, staleAfterMs: DAY_MS });
    this.#consumer = await startStreamConsumer(
      this.bus,
      receiver,
      { stream: 'events', durable: 'ledger-standin', filterSubject: 'bulwark.evt.>', retryInitialMs: 20 },
      async (d) => {
        await this.commit(decodeEvent(d.plaintext), d.meta.sender);
      },
      silentReporter(LEDGER_PRINCIPAL),
    );
    this.#queries = await serveCommands(this.bus, {
      service: 'audit',
      version: '0.1.0',
      rejections: silentReporter(LEDGER_PRINCIPAL),
      sessions: { provider, self: this.world.identity(LEDGER_PRINCIPAL), directory },
      handlers: { [Commands.audit.query]: async (req) => new TextEncoder().encode(JSON.stringify(this.query(JSON.parse(new TextDecoder().decode(req.body)) as QueryBody))) },
    });
  }

  query(body: QueryBody): { events: unknown[]; nextCursor?: string } {
    const from = Math.max(body.fromSeq ?? 0, body.cursor === undefined ? 0 : Number(body.cursor));
    const limit = body.limit ?? 100;
    const rows = this.committed.filter((e) => e.seq >= from && (body.toSeq === undefined || e.seq <= body.toSeq) && (body.eventTypes === undefined || body.eventTypes.includes(e.eventType)));
    const page = rows.slice(0, limit);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const events = page.map((e) => ({
      seq: e.seq,
      eventId: e.eventId,
      timestamp: e.timestamp,
      producer: e.producer,
      agentId: e.agentId,
      eventType: e.eventType,
      details: e.details,
      detailsJcs: canonicalDetails(e.details),
      previousHash: hex(e.previousHash),
      eventHash: hex(e.eventHash),
      signature: hex(e.signature),
    }));
    return rows.length > limit ? { events, nextCursor: String(page.at(-1)!.seq + 1) } : { events };
  }

  async commit(event: AuditEvent, producer: string): Promise<LedgerEvent> {
    const sealed = sealEvent(provider, this.world.identity(LEDGER_PRINCIPAL).ed25519.secretKey, event, producer, this.#seq, this.#previous);
    this.#seq++;
    this.#previous = sealed.eventHash;
    this.committed.push(sealed);
    await this.#publisher.publish({ subject: LEDGER_BATCH_SUBJECT, msgId: `${sealed.seq}-${sealed.seq}`, payload: encodeEventBatch([sealed]) });
    if (isControlEventType(sealed.eventType)) {
      await this.#publisher.publish({ subject: ledgerControlSubject(KM), msgId: `control:${KM}:${sealed.seq}-${sealed.seq}`, payload: encodeEventBatch([sealed], { controlPreviousSeq: this.#lastControl }) });
      for (const [to, publisher] of this.#controlTo) {
        await publisher.publish({ subject: ledgerControlSubject(to), msgId: `control:${to}:${sealed.seq}-${sealed.seq}`, payload: encodeEventBatch([sealed], { controlPreviousSeq: this.#lastControl }) });
      }
      this.#lastControl = sealed.seq;
    }
    return sealed;
  }

  async stop(): Promise<void> {
    await this.#consumer?.stop();
    await this.#queries?.stop();
  }
}

interface QueryBody {
  readonly fromSeq?: number;
  readonly toSeq?: number;
  readonly eventTypes?: readonly string[];
  readonly limit?: number;
  readonly cursor?: string;
}

export interface Harness {
  readonly world: TestWorld;
  readonly ns: Namespace;
  readonly bus: Bus;
  readonly ledger: LedgerStandIn;
  readonly store: FileKeyStore;
  /** The root every entry is signed with and readers pin: the world's, or the one generated in the SoftHSM2 token. */
  readonly rootPublicKey: Uint8Array;
  /** The world identity's directory entry, signed by that root. */
  entryOf(id: string): SignedDirectoryEntry;
  start(overrides?: Partial<KeyManagerOptions>): Promise<KeyManager>;
  connect(name: string): Promise<Bus>;
  /** A directory reader as any service has it (its own KV watch, pinned root). */
  directory(): Promise<KvDirectory>;
  /** A command client for `self` on its own connection. */
  client(self: { id: string; x25519: { secretKey: Uint8Array; publicKey: Uint8Array } }): Promise<{ call: (subject: CommandSubject, body: unknown) => Promise<unknown>; bus: Bus }>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** A namespace as the CLI's `--namespace <name>` makes it. */
  readonly nsName?: string;
  readonly ns?: Namespace;
  readonly url?: string;
  /** Connection options per connection name (NATS credentials in operator mode). */
  readonly credentialsFor?: (name: string) => Promise<{ credentials?: { jwt: string; seed: Uint8Array }; inboxPrefix?: string }>;
  /** Adds keys to the key manager's store (the NATS operator and account keys in operator mode). */
  readonly prepareStore?: (store: FileKeyStore) => Promise<void>;
  /**
   * `hsm`: the key manager's store is a SoftHSM2 token made for this harness (the root key
   * generated in it, never extractable; the key files wrapped by the token's AES key), as
   * SYMBIONT_KEY_STORE_TYPE=hsm opens it. Default `file` (software KEK, the world's root).
   */
  readonly keyStore?: 'file' | 'hsm';
}

interface Custody {
  readonly store: FileKeyStore;
  readonly hsm?: HsmKeyStore;
  readonly token?: SoftHsmToken;
}

async function openCustody(kind: 'file' | 'hsm', dir: string, worldRoot: Uint8Array): Promise<Custody> {
  if (kind === 'file') {
    const store = await FileKeyStore.open({ dir: join(dir, 'keys'), wrapper: new SoftwareKek(provider, provider.randomBytes(32), 'test'), provider });
    // Custody: the key manager's store holds the root the world's entries are signed with.
    await store.put({ principal: 'root', kind: 'ed25519', version: 1 }, worldRoot);
    return { store };
  }
  const token = createSoftHsmToken();
  const t = Pkcs11Token.open({ module: token.module, tokenLabel: token.label, pin: token.pin });
  try {
    provisionHsmKeys(t, { rootLabel: 'bulwark-root', kekLabel: 'bulwark-kek' });
  } finally {
    t.close();
  }
  const hsm = await openHsmKeyStore({ configPath: token.configPath, dir: join(dir, 'keys'), provider, env: { SYMBIONT_HSM_PIN: token.pin } });
  return { store: hsm.store, hsm, token };
}

export async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const world = testWorld({ provider, ids: [KM, LEDGER_PRINCIPAL, ADMIN, INCIDENT] });
  const ns = options.ns ?? (options.nsName === undefined ? uniqueNamespace() : { streamPrefix: `${options.nsName}_`, subjectPrefix: `${options.nsName}.` });
  const url = options.url ?? NATS_URL;
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-km-'));
  const custody = await openCustody(options.keyStore ?? 'file', dir, world.root.secretKey);
  const { store, hsm } = custody;
  await options.prepareStore?.(store);
  const rootPublicKey = hsm?.root.publicKey ?? world.root.publicKey;
  const entryOf = (id: string): SignedDirectoryEntry => {
    const { signed } = world.identity(id);
    return hsm === undefined ? signed : { entry: signed.entry, signature: hsm.root.sign(encodeDirectoryEntry(signed.entry)) };
  };
  const buses: Bus[] = [];
  const stops: (() => Promise<void>)[] = [];
  const connect = async (name: string) => {
    const b = await connectBus({ url, name, namespace: ns, ...(await options.credentialsFor?.(name)) });
    buses.push(b);
    return b;
  };
  const bus = await connect('harness');
  await ensureStreams(bus);
  for (const id of [KM, LEDGER_PRINCIPAL, ADMIN, INCIDENT]) await publishDirectoryEntry(bus, entryOf(id));
  const directory = async () => {
    const d = await KvDirectory.open(await connect('reader'), { provider, rootPublicKey });
    stops.push(() => d.stop());
    return d;
  };
  const ledger = new LedgerStandIn(bus, world);
  await ledger.start(await directory());
  return {
    world,
    ns,
    bus,
    ledger,
    store,
    rootPublicKey,
    entryOf,
    connect,
    directory,
    async start(overrides = {}) {
      const own = await connect('key-manager');
      const km = await startKeyManager({
        bus: own,
        provider,
        identity: { ...world.identity(KM), version: 1 },
        directory: await directory(),
        store,
        ...(hsm === undefined ? {} : { root: hsm.root }),
        ledgerPublicKey: world.identity(LEDGER_PRINCIPAL).ed25519.publicKey,
        admins: [ADMIN],
        applyWaitMs: 5000,
        ...overrides,
      });
      stops.unshift(() => km.stop());
      return km;
    },
    async client(self) {
      const b = await connect(self.id);
      const c = new CommandClient(b, { sessions: { provider, self: { id: self.id, x25519: self.x25519 }, directory: await directory() }, rejections: silentReporter(self.id) });
      return {
        bus: b,
        call: async (subject, body) => JSON.parse(new TextDecoder().decode(await c.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 6000 }))) as unknown,
      };
    },
    async close() {
      for (const s of stops) await s().catch(() => undefined);
      await ledger.stop();
      await removeNamespaceStreams(bus);
      await removeDirectoryBucket(bus).catch(() => undefined);
      await Promise.all(buses.map((b) => b.close()));
      rmSync(dir, { recursive: true, force: true });
      hsm?.close();
      custody.token?.remove();
    },
  };
}
