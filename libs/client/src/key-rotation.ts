/**
 * A principal rotates its own identity on the interval while it keeps working (issue 12,
 * "Rotation"; SPIRE's agents rotate their SVIDs the same way): the key manager never holds
 * another principal's private key, so the holder drives it. An agent calls this directly; a
 * service gets it from @bulwark/service-host (`startServiceKeys`). Every check period (a tenth of
 * the interval, at most 60 s, jittered ±20 %) the holder asks the key manager for its own key
 * (`bulwark.keys.get`: `rotationRequested` and `rotationDue`, computed there from the ledger's
 * state and the rotation interval; what to do with them is rotation-check.ts); a principal made by
 * `bulwark init`, not yet in the key book, is due once its keys are older than the interval. When
 * due (or on `rotate()`), in this order:
 *
 * 1. new Ed25519, X25519 and NATS user keys are made here and staged durably (`staging`, the
 *    holder's key store's pending slot); `bulwark.keys.rotate` certifies them as the next version
 *    (its reply travels in the old version's session). When the call fails or times out, the
 *    rotation is settled with the key manager (rotation-settle.ts): committed with these keys
 *    (the reply was lost): adopted, its NATS JWT asked again with `keys.renew`; not held: sent
 *    again (same version, same keys); held with other keys, or refused: the staged keys dropped;
 *    otherwise left staged and settled at the next check (and at start, after a crash);
 * 2. `keep` hands them to the caller, who stores them at once (this library owns no key store):
 *    a restart loads them. From the call on, the new X25519 key opens frames made to it
 *    (`previousX25519`: a channel epoch the key manager wraps to it may come before step 3);
 * 3. once this process's directory serves the new entry, the live identity is switched in place:
 *    the one identity object every session and sealed sender of the process holds, so new
 *    handshakes and sealed frames use the new keys. The replaced X25519 key goes to
 *    `previousX25519`: a handshake or sealed frame a peer made from the old entry opens;
 * 4. the NATS connection moves to the new user (`Bus.switchUser`: once its command servers are
 *    idle, one reconnect, subscriptions resumed), then `onSwitched`: the caller drops its sessions (`client.reset()`) and restarts
 *    credential renewal for the new nkey.
 *
 * Without `staging`, a failure before `keep` returns changes nothing here (the next check tries
 * again), but a reply lost after the key manager committed leaves the holder on keys the directory
 * no longer serves; with it, that is settled. After `keep`, the new version is what a restart loads.
 */
import { CommandClient, createEventPublisher, createRejectionReporter, LEDGER_PRINCIPAL, type Bus } from '@bulwark/bus';
import type { CryptoProvider, Ed25519KeyPair, X25519KeyPair } from '@bulwark/crypto';
import { SealedSender, type Directory } from '@bulwark/envelope';
import { BulwarkError, InputError } from '@bulwark/errors';
import { fromSeed, Prefix } from '@nats-io/nkeys';
// The seed codec is not re-exported by the package's entry point (as in @bulwark/nats-auth).
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { adoptionMessage } from './key-possession.js';
import { createKeyCalls, type CurrentNatsUser, type KeyCalls } from './keys.js';
import { rotationCheckMs, rotationTrigger } from './rotation-check.js';
import { settleRotation, type RotationStaging, type Settlement, type StagedRotation } from './rotation-settle.js';

/** How long after its own directory serves its new entry a holder waits before sealing under the new key (well within the 30 s superseded grace of its consumers). */
export const SWITCH_SETTLE_MS = 1000;

/** The live identity a rotation switches in place (a `@bulwark/keystore` Identity is one). */
export interface RotatingIdentity {
  readonly id: string;
  readonly version: number;
  readonly ed25519: Ed25519KeyPair;
  readonly x25519: X25519KeyPair;
  /** ISO 8601: when its keys were made (the age of a principal not in the key book). */
  readonly created: string;
  readonly previousX25519?: readonly X25519KeyPair[];
}

