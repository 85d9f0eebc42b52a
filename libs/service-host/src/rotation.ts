/**
 * A service rotates its own identity while it keeps serving (issue 12, "Rotation"): the core,
 * checks on the interval and the in-place switch, is @bulwark/client's `startKeyRotation` (an
 * agent uses the same); this adds what a service process does around it. When due (or on
 * `rotate()`) the new version is stored in the service's own key store at once (keys, nkey and
 * JWT: a restart loads it), renewed JWTs of the new user are stored too, and credential renewal
 * restarts for the new nkey after the switch. The new keys are staged in the store's pending slot
 * before the key manager is asked, so a lost reply or a crash before they were stored is settled
 * with it (at once, at the next check, at the next start: @bulwark/client rotation-settle.ts).
 */
import type { Bus, KvDirectory } from '@bulwark/bus';
import { startKeyRotation, type KeyRotation, type RotatedKeys } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { BulwarkError, InputError } from '@bulwark/errors';
import { FileKeyStore, pendingRotationSlot, type Identity, type KeyStore } from '@bulwark/keystore';
import { storeRenewedJwt } from '@bulwark/nats-auth';
import type { Logger } from '@bulwark/telemetry';
import { keepRotated } from './rotation-keep.js';
import { startServiceRenewal, type ServiceRenewal } from './renewal.js';

const DAY_MS = 86_400_000;

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
  /** Rotation of its own identity; undefined: renewal only (the key manager, which certifies itself). */
  readonly rotation?: { readonly intervalMs: number; readonly checkMs?: number };
  /** After each switch to a new version (identity switched, NATS user moved): the service drops what it cached under the old keys. */
  readonly onSwitched?: (version: number) => void;
  readonly timeoutMs?: number;
}

export interface ServiceKeys {
  /** Rejects when the presented JWT expired without a renewal (see renewal.ts); never resolves. */
  readonly expired: Promise<never>;
  readonly renewals: number;
  readonly rotations: number;
  /** Rotates now (on demand); resolves with the new version. One rotation at a time. */
  rotate(trigger?: 'on_demand' | 'interval' | 'compromise'): Promise<number>;
  /** The service moved its connection to another NATS user itself (the key manager's own rotation): renewal follows that user, version `version` in the store. */
  follow(credentials: { jwt: string; seed: Uint8Array }, version: number): void;
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

/** Renewal for the service's current NATS user and, when configured, rotation of its identity. */
export function startServiceKeys(options: ServiceKeysOptions): ServiceKeys {
  const { bus, identity, directory, crypto, log } = options;
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
    const next = startServiceRenewal({ ...base, renew: renewFor(options.renew ?? ((u) => rotation.calls().renew(u))) });
    renewal = next;
    next.expired.catch((e: unknown) => {
      if (renewal === next) fail(e);
    });
  };

  const unkept = (): BulwarkError => new BulwarkError('E_ROTATION_STORE', `${identity.id}: its key store is not a file store; the new version could not be kept`, { principal: identity.id });
  const keep = async (rotated: RotatedKeys): Promise<void> => {
    if (store === undefined) throw unkept();
    await keepRotated(store, identity.id, rotated);
  };
  const rotation: KeyRotation = startKeyRotation({
    bus,
    identity,
    directory,
    crypto,
    credentials: options.credentials,
    keep,
    onSwitched: (rotated) => {
      if (rotated.nats !== null) {
        natsVersion = rotated.version;
        startRenewal({ jwt: rotated.nats.jwt, seed: rotated.nats.seed });
      }
      options.onSwitched?.(rotated.version);
    },
    onRotated: (rotated, trigger) => log.info({ principal: identity.id, version: rotated.version, trigger, notAfter: rotated.notAfter }, `identity rotated to version ${rotated.version}`),
    onError: (error) => log.warn({ err: error, principal: identity.id }, 'key rotation check failed; retrying at the next check'),
    ...(store === undefined ? {} : { staging: pendingRotationSlot(store, identity.id) }),
    onSettled: (version, settlement, detail) => log.warn({ principal: identity.id, version, settlement, ...(detail === undefined ? {} : { detail }) }, `key rotation to version ${version} settled with the key manager: ${settlement}`),
    // Without a file store a new version could not be kept: never certified, so never checked.
    ...(options.rotation === undefined || store === undefined ? {} : { intervalMs: options.rotation.intervalMs, ...(options.rotation.checkMs === undefined ? {} : { checkMs: options.rotation.checkMs }) }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  startRenewal(options.credentials);
  if (options.rotation !== undefined && store === undefined) log.warn({ err: unkept(), principal: identity.id }, 'key rotation: off');
  else if (options.rotation !== undefined) {
    log.info({ principal: identity.id, version: identity.version, intervalMs: options.rotation.intervalMs, checkMs: Math.round(rotation.checkMs!) }, 'key rotation: checked against the key manager');
  }

  return {
    expired,
    get renewals() {
      return renewals + (renewal?.renewals ?? 0);
    },
    get rotations() {
      return rotation.rotations;
    },
    // Refused before anything is certified when the new version could not be kept.
    rotate: (trigger) =>
      store === undefined
        ? Promise.reject(unkept())
        : rotation.rotate(trigger),
    follow(credentials, version) {
      natsVersion = version;
      startRenewal(credentials);
    },
    stop() {
      rotation.stop();
      renewal?.stop();
    },
  };
}
