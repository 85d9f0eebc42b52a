/**
 * The key manager rotates its own identity (issue 12, "a service keeps running across its own
 * rotation"). Every other principal rotates through `bulwark.keys.rotate` to this service; this
 * one cannot ask itself, so it does the same steps in process, through the same fact and rules:
 *
 * 1. new Ed25519 and X25519 keys are STAGED in its own custody store as the next version before
 *    anything is committed (a crash after the commit finds them; a crash before it leaves a staged
 *    version the ledger never certified, which the next rotation commits as is: the store never
 *    replaces a key, and nothing loads a version the ledger does not hold, see `settleOwnVersion`);
 * 2. `keys.rotated` for svc.key-manager is committed like any holder's (book.check, sealed to the
 *    ledger under the CURRENT version, applied from the ledger); a key manager made by `bulwark
 *    init` first enters its init version in the book (`keys.generated`, as `adopt` does for others);
 * 3. the new entry is certified with the root and published by the applied fact (service.ts);
 * 4. once its own directory serves it, the one live identity object is switched in place (every
 *    session, sealed sender, receiver and the handlers read it): for SWITCH_SETTLE_MS it opens
 *    frames made to either key and still seals under the old one, then it seals under the new one
 *    and keeps the replaced X25519 in `previousX25519` (frames sealed to it still open).
 *
 * Where the bus authenticates (the store holds the NATS account key) the NATS user would have to
 * move too (a new user JWT, `Bus.switchUser`, and the host's credential renewal following it):
 * not done, so there self-rotation is off and refused with E_KEYS_SELF_ROTATION (fail secure:
 * rotating the keys but keeping a user recorded for no version would leave that user unrevocable).
 */
import { SWITCH_SETTLE_MS } from '@bulwark/client';
import type { CryptoProvider, X25519KeyPair, Ed25519KeyPair } from '@bulwark/crypto';
import type { Directory } from '@bulwark/envelope';
import { BulwarkError } from '@bulwark/errors';
import { generateKey, loadIdentity, type FileKeyStore, type KeyStore } from '@bulwark/keystore';
import { encodeNkeySeed, nkeyPair, storeNatsUser, storeRenewedJwt } from '@bulwark/nats-auth';
import { activeVersion, rotateAfter, type KeyBook, type KeyFact, type PrincipalKey, type RotationTrigger, type VersionKeys } from '@bulwark/ledger-reader';
import type { Logger } from '@bulwark/telemetry';

/** The key manager's live identity: the one object every session and sealed stream of the process holds. */
export interface OwnIdentity {
  id: string;
  version: number;
  ed25519: Ed25519KeyPair;
  x25519: X25519KeyPair;
  previousX25519?: readonly X25519KeyPair[];
}

export interface SelfRotationOptions {
  /** Switched in place. */
  readonly identity: OwnIdentity;
  readonly store: KeyStore;
  readonly provider: CryptoProvider;
  readonly book: () => KeyBook;
  /** The handlers' commit path (handlers.ts `commitFact`). */
  readonly commit: (fact: KeyFact) => Promise<PrincipalKey | undefined>;
  /** This instance's directory (the switch waits until it serves the new entry). */
  readonly directory: Directory;
  /** The rotation interval; the check runs every tenth of it, at most 60 s. */
  readonly intervalMs: number;
  readonly checkMs?: number;
  /** Why it is off, or undefined when on. */
  readonly off?: string;
  /**
   * Where the bus authenticates: its NATS user moves with its keys. `issue` signs a user JWT for a
   * new nkey with the account key (as `renewOwn`), `switchTo` moves the connection (`Bus.switchUser`),
   * `onSwitched` lets the host's credential renewal follow the new user.
   */
  readonly nats?: {
    readonly store: FileKeyStore;
    issue(natsUser: string): Promise<string>;
    switchTo(credentials: { jwt: string; seed: Uint8Array }): Promise<void>;
    readonly onSwitched?: (credentials: { jwt: string; seed: Uint8Array }, version: number) => void;
  };
  readonly now: () => number;
  readonly logger?: Logger;
}