/** A new version, certified: what the caller stores (`keep`) and connects with after a restart. */
export interface RotatedKeys {
  readonly principal: string;
  readonly version: number;
  readonly notAfter: string;
  readonly ed25519: Ed25519KeyPair;
  readonly x25519: X25519KeyPair;
  /** The new NATS user: its raw 32-byte seed (wiped once the rotation returns), its text seed (`SU...` as bytes) and JWT; null where the bus does not authenticate. */
  readonly nats: { readonly rawSeed: Uint8Array; readonly seed: Uint8Array; readonly jwt: string } | null;
}

export type RotationTrigger = 'on_demand' | 'interval' | 'compromise';

export interface KeyRotationOptions {
  /** The connected bus, as the current NATS user (moved to the new one at a rotation). */
  readonly bus: Bus;
  /** The live identity every session of the process holds (switched in place). */
  readonly identity: RotatingIdentity;
  readonly directory: Directory;
  readonly crypto: CryptoProvider;
  /** The NATS user the bus connected with (its seed proves it to the key manager for a principal not yet in the key book). */
  readonly credentials: { readonly jwt: string; readonly seed: Uint8Array };
  /** Stores the new version; the switch waits for it, and a rejection leaves the old version live. */
  readonly keep: (rotated: RotatedKeys) => Promise<void>;
  /** After the switch: drop sessions made under the old version, restart credential renewal. */
  readonly onSwitched?: (rotated: RotatedKeys) => void;
  readonly onRotated?: (rotated: RotatedKeys, trigger: RotationTrigger) => void;
  /** A check or rotation that failed (retried at the next check). */
  readonly onError?: (error: unknown) => void;
  /**
   * Where the new keys are staged durably before `keys.rotate` is asked (rotation-settle.ts).
   * With it, a failed or timed-out call (its reply lost after the key manager committed) and a
   * stop before `keep` are settled with the key manager: at once, at every check and at start.
   * Without it, a reply lost after the commit leaves the holder on keys the directory no longer serves.
   */
  readonly staging?: RotationStaging;
  /** A staged rotation settled with the key manager after its call failed (or at start). */
  readonly onSettled?: (version: number, settlement: Settlement['kind'], detail?: string) => void;
  /** The rotation interval; undefined: on demand only. */
  readonly intervalMs?: number;
  /** The check period (default a tenth of the interval, at most 60 s: rotation-check.ts). */
  readonly checkMs?: number;
  readonly timeoutMs?: number;
}

