/**
 * A service rotates its own identity while it keeps serving (issue 12, "Rotation"; SPIRE's agents
 * rotate their SVIDs the same way): the key manager never holds another principal's private key,
 * so the holder drives it. Every check period (a tenth of the interval, at most an hour, jittered
 * ±20 %) the service asks the key manager for its own key (`bulwark.keys.get`: `rotationDue`,
 * computed there from the ledger's state and the rotation interval); a service made by `bulwark
 * init`, not yet in the key book, is due once its stored keys are older than the interval. When due
 * (or on `rotate()`), in this order:
 *
 * 1. new Ed25519, X25519 and NATS user keys are made here; `bulwark.keys.rotate` certifies them as
 *    the next version (its reply travels in the old version's session);
 * 2. the new version is stored in the service's own key store at once (keys, nkey and JWT: a
 *    restart loads it);
 * 3. once this process's directory serves the new entry, the live identity is switched in place:
 *    the one `Identity` object every session initiator, responder, sealed sender and receiver of
 *    the process holds, so new handshakes and sealed frames use the new keys (a sealed sender
 *    starts a new epoch; the bus's admission keys are derived anew). The replaced X25519 key goes
 *    to `previousX25519`: a handshake or sealed frame a peer made from the old entry (a JetStream
 *    message queued before the switch, the ledger's control stream replayed at a restart) opens;
 * 4. the NATS connection moves to the new user (`Bus.switchUser`: one reconnect, subscriptions
 *    resumed) and credential renewal restarts for the new nkey (renewed JWTs stored too).
 *
 * A failure before step 2 changes nothing here (the next check tries again); after it, the new
 * version is what a restart loads.
 */
import { CommandClient, createEventPublisher, createRejectionReporter, LEDGER_PRINCIPAL, type Bus, type KvDirectory } from '@bulwark/bus';
import { adoptionMessage, createKeyCalls, type CurrentNatsUser, type KeyCalls } from '@bulwark/client';
import { fromSeed } from '@nats-io/nkeys';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedSender } from '@bulwark/envelope';
import { BulwarkError, InputError } from '@bulwark/errors';
import { FileKeyStore, generateKey, type Identity, type KeyStore } from '@bulwark/keystore';
import { encodeNkeySeed, nkeyPair, storeNatsUser, storeRenewedJwt } from '@bulwark/nats-auth';
import type { Logger } from '@bulwark/telemetry';
import { startServiceRenewal, type ServiceRenewal } from './renewal.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** How long after its own directory serves its new entry a service waits before sealing under the new key (well within the 5 s superseded grace of its consumers). */
export const SWITCH_SETTLE_MS = 1000;

/**
 * The rotation interval: `security.key_rotation_interval_days`, or `SYMBIONT_KEY_ROTATION_INTERVAL_MS`
 * (tests: seconds instead of days; an integer of ms from 1000 up to the configured days).
 */
export function keyRotationIntervalMs(intervalDays: number, env: NodeJS.ProcessEnv): number {
  const days = intervalDays * DAY_MS;
  const text = env['SYMBIONT_KEY_ROTATION_INTERVAL_MS'];
  if (text === undefined) return days;
  const ms = /^[1-9]\d*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(ms) || ms < 1000 || ms > days) {
    throw new InputError('E_CONFIG', `SYMBIONT_KEY_ROTATION_INTERVAL_MS=${JSON.stringify(text)}: must be an integer number of milliseconds from 1000 to security.key_rotation_interval_days (${days})`, { setting: 'SYMBIONT_KEY_ROTATION_INTERVAL_MS' });
  }
  return ms;
}

export interface ServiceKeysOptions {
  readonly bus: Bus;
  readonly store: KeyStore;
  /** The service's live identity (switched in place at a rotation). */
  readonly identity: Identity;
  readonly directory: KvDirectory;
  readonly crypto: CryptoProvider;
  readonly log: Logger;
  readonly credentials: { readonly jwt: string; readonly seed: Uint8Array };
  /** Where a fresh JWT comes from (default `bulwark.keys.renew`; the key manager signs its own). */
  readonly renew?: (natsUser: string) => Promise<{ natsJwt: string }>;
  /** Rotation of its own identity; undefined: renewal only (the key manager, the ledger). */
  readonly rotation?: { readonly intervalMs: number; readonly checkMs?: number };
  readonly timeoutMs?: number;
}