export interface SelfRotation {
  readonly rotations: number;
  /** Rotates now; resolves with the new version. One at a time. */
  rotate(trigger?: RotationTrigger): Promise<number>;
  /** Enters the init version in the book if it is not there (`keys.generated`). */
  adopt(): Promise<PrincipalKey>;
  /** A fact was applied: a rotation requested of the key manager is answered at once. */
  onFact(fact: KeyFact): void;
  stop(): void;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const keysOf = (identity: { ed25519: Ed25519KeyPair; x25519: X25519KeyPair }): VersionKeys => ({ ed25519: b64(identity.ed25519.publicKey), x25519: b64(identity.x25519.publicKey) });

function selfError(code: string, message: string, principal: string): BulwarkError {
  return new BulwarkError(code, message, { principal });
}

/** Whether the store holds the identity's keys (the key manager's own custody of them: only then can it keep a new version). */
export async function holdsOwnKeys(store: KeyStore, identity: { id: string; version: number }): Promise<boolean> {
  return (await store.has({ principal: identity.id, kind: 'ed25519', version: identity.version })) && (await store.has({ principal: identity.id, kind: 'x25519', version: identity.version }));
}

/** The X25519 keys of every other version in the store, newest first (control batches sealed to them replay at every start). */
export async function previousX25519Of(store: KeyStore, id: string, except: number): Promise<X25519KeyPair[]> {
  const infos = (await store.list(id)).filter((i) => i.kind === 'x25519' && i.version !== except).sort((a, b) => b.version - a.version);
  const out: X25519KeyPair[] = [];
  for (const info of infos) out.push({ secretKey: (await store.get({ principal: id, kind: 'x25519', version: info.version })).secretKey, publicKey: info.publicKey });
  return out;
}

/**
 * At start, before the ledger is read (its reader handshakes as this identity, so it must be one
 * the directory certifies): the version its root-signed directory entry names, when the store
 * holds it. The host loads the latest version in the store, which may be one staged before a
 * crash and never committed; the book decides afterwards (`settleOwnVersion`).
 */
export async function settleOnDirectory(identity: OwnIdentity, store: KeyStore, directory: Directory, logger?: Logger): Promise<void> {
  const entry = directory.lookup(identity.id);
  if (entry === undefined) return;
  if (entry.keyVersion !== identity.version) {
    let stored;
    try {
      stored = await loadIdentity(store, identity.id, entry.keyVersion);
    } catch (e) {
      throw selfError('E_KEYS_SELF_VERSION', `${identity.id}: its directory entry is version ${entry.keyVersion}, which its key store does not hold (${e instanceof Error ? e.message : String(e)}); refusing to run on other keys`, identity.id);
    }
    logger?.warn({ principal: identity.id, loaded: identity.version, certified: entry.keyVersion }, `key manager: starts on version ${entry.keyVersion}, the one its directory entry certifies (a later version in its store was staged, not committed)`);
    identity.ed25519 = stored.ed25519;
    identity.x25519 = stored.x25519;
    identity.version = entry.keyVersion;
    identity.previousX25519 = await previousX25519Of(store, identity.id, entry.keyVersion);
  }
  if (b64(entry.ed25519PublicKey) !== keysOf(identity).ed25519 || b64(entry.x25519PublicKey) !== keysOf(identity).x25519) {
    throw selfError('E_KEYS_SELF_VERSION', `${identity.id}: its stored version ${identity.version} is not the keys its directory entry certifies; refusing to run`, identity.id);
  }
}

/**
 * At start, once the book is rebuilt: the live identity becomes the version the ledger holds as
 * the latest (a version staged but never committed is not used; one committed but never switched
 * to before a crash is), and its keys must be the ones the ledger certified (fail secure).
 */
export async function settleOwnVersion(identity: OwnIdentity, store: KeyStore, book: KeyBook, logger?: Logger): Promise<void> {
  const key = book.key(identity.id);
  const committed = key?.versions.length ?? 1;
  if (identity.version !== committed) {
    let stored;
    try {
      stored = await loadIdentity(store, identity.id, committed);
    } catch (e) {
      throw selfError('E_KEYS_SELF_VERSION', `${identity.id}: the ledger holds its version ${committed}, which its key store does not (${e instanceof Error ? e.message : String(e)}); refusing to run on other keys`, identity.id);
    }
    logger?.warn({ principal: identity.id, loaded: identity.version, committed }, `key manager: its own identity is now version ${committed}, the latest the ledger holds`);
    identity.ed25519 = stored.ed25519;
    identity.x25519 = stored.x25519;
    identity.version = committed;
    identity.previousX25519 = await previousX25519Of(store, identity.id, committed);
  }
  const certified = key?.versions[committed - 1]?.keys;
  if (certified !== undefined && (certified.ed25519 !== keysOf(identity).ed25519 || certified.x25519 !== keysOf(identity).x25519)) {
    throw selfError('E_KEYS_SELF_VERSION', `${identity.id}: its stored version ${committed} is not the keys the ledger certified for it; refusing to run`, identity.id);
  }
}

export function startSelfRotation(options: SelfRotationOptions): SelfRotation {
  const { identity: live, store, provider, logger } = options;
  const id = live.id;
  let rotations = 0;
  let stopped = false;

  const adopt = async (): Promise<PrincipalKey> => {
    const known = options.book().key(id);
    if (known !== undefined) return known;
    const entry = options.directory.lookup(id);
    if (entry === undefined || entry.keyVersion !== 1 || live.version !== 1 || b64(entry.ed25519PublicKey) !== keysOf(live).ed25519 || b64(entry.x25519PublicKey) !== keysOf(live).x25519) {
      throw selfError('E_KEYS_SELF_VERSION', `${id}: not in the key book, and its directory entry is not its init version 1 with the keys it holds`, id);
    }
    return (await options.commit({ type: 'keys.generated', principal: id, by: id, keys: keysOf(live), at: entry.notBefore, natsUser: null }))!;
  };

  /** The next version's keys: those staged by an earlier attempt the ledger never committed, else new ones, stored before anything is committed. */
  const stage = async (version: number): Promise<{ ed25519: Ed25519KeyPair; x25519: X25519KeyPair }> => {
    const ed = { principal: id, kind: 'ed25519' as const, version };
    const x = { principal: id, kind: 'x25519' as const, version };
    if (!(await store.has(ed))) await store.put(ed, provider.ed25519.generateKeyPair().secretKey);
    if (!(await store.has(x))) await store.put(x, provider.x25519.generateKeyPair().secretKey);
    const staged = await loadIdentity(store, id, version);
    return { ed25519: staged.ed25519, x25519: staged.x25519 };
  };

  /** The next version's NATS user (staged likewise: an nkey kept from an attempt never committed is reused, with a fresh JWT). */
  const stageNats = async (version: number): Promise<{ natsUser: string; jwt: string; seed: Uint8Array } | null> => {
    const nats = options.nats;
    if (nats === undefined) return null;
    const ref = { principal: id, kind: 'nats-user' as const, version };
    const kept = await nats.store.has(ref);
    const raw = kept ? (await nats.store.get(ref)).secretKey : generateKey(provider, 'nats-user');
    try {
      const pair = nkeyPair('nats-user', raw);
      const natsUser = pair.getPublicKey();
      pair.clear();
      const jwt = await nats.issue(natsUser);
      if (kept) await storeRenewedJwt(nats.store, id, version, jwt);
      else await storeNatsUser(nats.store, id, version, raw, jwt);
      return { natsUser, jwt, seed: encodeNkeySeed('nats-user', raw) };
    } finally {
      raw.fill(0);
    }
  };

  const rotateNow = async (trigger: RotationTrigger): Promise<number> => {
    if (options.off !== undefined) throw selfError('E_KEYS_SELF_ROTATION', `${id}: does not rotate its own identity here: ${options.off}`, id);
    const current = await adopt();
    const version = current.versions.length + 1;
    if (live.version !== current.versions.length) throw selfError('E_KEYS_SELF_VERSION', `${id}: runs on version ${live.version} but the ledger holds ${current.versions.length}; not rotating`, id);
    // 1. Staged: a restart after the commit loads these keys.
    const next = await stage(version);
    const nats = await stageNats(version);
    // Handshakes and frames made to the new key open from now on: a peer may see the new entry before this instance does.
    const earlier = (live.previousX25519 ?? []).filter((k) => b64(k.publicKey) !== b64(next.x25519.publicKey));
    live.previousX25519 = [next.x25519, ...earlier];
    // 2. Committed as any holder's rotation, sealed under the current version.
    await options.commit({ type: 'keys.rotated', principal: id, by: id, version, keys: keysOf(next), at: options.now(), trigger, natsUser: nats?.natsUser ?? null });
    // 3. The applied fact publishes the root-signed entry (service.ts); our directory serves it.
    const deadline = Date.now() + 5000;
    while (options.directory.lookup(id)?.keyVersion !== version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // 4. Switched in place: frames made to either key open while peers' directories catch up, then it seals under the new one.
    await new Promise((r) => setTimeout(r, SWITCH_SETTLE_MS));
    live.previousX25519 = [live.x25519, ...earlier];
    live.x25519 = next.x25519;
    live.ed25519 = next.ed25519;
    live.version = version;
    // Its NATS connection as the new user (one reconnect, subscriptions resumed), then the host's renewal follows it.
    if (nats !== null && options.nats !== undefined) {
      await options.nats.switchTo({ jwt: nats.jwt, seed: nats.seed });
      options.nats.onSwitched?.({ jwt: nats.jwt, seed: nats.seed }, version);
    }
    rotations++;
    logger?.info({ principal: id, version, trigger }, `key manager: its own identity rotated to version ${version}`);
    return version;
  };

  let running: Promise<number> | undefined;
  const rotate = (trigger: RotationTrigger = 'on_demand'): Promise<number> => {
    running ??= rotateNow(trigger).finally(() => (running = undefined));
    return running;
  };
  const rotateLogged = (trigger: RotationTrigger): void => {
    if (stopped || running !== undefined) return;
    rotate(trigger).catch((e: unknown) => logger?.warn({ err: e, principal: id }, 'key manager: its own rotation failed; retried at the next check'));
  };

  /** What is due: a request of the active version, else the interval (a key not in the book: the age of its stored init keys). */
  const check = async (): Promise<void> => {
    const key = options.book().key(id);
    if (key !== undefined) {
      const active = activeVersion(key);
      const requested = options.book().rotationRequest(id);
      if (active !== undefined && requested?.version === active.version) return rotateLogged('on_demand');
      const after = rotateAfter(key, options.intervalMs);
      if (after !== undefined && options.now() >= after) rotateLogged('interval');
      return;
    }
    const info = (await store.list(id)).find((i) => i.kind === 'ed25519' && i.version === live.version);
    if (info !== undefined && options.now() - Date.parse(info.created) >= options.intervalMs) rotateLogged('interval');
  };
  const period = options.checkMs ?? Math.min(options.intervalMs / 10, 60_000);
  const timer = options.off === undefined ? setInterval(() => void check().catch((e: unknown) => logger?.warn({ err: e }, 'key manager: its own rotation check failed')), period) : undefined;
  timer?.unref();

  return {
    get rotations() {
      return rotations;
    },
    rotate,
    adopt,
    onFact(fact) {
      // Asked of the key manager (`bulwark keys rotate svc.key-manager`): answered now, not at the next check.
      if (fact.type === 'keys.rotation_requested' && fact.principal === id && options.off === undefined) setTimeout(() => rotateLogged('on_demand'), 0).unref();
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
    },
  };
}
