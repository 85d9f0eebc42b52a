/**
 * Starts one key manager instance (issue 12, DESIGN §8):
 * 1. opens custody: the root key and the NATS account key from its own key store (fail secure:
 *    a wrong KEK, a corrupted or missing key stops the start);
 * 2. rebuilds its state from the ledger through the verified reader (control events sealed to it);
 * 3. reconciles the world with that state: every principal's directory entry as the state calls
 *    for (so an older entry put back by hand is replaced and, being a lower version or an
 *    un-revocation, refused by every reader), and the account JWT's NATS revocations;
 * 4. only then answers `bulwark.keys.*`; every applied fact repeats step 3 for its principal.
 */
import { createEventPublisher, createRejectionReporter, ensureStreams, LEDGER_PRINCIPAL, publishDirectoryEntry, serveCommands, type Bus, type CommandServer } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender, type ChannelReceiver, type Directory } from '@bulwark/envelope';
import { FileKeyStore, generateKey as generateRawKey, type KeyStore, type RootSigner } from '@bulwark/keystore';
import { encodeNkeySeed, nkeyPair } from '@bulwark/nats-auth';
import { encodeEvent, newEvent } from '@bulwark/events';
import type { Logger } from '@bulwark/telemetry';
import { activeVersion, factDetails, rotateAfter } from '@bulwark/ledger-reader';
import type { ConfiguredChannel } from '../channels/config.js';
import { ChannelDesk } from '../channels/desk.js';
import type { NatsRevoker } from '../nats/revoker.js';
import { SWITCH_SETTLE_MS } from '@bulwark/client';
import { Certifier } from './certifier.js';
import { startCompromiseRaises, type CompromiseRaises } from './compromise.js';
import { commitFact, createHandlers, FACT_SUBJECTS } from './handlers.js';
import { holdsOwnKeys, previousX25519Of, settleOnDirectory, settleOwnVersion, startSelfRotation, type OwnIdentity, type SelfRotation } from './self-rotation.js';
import { KeyProjection } from './projection.js';

const TEN_YEARS_MS = 10 * 366 * 24 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;