export interface KeyRotation {
  readonly rotations: number;
  /** The check period (jittered ±20 %), undefined without an interval. */
  readonly checkMs: number | undefined;
  /** The key manager's calls over a session as the current version. */
  calls(): KeyCalls;
  /** Rotates now; resolves with the new version. One rotation at a time. */
  rotate(trigger?: RotationTrigger): Promise<number>;
  /**
   * The settle, at start, of a rotation staged earlier (`staging`): true once one was settled
   * (adopted, or sent again and switched), false when there was none; rejects (also reported to
   * `onError`) when it could not be settled now, and the next check tries again.
   */
  readonly settled: Promise<boolean>;
  /** No more checks; resolves once a rotation under way (already asked of the key manager) has ended. */
  stop(): Promise<void>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function startKeyRotation(options: KeyRotationOptions): KeyRotation {
  const { bus, directory, crypto } = options;
  const live = options.identity as Mutable<RotatingIdentity>;
  const id = live.id;
  const intervalMs = options.intervalMs;
  if (intervalMs !== undefined && !(Number.isSafeInteger(intervalMs) && intervalMs >= 1000)) {
    throw new InputError('E_CONFIG', `key rotation of ${id}: intervalMs=${intervalMs}: must be an integer number of milliseconds, at least 1000`, { principal: id });
  }
  let seed = options.credentials.seed.slice();

  // The key manager's calls over a session as this identity (dropped after a rotation: the key
  // manager refuses the old version's session once the new entry is out).
  let calls: KeyCalls | undefined;
  let client: CommandClient | undefined;
  const keyCalls = (): KeyCalls => {
    if (calls !== undefined) return calls;
    const c = new CommandClient(bus, {
      sessions: { provider: crypto, self: live, directory },
      rejections: createRejectionReporter(createEventPublisher(bus, new SealedSender({ provider: crypto, self: live, directory, recipientId: LEDGER_PRINCIPAL })), { reporter: id }),
    });
    client = c;
    // No directory given: `rotate` returns at the reply, and the keys are kept before the switch waits for the entry.
    calls = createKeyCalls(crypto, async (subject, body) => {
      const reply = await c.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: options.timeoutMs ?? 5000 });
      return JSON.parse(new TextDecoder().decode(reply)) as unknown;
    });
    return calls;
  };

  const notInBook = (e: unknown): boolean => e instanceof BulwarkError && e.context['remoteCode'] === 'E_KEY_UNKNOWN';

  /** The number of versions the key manager holds (a principal not in the book: its own version). */
  const currentVersions = async (): Promise<{ versions: number; inBook: boolean }> => {
    try {
      return { versions: (await keyCalls().get(id)).versions.length, inBook: true };
    } catch (e) {
      if (notInBook(e)) return { versions: live.version, inBook: false };
      throw e;
    }
  };

  /** Init's NATS user, proved by its nkey, for the key manager to record as version 1's (and revoke with it). */
  const currentNatsUser = (): CurrentNatsUser => {
    const pair = fromSeed(seed.slice()); // clear() wipes the bytes it was given
    try {
      const natsUser = pair.getPublicKey();
      return { natsUser, proof: Buffer.from(pair.sign(adoptionMessage(id, natsUser))).toString('base64') };
    } finally {
      pair.clear();
    }
  };

  let rotations = 0;
  let stopped = false;
  const staging = options.staging;

  /** Stored, then the live identity and the NATS connection switched to `rotated` (steps 2 to 4). */
  const switchTo = async (rotated: RotatedKeys, trigger: RotationTrigger, earlier: readonly X25519KeyPair[]): Promise<number> => {
    // 2. Kept: a restart loads this version (then the staged copy is no longer needed).
    await options.keep(rotated);
    // A leftover is dropped at the next check: it is no reason to stay on the old keys.
    await staging?.drop().catch((e: unknown) => options.onError?.(e));
    // 3. Switched once our directory serves the new entry (published just after the reply).
    const deadline = Date.now() + 5000;
    while (directory.lookup(id)?.keyVersion !== rotated.version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // Its peers' directories see the new entry a moment after ours: for SWITCH_SETTLE_MS the
    // process opens handshakes and sealed frames made to either key but still seals under the
    // old one (its consumers accept that for their superseded grace), then switches.
    live.previousX25519 = [rotated.x25519, ...earlier];
    await new Promise((r) => setTimeout(r, SWITCH_SETTLE_MS));
    live.previousX25519 = [live.x25519, ...earlier];
    live.x25519 = rotated.x25519;
    live.ed25519 = rotated.ed25519;
    live.version = rotated.version;
    live.created = new Date().toISOString();
    client?.reset();
    client = undefined;
    calls = undefined;
    // 4. The NATS connection as the new user.
    if (rotated.nats !== null) {
      // Not back as the new user within its bound (E_BUS_SWITCH): reported; the connection keeps trying as it.
      await bus.switchUser({ jwt: rotated.nats.jwt, seed: rotated.nats.seed }).catch((e: unknown) => options.onError?.(e));
      seed.fill(0);
      seed = rotated.nats.seed.slice();
    }
    rotations++;
    options.onSwitched?.(rotated);
    options.onRotated?.(rotated, trigger);
    return rotated.version;
  };

  const natsUserOf = (natsRaw: Uint8Array): { seed: Uint8Array; user: string } => {
    const natsSeed = Codec.encodeSeed(Prefix.User, natsRaw);
    const pair = fromSeed(natsSeed.slice());
    try {
      return { seed: natsSeed, user: pair.getPublicKey() };
    } finally {
      pair.clear();
    }
  };

  /** keys.rotate for the staged keys (the first time, or sent again after a settle found nothing). */
  const certify = async (staged: StagedRotation, trigger: RotationTrigger, inBook: boolean, earlier: readonly X25519KeyPair[]): Promise<number> => {
    const nats = natsUserOf(staged.natsRaw);
    const certified = await keyCalls().rotate(id, staged.version, { ed25519: staged.ed25519, x25519: staged.x25519, natsUser: nats.user }, trigger, inBook ? undefined : currentNatsUser());
    const rotated: RotatedKeys = { principal: id, version: certified.version, notAfter: certified.notAfter, ed25519: staged.ed25519, x25519: staged.x25519, nats: certified.natsJwt === null ? null : { rawSeed: staged.natsRaw, seed: nats.seed, jwt: certified.natsJwt } };
    return switchTo(rotated, trigger, earlier);
  };

  /**
   * The key manager committed the staged version but its reply was lost: its JWT for the new NATS
   * user is asked again (`keys.renew`) over a session as the new version, then stored and switched.
   */
  const adopt = async (staged: StagedRotation, entry: { notAfter: number }, trigger: RotationTrigger, earlier: readonly X25519KeyPair[]): Promise<number> => {
    const nats = natsUserOf(staged.natsRaw);
    const asNew = { id, version: staged.version, ed25519: staged.ed25519, x25519: staged.x25519 };
    const c = new CommandClient(bus, { sessions: { provider: crypto, self: asNew, directory }, rejections: createRejectionReporter(createEventPublisher(bus, new SealedSender({ provider: crypto, self: asNew, directory, recipientId: LEDGER_PRINCIPAL })), { reporter: id }) });
    let jwt: string | null;
    try {
      const renewed = await createKeyCalls(crypto, async (subject, body) => JSON.parse(new TextDecoder().decode(await c.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: options.timeoutMs ?? 5000 }))) as unknown).renew(nats.user);
      jwt = renewed.natsJwt;
    } catch (e) {
      // A deployment whose bus does not authenticate has no NATS users to renew.
      if (!(e instanceof BulwarkError && e.context['remoteCode'] === 'E_KEYS_NO_NATS')) throw e;
      jwt = null;
    } finally {
      c.reset();
    }
    const rotated: RotatedKeys = { principal: id, version: staged.version, notAfter: new Date(entry.notAfter).toISOString(), ed25519: staged.ed25519, x25519: staged.x25519, nats: jwt === null ? null : { rawSeed: staged.natsRaw, seed: nats.seed, jwt } };
    return switchTo(rotated, trigger, earlier);
  };

  /**
   * A staged rotation whose call failed (`failure`) or whose outcome is unknown (at start, at a
   * check): adopted, sent again, or dropped, as the key manager's state says (rotation-settle.ts).
   */
  const settle = async (staged: StagedRotation, trigger: RotationTrigger, earlier: readonly X25519KeyPair[], failure?: unknown): Promise<number> => {
    const outcome = await settleRotation({
      principal: id,
      staged,
      directory,
      keyView: async () => {
        try {
          return await keyCalls().get(id);
        } catch (e) {
          if (notInBook(e)) return undefined;
          throw e;
        }
      },
    });
    if (outcome.kind === 'adopt') {
      options.onSettled?.(staged.version, 'adopt');
      return adopt(staged, outcome.entry, trigger, earlier);
    }
    if (outcome.kind === 'conflict' || (failure !== undefined && refused(failure))) {
      await staging?.drop();
      const why = outcome.kind === 'conflict' ? outcome.reason : `the key manager refused it (${(failure as BulwarkError).context['remoteCode'] as string})`;
      options.onSettled?.(staged.version, 'conflict', why);
      throw new BulwarkError('E_ROTATION_CONFLICT', `key rotation of ${id} to version ${staged.version}: ${why}; the staged keys were dropped`, { principal: id, version: staged.version }, { cause: failure });
    }
    options.onSettled?.(staged.version, 'absent');
    const inBook = await currentVersions().then((h) => h.inBook);
    return certify(staged, trigger, inBook, earlier);
  };

  const rotateNow = async (trigger: RotationTrigger): Promise<number> => {
    const pending = await staging?.load();
    const earlier = live.previousX25519 ?? [];
    const before = live.version;
    try {
      if (pending !== undefined && pending.version > live.version) {
        // Staged earlier (a lost reply, a stop before it was stored): settled before anything new.
        live.previousX25519 = [pending.x25519, ...earlier];
        return await settle(pending, trigger, earlier);
      }
      if (pending !== undefined) await staging?.drop(); // stored already (a stop before the drop)
      const held = await currentVersions();
      const natsRaw = crypto.ed25519.generateKeyPair().secretKey;
      const staged: StagedRotation = { version: held.versions + 1, ed25519: crypto.ed25519.generateKeyPair(), x25519: crypto.x25519.generateKeyPair(), natsRaw };
      try {
        // 1. Staged durably, then certified. While the call is out the process also opens
        // handshakes made to the new key (its peers may see the new entry before the reply comes).
        await staging?.stage(staged);
        live.previousX25519 = [staged.x25519, ...earlier];
        try {
          return await certify(staged, trigger, held.inBook, earlier);
        } catch (failure) {
          if (staging === undefined) throw failure;
          return await settle(staged, trigger, earlier, failure);
        }
      } finally {
        natsRaw.fill(0);
      }
    } finally {
      // Not switched (a failure): the staged key is opened no more until it is settled.
      if (live.version === before) live.previousX25519 = earlier;
      pending?.natsRaw.fill(0);
    }
  };

  /** A rotation staged by an earlier attempt or process: settled now (at start, at a check). */
  const settlePending = async (): Promise<boolean> => {
    const pending = await staging?.load();
    if (pending === undefined) return false;
    pending.natsRaw.fill(0);
    if (pending.version <= live.version) {
      await staging!.drop(); // stored already: a stop between storing and dropping
      return false;
    }
    await rotate('interval');
    return true;
  };

  /** A definite refusal from the key manager (its handler threw before any commit), not a lost or pending outcome. */
  const refused = (e: unknown): boolean => e instanceof BulwarkError && typeof e.context['remoteCode'] === 'string' && e.context['remoteCode'] !== 'E_KEYS_PENDING';

  /** The trigger to rotate with now (a request first, then the interval), or undefined. */
  const due = async (interval: number): Promise<RotationTrigger | undefined> => {
    try {
      return rotationTrigger(await keyCalls().get(id));
    } catch (e) {
      // Made by `bulwark init`, not in the key book yet: the age of the keys it holds.
      if (notInBook(e)) return Date.now() - Date.parse(live.created) >= interval ? 'interval' : undefined;
      throw e;
    }
  };

  let running: Promise<number> | undefined;
  const rotate = (trigger: RotationTrigger = 'on_demand'): Promise<number> => {
    running ??= rotateNow(trigger).finally(() => (running = undefined));
    return running;
  };

  let timer: NodeJS.Timeout | undefined;
  const period = intervalMs === undefined ? undefined : (options.checkMs ?? rotationCheckMs(intervalMs));
  if (intervalMs !== undefined && period !== undefined) {
    const schedule = (): void => {
      if (stopped) return;
      timer = setTimeout(() => void check(), period * (0.8 + 0.4 * Math.random()));
      timer.unref();
    };
    const check = async (): Promise<void> => {
      try {
        if (!(await settlePending())) {
          const trigger = await due(intervalMs);
          // A check under way when the rotation was stopped starts nothing.
          if (trigger !== undefined && !stopped) await rotate(trigger);
        }
      } catch (error) {
        options.onError?.(error);
      }
      schedule();
    };
    schedule();
  }

  // At start: a rotation this process (or its predecessor) staged and never stored is settled.
  const settled = staging === undefined ? Promise.resolve(false) : settlePending();
  settled.catch((error: unknown) => options.onError?.(error));

  return {
    get rotations() {
      return rotations;
    },
    checkMs: period,
    settled,
    calls: keyCalls,
    rotate,
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
