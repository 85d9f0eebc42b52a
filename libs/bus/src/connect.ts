import { connect } from '@nats-io/transport-node';
import { AuthorizationError, jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { BusConnectError, BusUsageError } from './errors.js';
import { inNamespace, ROOT_NAMESPACE, streamName, validateNamespace, type Namespace } from './namespace.js';
import type { StreamKey } from './subjects.js';
import { RequestGate } from './internal/request-gate.js';

export interface ConnectBusOptions {
  /** e.g. `nats://127.0.0.1:4222`. */
  url: string;
  /** The connection's name as the server shows it (`svc.policy#<instance>`). */
  name: string;
  /** Stream and subject prefixes; the root namespace by default. */
  namespace?: Namespace;
  /** Reconnect attempts before giving up; -1 (the default) retries forever. */
  maxReconnectAttempts?: number;
  /** Wait between reconnect attempts (default 1000 ms; the client adds jitter). */
  reconnectTimeWaitMs?: number;
  /** How long the first connect may take (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * The principal's NATS user (DESIGN §3a): its user JWT and nkey seed (text form `SU...`
   * as bytes), from `@bulwark/nats-auth`'s `loadNatsCredentials`. Without it the connection
   * is anonymous, which only a server without authentication accepts.
   */
  credentials?: { jwt: string; seed: Uint8Array };
  /**
   * Prefix of every reply inbox of this connection (`_INBOX.<principal token>`): a user's
   * permissions let it subscribe to its own inbox prefix only. Default `_INBOX`.
   */
  inboxPrefix?: string;
}

/** The NATS client objects behind a Bus. */
export interface RawNats {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Where this connection's requests wait while it switches user (internal/request-gate.ts). */
  readonly gate: RequestGate;
}

/** How long a switch to another NATS user waits for the requests in flight before it reconnects. */
export const SWITCH_INFLIGHT_WAIT_MS = 5000;
/** How long it waits for the reconnect as the new user before it releases the held requests and fails. */
export const SWITCH_RECONNECT_WAIT_MS = 10_000;

// Kept out of the Bus object so that nothing outside this package can reach the raw
// client and publish a payload that did not go through the envelope.
const RAW = new WeakMap<Bus, RawNats>();

/** @internal for this package's modules only; not exported from the package. */
export function natsOf(bus: Bus): RawNats {
  const raw = RAW.get(bus);
  if (raw === undefined) throw new Error('bus: not a connected Bus');
  return raw;
}

/** Something the bus stops before it drains the connection (a consumer, a service). */
export interface Stoppable {
  stop(): Promise<void>;
  /** A command server: refuses new requests and tells when the ones it handles are done (a switch of NATS user waits for them). */
  quiesce?(): { idle(): Promise<void>; resume(): void };
}

/** How long `switchUser` waits for the requests being handled before it reconnects anyway. */
export const SWITCH_IDLE_WAIT_MS = 10_000;
/** How long it waits, holding its own calls, for the answers its servers gave meanwhile (refusals, handshakes). */
export const SWITCH_LAST_ANSWERS_MS = 1000;

/**
 * One NATS connection with JetStream, in a namespace. Every other part of the bus takes
 * a `Bus`; nothing outside this package sees the NATS client.
 */
export class Bus {
  readonly url: string;
  readonly name: string;
  readonly namespace: Namespace;
  #connected = true;
  #closing: Promise<void> | undefined;
  readonly #credentials: CredentialsRef;
  readonly #stoppables = new Set<Stoppable>();
  readonly #reconnected = new Set<() => void>();

  /** @internal use {@link connectBus}. */
  constructor(init: { url: string; name: string; namespace: Namespace; nc: NatsConnection; jsm: JetStreamManager; credentials?: CredentialsRef }) {
    this.url = init.url;
    this.#credentials = init.credentials ?? { current: undefined };
    this.name = init.name;
    this.namespace = init.namespace;
    RAW.set(this, { nc: init.nc, jsm: init.jsm, js: jetstream(init.nc), gate: new RequestGate() });
    void this.#watchStatus();
  }

  async #watchStatus(): Promise<void> {
    for await (const s of natsOf(this).nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting') this.#connected = false;
      else if (s.type === 'reconnect') {
        this.#connected = true;
        for (const r of this.#reconnected) r();
        this.#reconnected.clear();
      }
    }
  }

  /**
   * Renewed credentials (issue 12: short-lived user JWTs renewed at half-life): the connection
   * keeps running, and every reconnect from now on (the server closes it when the JWT it
   * connected with expires) presents these. Only for a bus connected with credentials, and only
   * the same NATS user: the seed must be the one it connected with.
   */
  renewCredentials(credentials: { jwt: string; seed: Uint8Array }): void {
    const held = this.#credentials.current;
    if (held === undefined) throw new BusUsageError('E_BUS_CREDENTIALS', `bus ${this.name}: connected without credentials; there is nothing to renew`, { name: this.name });
    if (Buffer.compare(Buffer.from(held.seed), Buffer.from(credentials.seed)) !== 0) {
      throw new BusUsageError('E_BUS_CREDENTIALS', `bus ${this.name}: renewed credentials must keep the NATS user (seed) the connection has`, { name: this.name });
    }
    this.#credentials.current = { jwt: credentials.jwt, seed: held.seed };
  }

  /**
   * Another NATS user for this connection (issue 12: a service rotating its own key gets a new
   * nkey with the new version): the connection reconnects at once presenting it, subscriptions
   * resumed. Requests this bus's clients sent before get their answers first (the switch waits
   * for them, at most SWITCH_INFLIGHT_WAIT_MS: a reply delivered while the connection is away is
   * lost), and its command servers finish the requests they handle (at most SWITCH_IDLE_WAIT_MS:
   * the server lets a reply out only on the connection its request came in on, `allow_responses`,
   * so a reply sent after the reconnect is refused, a Publish Violation, and its caller waits in
   * vain); from the start of that wait they refuse new requests unrun (`E_BUS_SWITCHING`, which
   * the CommandClient sends again after a short pause), and those refusals leave before the
   * reconnect; requests its own clients make during the switch are held and sent once it is back (their timeouts
   * start then), so none fails because of it. Resolves once the server took the new user and the
   * subscriptions; `E_BUS_SWITCH` when it did not within SWITCH_RECONNECT_WAIT_MS (the held
   * requests are released then, and the connection keeps trying). Only for a bus connected with
   * credentials.
   */
  async switchUser(credentials: { jwt: string; seed: Uint8Array }): Promise<void> {
    if (this.#credentials.current === undefined) throw new BusUsageError('E_BUS_CREDENTIALS', `bus ${this.name}: connected without credentials; there is no user to switch`, { name: this.name });
    const { nc, gate } = natsOf(this);
    // Its command servers first, outside the hold: a handler may itself call through this bus
    // (the sandbox scheduler asks the policy service), and a held call would keep it busy. From
    // now on they refuse new requests (E_BUS_SWITCHING, sent again by the client at once), so none
    // starts between this wait and the reconnect and has its reply refused after it.
    const servers = [...this.#stoppables].flatMap((s) => (s.quiesce === undefined ? [] : [s.quiesce()]));
    const settled = async (ms: number): Promise<void> => {
      if (servers.length === 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(servers.map((q) => q.idle())), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
      clearTimeout(timer);
    };
    try {
      await settled(SWITCH_IDLE_WAIT_MS);
      await gate.hold(SWITCH_INFLIGHT_WAIT_MS, async () => {
        // The handshakes answered and the requests refused meanwhile leave on this connection, before it does.
        await settled(SWITCH_LAST_ANSWERS_MS);
        await nc.flush();
        this.#credentials.current = { jwt: credentials.jwt, seed: credentials.seed.slice() };
        let done!: () => void;
        const back = new Promise<void>((r) => (done = r));
        this.#reconnected.add(done);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), SWITCH_RECONNECT_WAIT_MS)));
        try {
          await nc.reconnect();
          if ((await Promise.race([back, late])) === 'late') {
            throw new BusConnectError('E_BUS_SWITCH', `bus ${this.name}: not reconnected to ${this.url} as the new NATS user within ${SWITCH_RECONNECT_WAIT_MS} ms`, { name: this.name, url: this.url });
          }
          // A round trip: the server has the resumed subscriptions before a held request goes out.
          await nc.flush();
        } finally {
          clearTimeout(timer);
          this.#reconnected.delete(done);
        }
      });
    } finally {
      for (const q of servers) q.resume();
    }
  }

  /** True while the connection is up (false while reconnecting and after close). */
  isConnected(): boolean {
    return this.#connected && !natsOf(this).nc.isClosed() && !natsOf(this).nc.isDraining();
  }

  /** The subject as it travels in this bus's namespace. */
  subject(subject: string): string {
    return inNamespace(this.namespace, subject);
  }

  /** The stream's name in this bus's namespace. */
  streamName(key: StreamKey): string {
    return streamName(this.namespace, key);
  }

  /** @internal consumers and services register here so close() stops them before draining. */
  track(s: Stoppable): () => void {
    this.#stoppables.add(s);
    return () => this.#stoppables.delete(s);
  }

  /**
   * Stops every consumer and service started on this bus, then drains: pending
   * publishes are flushed and in-flight handlers finish before the socket closes.
   * Calling it twice returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const stops = [...this.#stoppables].map((s) => s.stop().catch(() => undefined));
    await Promise.all(stops);
    if (!natsOf(this).nc.isClosed()) await natsOf(this).nc.drain().catch(() => natsOf(this).nc.close());
    this.#connected = false;
  }

  /** Resolves when the connection is closed for good (by close() or by giving up reconnecting). */
  async closed(): Promise<void> {
    await natsOf(this).nc.closed();
  }
}

/**
 * Connects to NATS and checks that JetStream is enabled. Reconnects on its own after
 * a drop (publishes made meanwhile are buffered by the client); fails with
 * `BusConnectError` (`E_BUS_CONNECT`) naming the URL when the first connect fails.
 */
export async function connectBus(options: ConnectBusOptions): Promise<Bus> {
  const namespace = validateNamespace(options.namespace ?? ROOT_NAMESPACE);
  if (options.inboxPrefix !== undefined && !INBOX_PREFIX.test(options.inboxPrefix)) {
    throw new BusUsageError('E_BUS_INBOX', `inbox prefix "${options.inboxPrefix}" is invalid: use subject tokens (A-Z a-z 0-9 _ - $) separated by dots`, { inboxPrefix: options.inboxPrefix });
  }
  const credentials = options.credentials;
  // The authenticator runs at every (re)connect: it presents the bus's current credentials, so a
  // renewal (Bus.renewCredentials) takes effect at the next reconnect without a new connection.
  const ref: CredentialsRef = { current: credentials === undefined ? undefined : { jwt: credentials.jwt, seed: credentials.seed.slice() } };
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.url,
      name: options.name,
      ...(credentials === undefined ? {} : { authenticator: jwtAuthenticator(() => ref.current!.jwt, () => ref.current!.seed.slice()) }),
      ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
      maxReconnectAttempts: options.maxReconnectAttempts ?? -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 1000,
      timeout: options.connectTimeoutMs ?? 5000,
      // nats.js otherwise builds an Error per request (and a TimeoutError per timer) only to
      // capture the caller's stack, for every request and reply; the bus wraps request errors
      // in its own typed errors that name the subject, so those stacks are never shown.
      noAsyncTraces: true,
    });
  } catch (cause) {
    if (isAuthError(cause)) {
      const who = credentials === undefined ? 'without credentials' : `as ${userName(credentials.jwt) ?? options.name}`;
      throw new BusConnectError(
        'E_BUS_AUTH',
        `NATS at ${options.url} refused the connection ${who}: ${describe(cause)}${credentials === undefined ? ' (the server requires credentials: run bulwark init and use its key store)' : ''}`,
        { url: options.url, name: options.name, principal: credentials === undefined ? null : (userName(credentials.jwt) ?? null) },
        { cause },
      );
    }
    throw new BusConnectError(
      'E_BUS_CONNECT',
      `cannot connect to NATS at ${options.url}: ${describe(cause)}`,
      { url: options.url, name: options.name },
      { cause },
    );
  }
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
  } catch (cause) {
    await nc.close();
    throw new BusConnectError(
      'E_BUS_JETSTREAM',
      `NATS at ${options.url} has no JetStream: ${describe(cause)} (start the server with -js)`,
      { url: options.url, name: options.name },
      { cause },
    );
  }
  return new Bus({ url: options.url, name: options.name, namespace, nc, jsm, credentials: ref });
}

/** The credentials the connection's authenticator presents at the next (re)connect. */
interface CredentialsRef {
  current: { jwt: string; seed: Uint8Array } | undefined;
}

const INBOX_PREFIX = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;

function isAuthError(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof AuthorizationError || /authorization violation|authentication (expired|timeout)|user authentication/i.test(e.message)) return true;
  }
  return false;
}

/** The `name` claim of a NATS user JWT (the principal id), read without trusting it: for error messages only. */
function userName(jwt: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { name?: unknown };
    return typeof claims.name === 'string' ? claims.name.slice(0, 80) : undefined;
  } catch {
    return undefined;
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