export interface KeyManagerOptions {
  /** A connected bus (the service does not close it). */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /**
   * svc.key-manager's own identity: X25519 for sessions, Ed25519 to sign join tokens. Switched in
   * place when it rotates itself (self-rotation.ts), which it does when `store` holds these keys.
   */
  readonly identity: OwnIdentity;
  readonly directory: Directory;
  /** The key manager's own store: the root key and the NATS account key (custody). */
  readonly store: KeyStore;
  /** The root signing key when the store does not hold it (an HSM's, `openKeyManagerStore`); default the store's. */
  readonly root?: RootSigner;
  readonly ledgerPublicKey: Uint8Array;
  readonly ledgerReceiver?: SealedReceiver | ChannelReceiver;
  /** Principals allowed to administer keys. */
  readonly admins: readonly string[];
  /** Principals besides the administrators that may revoke (default: svc.incident-response). */
  readonly revokers?: readonly string[];
  /** Directory entry validity (`security.key_rotation_interval_days`, default 90). */
  readonly validityDays?: number;
  /** How old an active version may get before its holder is due to rotate it (default `validityDays`; tests use seconds). */
  readonly rotationIntervalMs?: number;
  /** How long past that a version not rotated is recorded overdue (`keys.rotation_overdue`, once per version; default 7 days). */
  readonly rotationOverdueGraceMs?: number;
  /** Pushes NATS revocations; none in a deployment without NATS authentication. */
  readonly revoker?: NatsRevoker;
  /** How often the revocations are pushed and the directory entries published again (a restarted nats-server has forgotten them, an operator may have put an old entry back; default 10 000 ms). */
  readonly repushIntervalMs?: number;
  /** How long after an enrolment or a rotation the new entry is published (default 100 ms: the reply, sealed in the old version's session, goes first). */
  readonly certifiedPublishDelayMs?: number;
  /**
   * How long after the holder's rotation a `compromise` rotation request raises the minimum verify
   * version past the reported version (default SWITCH_SETTLE_MS + 2000 ms: the holder has switched to its new keys; compromise.ts).
   */
  readonly compromiseRaiseDelayMs?: number;
  /** How long after an enrolment its bootstrap NATS user is revoked (default 2000 ms: the reply goes first). */
  readonly bootstrapGraceMs?: number;
  readonly applyWaitMs?: number;
  /** A new epoch of every channel after this long (default 24 h; 0: never on an interval). */
  readonly channelRotationIntervalMs?: number;
  /** Channels created at start if the ledger has none of them yet, and the kinds whose enrolled principals join them (SYMBIONT_KEY_CHANNELS). */
  readonly channels?: readonly ConfiguredChannel[];
  /** Lifetime of the NATS user JWTs it issues (enroll, rotate, renew; default 24 h, renewed at half-life by `@bulwark/client`'s CredentialRenewal). */
  readonly credentialLifetimeMs?: number;
  /** Whether its bus connection authenticates as its own NATS user (default: its store holds the NATS account key); then its NATS user moves with its own rotation. */
  readonly busAuthenticated?: boolean;
  /** After its own rotation moved its connection to a new NATS user: the host's credential renewal follows it (main.ts). */
  readonly onOwnCredentials?: (credentials: { jwt: string; seed: Uint8Array }, version: number) => void;
  /** How often it checks whether its own identity is due to rotate (default a tenth of `rotationIntervalMs`, at most 60 s; SYMBIONT_KEY_ROTATION_CHECK_MS). */
  readonly selfRotationCheckMs?: number;
  readonly bootTimeoutMs?: number;
  readonly syncIntervalMs?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export interface KeyManager {
  readonly instanceId: string;
  readonly projection: KeyProjection;
  /** The channels and their epochs (bulwark.keys.channel). */
  readonly channels: ChannelDesk;
  /** Settles once the side effects queued so far (directory entries, revocations) are done. */
  settled(): Promise<void>;
  /**
   * A fresh user JWT for its own NATS user `natsUser` (the credential lifetime, as every JWT it
   * issues): it answers `keys.renew` for the others and signs its own with the same account key.
   */
  renewOwn(natsUser: string): Promise<{ natsJwt: string }>;
  /** Its own identity's version now (follows its own rotations). */
  readonly ownVersion: number;
  /** Rotates its own identity now (E_KEYS_SELF_ROTATION where it does not: its keys not in its store, or the bus authenticates). */
  rotateOwnIdentity(trigger?: 'on_demand' | 'interval' | 'compromise'): Promise<number>;
  stop(): Promise<void>;
}

export async function startKeyManager(options: KeyManagerOptions): Promise<KeyManager> {
  const { bus, provider, identity, directory, logger } = options;
  const now = options.now ?? Date.now;
  const credentialLifetimeMs = options.credentialLifetimeMs ?? DAY_MS;
  const certifier = await Certifier.open({ store: options.store, ...(options.root === undefined ? {} : { root: options.root }), provider, namespace: bus.namespace, validityDays: options.validityDays ?? 90 });
  await ensureStreams(bus);
  // Its own keys in its own store: it keeps new versions there and rotates itself. Earlier
  // versions' X25519 keys open what the ledger sealed to them (replayed at every start).
  const ownsKeys = await holdsOwnKeys(options.store, identity);
  // Its own rotation (started once it serves; the applied facts reach it through here).
  const own: { rotation?: SelfRotation } = {};
  if (ownsKeys) {
    identity.previousX25519 = await previousX25519Of(options.store, identity.id, identity.version);
    await settleOnDirectory(identity, options.store, directory, logger);
  }
  const sender = new SealedSender({ provider, self: identity, directory, recipientId: LEDGER_PRINCIPAL });
  const events = createEventPublisher(bus, sender);
  const rejections = createRejectionReporter(events, { reporter: identity.id });

  // Side effects run one after another, after the state changed; failures are logged and retried by the next reconcile.
  let effects: Promise<void> = Promise.resolve();
  const queue = (what: string, fn: () => Promise<unknown>): void => {
    effects = effects.then(fn).then(
      () => undefined,
      (e: unknown) => logger?.error({ err: e }, `key manager: ${what} failed; retried at the next reconcile`),
    );
  };
  let live = false;
  const revokedAt = new Map<string, number>();
  const publishEntry = (principal: string): Promise<void> => {
    queue(`directory entry of ${principal}`, async () => {
      const key = projection.book.key(principal);
      if (key !== undefined) await publishDirectoryEntry(bus, certifier.entryFor(key, projection.book.pendingInvite(principal)?.exp));
    });
    return effects;
  };
  /** Publishes the principal's entry and waits (up to 2 s) until this instance's own directory serves that version: a reply to invite, enroll or rotate is usable at once. */
  const publishAndSee = async (principal: string): Promise<void> => {
    await publishEntry(principal);
    const want = projection.book.key(principal)?.versions.length;
    const deadline = Date.now() + 2000;
    while (directory.lookup(principal)?.keyVersion !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  };
  // NATS revocations on their own chain, not behind directory publications: the push is what
  // closes a revoked principal's connection. Each push sends the whole revoked set, so one that
  // is queued and not started yet covers every later request (they coalesce).
  let pushes: Promise<void> = Promise.resolve();
  let queuedPush: { force: boolean } | undefined;
  const pushRevocations = (force: boolean): void => {
    const revoker = options.revoker;
    if (revoker === undefined) return;
    if (queuedPush !== undefined) {
      queuedPush.force ||= force;
      return;
    }
    const request = { force };
    queuedPush = request;
    pushes = pushes
      .then(async () => {
        queuedPush = undefined;
        const t = now();
        const grace = options.bootstrapGraceMs ?? 2000;
        for (const r of projection.book.revoked()) {
          if (r.natsUser === null || revokedAt.has(r.natsUser)) continue;
          // A bootstrap identity superseded by its enrolment a moment ago: its reply may still be on the way.
          const revocation = projection.book.key(r.principal)?.versions[r.version - 1]?.revocation;
          if (revocation?.reason === 'superseded' && t - revocation.at < grace && projection.book.isBootstrap(r.principal, r.version)) continue;
          revokedAt.set(r.natsUser, t);
        }
        for (const i of projection.book.expiredInvites(t)) {
          const user = projection.book.natsUser(i.principal, i.version);
          if (user !== undefined && !revokedAt.has(user)) revokedAt.set(user, t);
        }
        await revoker.push(revokedAt, { force: request.force });
      })
      .then(
        () => undefined,
        (e: unknown) => logger?.error({ err: e }, 'key manager: NATS revocations failed; retried at the next reconcile'),
      );
  };

  // The minimum raised past a version reported compromised, once its holder rotated (compromise.ts).
  const raises: CompromiseRaises = startCompromiseRaises({ book: () => projection.book, events, self: identity.id, delayMs: options.compromiseRaiseDelayMs ?? SWITCH_SETTLE_MS + 2000, now, ...(logger === undefined ? {} : { logger }) });
  const channels = new ChannelDesk({
    provider,
    identity,
    directory,
    keys: () => projection.book,
    events,
    admins: options.admins,
    applyWaitMs: options.applyWaitMs ?? 5000,
    now,
    halted: () => projection.halted,
    ...(options.channelRotationIntervalMs === undefined ? {} : { rotationIntervalMs: options.channelRotationIntervalMs }),
    ...(options.channels === undefined ? {} : { ensure: options.channels }),
    ...(logger === undefined ? {} : { logger }),
  });
  const projection: KeyProjection = await KeyProjection.start({
    bus,
    provider,
    identity,
    directory,
    receiver: options.ledgerReceiver ?? new SealedReceiver({ provider, self: identity, directory, staleAfterMs: TEN_YEARS_MS }),
    ledgerPublicKey: options.ledgerPublicKey,
    rejections,
    events,
    ...(logger === undefined ? {} : { logger }),
    ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
    onChannelEpoch: (event) => void channels.apply(event),
    onApplied: (fact) => {
      if (!live) return;
      channels.onKeyFact(fact);
      raises.consider(fact.principal);
      own.rotation?.onFact(fact);
      if (fact.type === 'keys.revoked' || fact.type === 'keys.rotated' || fact.type === 'keys.min_version_raised') pushRevocations(false);
      // The bootstrap user that carried the enrolment is cut off a moment later, so that the
      // reply to keys.enroll reaches it first (it also expires with its token in any case).
      if (fact.type === 'keys.enrolled') setTimeout(() => pushRevocations(false), (options.bootstrapGraceMs ?? 2000) + 50).unref();
      // A new version's entry goes out a moment after the fact: the reply certifying it is sealed in
      // the session of the version it replaces, which the new entry ends (its static key changes).
      // Until then this service's sessions keep the replaced version too (LedgerKeys.holdOpen).
      if (fact.type === 'keys.enrolled' || fact.type === 'keys.rotated') {
        const release = projection.keys.holdOpen(fact.principal, (projection.book.key(fact.principal)?.versions.length ?? 1) - 1);
        setTimeout(() => void publishEntry(fact.principal).finally(release), options.certifiedPublishDelayMs ?? 100).unref();
      } else void publishEntry(fact.principal);
    },
  });
  try {
    await projection.caughtUp(options.bootTimeoutMs ?? 30_000);
  } catch (e) {
    await projection.stop();
    certifier.close();
    throw e;
  }
  if (ownsKeys) {
    try {
      await settleOwnVersion(identity, options.store, projection.book, logger);
    } catch (e) {
      await projection.stop();
      certifier.close();
      throw e;
    }
  }
  live = true;
  raises.reconcile();
  for (const key of projection.book.principals()) void publishEntry(key.id);
  pushRevocations(true);
  logger?.info({ principals: projection.book.principals().length, revoked: projection.book.revoked().length }, 'key manager: state rebuilt from the ledger');
  // Again on an interval: a restarted nats-server has forgotten the pushed revocations, and an
  // operator may have put an older entry back in the bucket (a reader that never saw the revoked
  // revision would take it): both are undone within one interval.
  const repush = setInterval(() => {
    pushRevocations(true);
    raises.reconcile();
    for (const key of projection.book.principals()) void publishEntry(key.id);
  }, options.repushIntervalMs ?? 10_000);
  repush.unref();

  // An active version its holder did not rotate by the interval and the grace: one ledger event
  // per version (`keys.rotation_overdue`; the book refuses a second), shown by `keys list`.
  const rotationIntervalMs = options.rotationIntervalMs ?? (options.validityDays ?? 90) * DAY_MS;
  const overdueGraceMs = options.rotationOverdueGraceMs ?? 7 * DAY_MS;
  const overdueSent = new Set<string>();
  const rotating = new Set<string>();
  const checkOverdue = (): void => {
    const at = now();
    for (const key of projection.book.principals()) {
      if (rotating.has(key.id)) continue;
      const active = activeVersion(key);
      const after = rotateAfter(key, rotationIntervalMs);
      if (active === undefined || after === undefined || at < after + overdueGraceMs || projection.book.overdue(key.id, active.version)) continue;
      const sent = `${key.id}/${active.version}`;
      if (overdueSent.has(sent)) continue;
      overdueSent.add(sent);
      const fact = { type: 'keys.rotation_overdue', principal: key.id, by: identity.id, version: active.version, rotateAfter: after, at } as const;
      const event = newEvent({ agentId: key.id, eventType: fact.type, details: factDetails(fact) });
      logger?.warn({ principal: key.id, version: active.version, rotateAfter: new Date(after).toISOString() }, 'key rotation overdue: recorded in the ledger');
      events.publish({ subject: FACT_SUBJECTS[fact.type], eventId: event.eventId, payload: encodeEvent(event) }).catch((e: unknown) => {
        overdueSent.delete(sent);
        logger?.warn({ err: e, principal: key.id }, 'key rotation overdue: the event was not published; retrying at the next check');
      });
    }
  };
  const overdue = setInterval(checkOverdue, Math.min(rotationIntervalMs / 10, 3_600_000));
  overdue.unref();

  const commitOwn = (fact: Parameters<typeof commitFact>[1]) => commitFact({ projection, events, applyWaitMs: options.applyWaitMs ?? 5000 }, fact);
  // Where the bus authenticates its NATS user moves with its keys: the user goes into its (file) store with the version.
  const busAuthenticated = options.busAuthenticated ?? certifier.issuesNatsUsers;
  const natsStore = options.store instanceof FileKeyStore ? options.store : undefined;
  const selfOff = !ownsKeys
    ? 'its identity keys are not in its own key store (it could not keep a new version)'
    : busAuthenticated && (!certifier.issuesNatsUsers || natsStore === undefined)
      ? 'the bus authenticates, and its store cannot issue and keep a new NATS user for it'
      : undefined;
  if (selfOff !== undefined) logger?.info({ principal: identity.id, why: selfOff }, 'key manager: its own identity does not rotate');

  const bootstrap = async () => {
    const ed = provider.ed25519.generateKeyPair();
    const x = provider.x25519.generateKeyPair();
    const seed = generateRawKey(provider, 'nats-user');
    const user = nkeyPair('nats-user', seed);
    const natsUser = user.getPublicKey();
    user.clear();
    const natsSeed = new TextDecoder().decode(encodeNkeySeed('nats-user', seed));
    seed.fill(0);
    return {
      keys: { ed25519: Buffer.from(ed.publicKey).toString('base64'), x25519: Buffer.from(x.publicKey).toString('base64') },
      secrets: { ed25519Secret: Buffer.from(ed.secretKey).toString('base64'), x25519Secret: Buffer.from(x.secretKey).toString('base64') },
      natsUser,
      natsSeed: certifier.issuesNatsUsers ? natsSeed : null,
    };
  };

  let server: CommandServer;
  try {
    server = await serveCommands(bus, {
      service: 'keys',
      version: '0.1.0',
      rejections,
      // Callers are judged by the ledger's key state too (issue 12): a revoked key is refused per frame whatever the bucket serves.
      sessions: { provider, self: identity, directory: projection.keys.guard(directory) },
      handlers: Object.assign(channels.handlers(), createHandlers({
        provider,
        // Read through to the live identity: join tokens are signed by the version live now.
        self: {
          id: identity.id,
          get ed25519SecretKey() {
            return identity.ed25519.secretKey;
          },
          get ed25519PublicKey() {
            return identity.ed25519.publicKey;
          },
          get version() {
            return identity.version;
          },
        },
        ...(selfOff === undefined ? { adoptSelf: () => own.rotation!.adopt() } : {}),
        projection,
        certifier,
        events,
        admins: options.admins,
        revokers: options.revokers ?? ['svc.incident-response'],
        applyWaitMs: options.applyWaitMs ?? 5000,
        rotationIntervalMs,
        entryOf: (principal) => directory.lookup(principal),
        credentialLifetimeMs,
        now,
        bootstrap,
        published: publishAndSee,
        rotating,
      })),
    });
  } catch (e) {
    clearInterval(repush);
    clearInterval(overdue);
    raises.stop();
    await channels.stop();
    await projection.stop();
    certifier.close();
    throw e;
  }

  const selfRotation = startSelfRotation({
    identity,
    store: options.store,
    provider,
    book: () => projection.book,
    commit: commitOwn,
    directory,
    intervalMs: rotationIntervalMs,
    ...(options.selfRotationCheckMs === undefined ? {} : { checkMs: options.selfRotationCheckMs }),
    ...(selfOff === undefined ? {} : { off: selfOff }),
    ...(busAuthenticated && natsStore !== undefined
      ? {
          nats: {
            store: natsStore,
            issue: (natsUser: string) => certifier.userJwt(identity.id, false, natsUser, now() + credentialLifetimeMs),
            // Back on the bus as the new user before the rotation returns: switchUser resolves once reconnected (or fails E_BUS_SWITCH).
            switchTo: (credentials: { jwt: string; seed: Uint8Array }) => bus.switchUser(credentials),
            ...(options.onOwnCredentials === undefined ? {} : { onSwitched: options.onOwnCredentials }),
          },
        }
      : {}),
    now,
    ...(logger === undefined ? {} : { logger }),
  });
  own.rotation = selfRotation;
  // Its own init version enters the book before the first channel epoch it wraps: a reader trusts
  // an epoch's wrapping key by the key manager's key facts before it (libs/channel keyring), and
  // once it rotated, the directory no longer serves version 1 (an incident service restarted then
  // halted on the first epoch of ledger.full, E_CHANNEL_ISSUER).
  if (selfOff === undefined && projection.book.key(identity.id) === undefined) {
    await selfRotation.adopt().catch((e: unknown) => logger?.warn({ err: e }, 'key manager: its init version is not in the key book yet; it is entered at its first rotation'));
  }
  channels.startRotation();

  let stopping: Promise<void> | undefined;
  return {
    get ownVersion() {
      return identity.version;
    },
    rotateOwnIdentity: (trigger) => selfRotation.rotate(trigger),
    instanceId: server.instanceId,
    projection,
    channels,
    renewOwn: async (natsUser) => ({ natsJwt: await certifier.userJwt(identity.id, false, natsUser, now() + credentialLifetimeMs) }),
    settled: async () => {
      for (;;) {
        const current = effects;
        const currentPushes = pushes;
        await Promise.all([current, currentPushes]);
        if (current === effects && currentPushes === pushes) return;
      }
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(repush);
        clearInterval(overdue);
        raises.stop();
        selfRotation.stop();
        await channels.stop();
        await server.stop();
        await projection.stop();
        await Promise.all([effects, pushes]);
        certifier.close();
      })();
      return stopping;
    },
  };
}