export interface ServiceKeys {
  /** Rejects when the presented JWT expired without a renewal (see renewal.ts); never resolves. */
  readonly expired: Promise<never>;
  readonly renewals: number;
  readonly rotations: number;
  /** Rotates now (on demand); resolves with the new version. One rotation at a time. */
  rotate(trigger?: 'on_demand' | 'interval' | 'compromise'): Promise<number>;
  stop(): void;
}

/**
 * The identity as a rotating service boots with it: its latest version, and the X25519 keys of
 * its earlier versions still in its store as `previousX25519` (the ledger sealed its control
 * batches of those days to them, and the reader replays them at every start).
 */
export async function withPreviousKeys(store: KeyStore, identity: Identity): Promise<Identity> {
  const older = (await store.list(identity.id)).filter((i) => i.kind === 'x25519' && i.version < identity.version).sort((a, b) => b.version - a.version);
  if (older.length === 0) return identity;
  const previousX25519 = [];
  for (const info of older) {
    const { secretKey } = await store.get({ principal: identity.id, kind: 'x25519', version: info.version });
    previousX25519.push({ secretKey, publicKey: info.publicKey });
  }
  return { ...identity, previousX25519 };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Renewal for the service's current NATS user and, when configured, rotation of its identity. */
export function startServiceKeys(options: ServiceKeysOptions): ServiceKeys {
  const { bus, identity, directory, crypto, log } = options;
  const live = identity as Mutable<Identity>;
  let fail: (error: unknown) => void = () => undefined;
  const expired = new Promise<never>((_, reject) => (fail = reject));
  expired.catch(() => undefined);
  const store = options.store instanceof FileKeyStore ? options.store : undefined;
  // Renewed JWTs of a rotated user are stored, so a restart presents the freshest.
  let natsVersion = 1;
  const renewFor = (inner: (u: string) => Promise<{ natsJwt: string }>) => async (natsUser: string) => {
    const fresh = await inner(natsUser);
    if (store !== undefined && natsVersion > 1) await storeRenewedJwt(store, identity.id, natsVersion, fresh.natsJwt);
    return fresh;
  };
  let renewals = 0;
  let renewal: ServiceRenewal | undefined;
  const startRenewal = (credentials: { jwt: string; seed: Uint8Array }): void => {
    if (renewal !== undefined) renewals += renewal.renewals;
    renewal?.stop();
    const base = { bus, credentials, identity, directory, crypto, log, ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) };
    const next = startServiceRenewal({ ...base, renew: renewFor(options.renew ?? ((u) => keyCalls().renew(u))) });
    renewal = next;
    next.expired.catch((e: unknown) => {
      if (renewal === next) fail(e);
    });
  };

  // The key manager's calls over a session as this identity (dropped after a rotation: the key
  // manager refuses the old version's session once the new entry is out).
  let calls: KeyCalls | undefined;
  let client: CommandClient | undefined;
  const keyCalls = (): KeyCalls => {
    if (calls !== undefined) return calls;
    const c = new CommandClient(bus, {
      sessions: { provider: crypto, self: identity, directory },
      rejections: createRejectionReporter(createEventPublisher(bus, new SealedSender({ provider: crypto, self: identity, directory, recipientId: LEDGER_PRINCIPAL })), { reporter: identity.id }),
    });
    client = c;
    // No directory given: `rotate` returns at the reply, and the keys are stored before the switch waits for the entry.
    calls = createKeyCalls(crypto, async (subject, body) => {
      const reply = await c.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: options.timeoutMs ?? 5000 });
      return JSON.parse(new TextDecoder().decode(reply)) as unknown;
    });
    return calls;
  };

  startRenewal(options.credentials);
  const rotation = options.rotation;
  let rotations = 0;
  let running: Promise<number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const rotateNow = async (trigger: 'on_demand' | 'interval' | 'compromise'): Promise<number> => {
    if (store === undefined) throw new BulwarkError('E_ROTATION_STORE', `${identity.id}: its key store is not a file store; the new version could not be kept`, { principal: identity.id });
    const held = await currentVersions();
    const version = held.versions + 1;
    const next = { ed25519: crypto.ed25519.generateKeyPair(), x25519: crypto.x25519.generateKeyPair() };
    const natsRaw = generateKey(crypto, 'nats-user');
    const natsPair = nkeyPair('nats-user', natsRaw);
    const natsUser = natsPair.getPublicKey();
    natsPair.clear();
    try {
      // 1. Certified (no directory wait here: the keys are stored first).
      const certified = await keyCalls().rotate(identity.id, version, { ...next, natsUser }, trigger, held.inBook ? undefined : currentNatsUser());
      // 2. Kept: a restart loads this version.
      await store.put({ principal: identity.id, kind: 'ed25519', version: certified.version }, next.ed25519.secretKey);
      await store.put({ principal: identity.id, kind: 'x25519', version: certified.version }, next.x25519.secretKey);
      if (certified.natsJwt !== null) await storeNatsUser(store, identity.id, certified.version, natsRaw, certified.natsJwt);
      // 3. Switched once our directory serves the new entry (published just after the reply).
      const deadline = Date.now() + 5000;
      while (directory.lookup(identity.id)?.keyVersion !== certified.version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      // Its peers' directories see the new entry a moment after ours: for SWITCH_SETTLE_MS the
      // process opens handshakes and sealed frames made to either key but still seals under the
      // old one (its consumers accept that for their superseded grace), then switches.
      const earlier = live.previousX25519 ?? [];
      live.previousX25519 = [next.x25519, ...earlier];
      await new Promise((r) => setTimeout(r, SWITCH_SETTLE_MS));
      live.previousX25519 = [live.x25519, ...earlier];
      live.x25519 = next.x25519;
      live.ed25519 = next.ed25519;
      live.version = certified.version;
      live.created = new Date().toISOString();
      client?.reset();
      client = undefined;
      calls = undefined;
      // 4. The NATS connection as the new user, renewed from now on.
      if (certified.natsJwt !== null) {
        const seed = encodeNkeySeed('nats-user', natsRaw);
        natsVersion = certified.version;
        await bus.switchUser({ jwt: certified.natsJwt, seed });
        startRenewal({ jwt: certified.natsJwt, seed });
      }
      rotations++;
      log.info({ principal: identity.id, version: certified.version, trigger, notAfter: certified.notAfter }, `identity rotated to version ${certified.version}`);
      return certified.version;
    } finally {
      natsRaw.fill(0);
    }
  };

  /** The number of versions the key manager holds (a service not in the book: its own version). */
  const currentVersions = async (): Promise<{ versions: number; inBook: boolean }> => {
    try {
      return { versions: (await keyCalls().get(identity.id)).versions.length, inBook: true };
    } catch (e) {
      if (e instanceof BulwarkError && e.context['remoteCode'] === 'E_KEY_UNKNOWN') return { versions: identity.version, inBook: false };
      throw e;
    }
  };

  /** Init's NATS user, proved by its nkey, for the key manager to record as version 1's (and revoke with it). */
  const currentNatsUser = (): CurrentNatsUser => {
    const pair = fromSeed(options.credentials.seed.slice()); // clear() wipes the bytes it was given
    try {
      const natsUser = pair.getPublicKey();
      return { natsUser, proof: Buffer.from(pair.sign(adoptionMessage(identity.id, natsUser))).toString('base64') };
    } finally {
      pair.clear();
    }
  };

  const due = async (intervalMs: number): Promise<boolean> => {
    try {
      return (await keyCalls().get(identity.id)).rotationDue;
    } catch (e) {
      // Made by `bulwark init`, not in the key book yet: the age of the keys it holds.
      if (e instanceof BulwarkError && e.context['remoteCode'] === 'E_KEY_UNKNOWN') return Date.now() - Date.parse(identity.created) >= intervalMs;
      throw e;
    }
  };

  const rotate = (trigger: 'on_demand' | 'interval' | 'compromise' = 'on_demand'): Promise<number> => {
    running ??= rotateNow(trigger).finally(() => (running = undefined));
    return running;
  };

  if (rotation !== undefined) {
    const period = rotation.checkMs ?? Math.min(rotation.intervalMs / 10, HOUR_MS);
    const schedule = (): void => {
      if (stopped) return;
      timer = setTimeout(() => void check(), period * (0.8 + 0.4 * Math.random()));
      timer.unref();
    };
    const check = async (): Promise<void> => {
      try {
        if (await due(rotation.intervalMs)) await rotate('interval');
      } catch (error) {
        log.warn({ err: error, principal: identity.id }, 'key rotation check failed; retrying at the next check');
      }
      schedule();
    };
    log.info({ principal: identity.id, version: identity.version, intervalMs: rotation.intervalMs, checkMs: Math.round(period) }, 'key rotation: checked against the key manager');
    schedule();
  }

  return {
    expired,
    get renewals() {
      return renewals + (renewal?.renewals ?? 0);
    },
    get rotations() {
      return rotations;
    },
    rotate,
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      renewal?.stop();
    },
  };
}
