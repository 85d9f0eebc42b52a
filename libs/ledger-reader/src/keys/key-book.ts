/**
 * The key manager's state, rebuilt from the ledger (issue 12; DESIGN §3a "Readers verify what
 * they replay"): every principal key with its versions, the join tokens issued and used, and
 * the NATS user keys of each version. It changes only through `apply(fact)`, which the
 * service calls for facts the verified ledger reader handed over, in ledger order. Nothing
 * else (a KV edit, an older directory entry, a restart) can change what it says; in
 * particular the revoked set only grows.
 *
 * `check(fact)` runs the same rules without changing anything: the service asks it before it
 * turns a command into a ledger event, so a refused command never reaches the ledger.
 */
import {
  activeVersion,
  cancelDeletion,
  canVerify,
  destroyVersion,
  disableVersion,
  enableVersion,
  generateKey,
  isFinallyRefused,
  raiseMinVerifyVersion,
  revokeVersion,
  rotateKey,
  scheduleDeletion,
  type PrincipalKey,
} from './versions.js';
import { KeyLifecycleError } from './errors.js';
import type { KeyFact, RotationRequestReason } from './facts.js';

export interface Invite {
  readonly tid: string;
  readonly principal: string;
  readonly admin: boolean;
  readonly iat: number;
  readonly exp: number;
  readonly by: string;
  /** The token's bootstrap version: 1 for a new principal, latest + 1 for a principal invited again after every version was revoked. */
  readonly version: number;
}

export interface RevokedVersion {
  readonly principal: string;
  readonly version: number;
  /** base64 Ed25519 / X25519 public keys of that version. */
  readonly ed25519: string;
  readonly x25519: string;
  /** The version's NATS user public nkey (`U...`), when it had one. */
  readonly natsUser: string | null;
}

/** A rotation asked of a holder (`keys.rotation_requested`): outstanding while `version` is still its active one. */
export interface RotationRequest {
  /** The active version when it was asked. */
  readonly version: number;
  readonly reason: RotationRequestReason;
  /** Unix ms. */
  readonly at: number;
  readonly by: string;
}

export type ApplyOutcome = { readonly kind: 'applied'; readonly key: PrincipalKey | undefined } | { readonly kind: 'refused'; readonly why: string; readonly code: string };

export class KeyBook {
  readonly #keys = new Map<string, PrincipalKey>();
  readonly #invites = new Map<string, Invite>();
  /** tid → the principal that used it. */
  readonly #used = new Map<string, string>();
  /** principal → version → NATS user public nkey. */
  readonly #natsUsers = new Map<string, Map<number, string>>();
  /** `<principal>/<version>` of every version recorded overdue for rotation. */
  readonly #overdue = new Set<string>();
  /** principal → the latest rotation asked of it (`rotationRequest`: only while still outstanding). */
  readonly #requests = new Map<string, RotationRequest>();
  /** principal → the highest version reported compromised by a rotation request (kept apart: a later on_demand request must not hide it). */
  readonly #compromised = new Map<string, number>();
  #applied = 0;

  get applied(): number {
    return this.#applied;
  }

  key(id: string): PrincipalKey | undefined {
    return this.#keys.get(id);
  }

  principals(): readonly PrincipalKey[] {
    return [...this.#keys.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The unused invite whose bootstrap identity `id` holds (its bootstrap version the latest and still active), if any. */
  pendingInvite(id: string): Invite | undefined {
    const key = this.#keys.get(id);
    if (key === undefined) return undefined;
    const invite = [...this.#invites.values()].find((i) => i.principal === id && !this.#used.has(i.tid) && i.version === key.versions.length);
    return invite !== undefined && activeVersion(key)?.version === invite.version ? invite : undefined;
  }

  /** Whether `id` v`version` is the bootstrap identity of one of its invites. */
  isBootstrap(id: string, version: number): boolean {
    return [...this.#invites.values()].some((i) => i.principal === id && i.version === version);
  }

  /** Whether every version of `id` is refused for good (revoked, under the minimum, deleted): then, and only then, it may be invited again. */
  cutOff(id: string): boolean {
    const key = this.#keys.get(id);
    return key !== undefined && key.versions.every((v) => isFinallyRefused(key, v.version));
  }

  /** Invites whose token expired unused: their bootstrap NATS users are revoked too. */
  expiredInvites(now: number): readonly Invite[] {
    return [...this.#invites.values()].filter((i) => !this.#used.has(i.tid) && now >= i.exp);
  }

  invite(tid: string): Invite | undefined {
    return this.#invites.get(tid);
  }

  /** The principal that used token `tid`, or undefined when unused. */
  usedBy(tid: string): string | undefined {
    return this.#used.get(tid);
  }

  /** Whether `version` of `id` was recorded overdue for rotation (`keys.rotation_overdue`). */
  overdue(id: string, version: number): boolean {
    return this.#overdue.has(`${id}/${version}`);
  }

  /** The rotation asked of `id`'s holder, while it is outstanding: its active version is still the one it was asked to rotate. */
  rotationRequest(id: string): RotationRequest | undefined {
    const request = this.#requests.get(id);
    return request !== undefined && this.active(id)?.version === request.version ? request : undefined;
  }

  /**
   * The minimum verify version a compromise request still calls for: the version after the one
   * reported compromised, once the holder rotated past it and while the minimum is not there yet
   * (the key manager then commits `keys.min_version_raised`; a revocation of that version does it too).
   */
  compromiseRaiseDue(id: string): number | undefined {
    const compromised = this.#compromised.get(id);
    const key = this.#keys.get(id);
    if (compromised === undefined || key === undefined) return undefined;
    return key.versions.length > compromised && key.minVerifyVersion <= compromised ? compromised + 1 : undefined;
  }

  natsUser(id: string, version: number): string | undefined {
    return this.#natsUsers.get(id)?.get(version);
  }

  /** May a frame or signature under `id` v`version` with these public keys (base64) be accepted? */
  accepts(id: string, version: number, ed25519: string, x25519: string): boolean {
    const key = this.#keys.get(id);
    const v = key?.versions[version - 1];
    return key !== undefined && v !== undefined && canVerify(key, version) && v.keys.ed25519 === ed25519 && v.keys.x25519 === x25519;
  }

  /**
   * Every version that will never verify again (revoked, below its key's minimum, deleted),
   * with its public keys and NATS user: what readers refuse and what the account JWT revokes.
   */
  revoked(): readonly RevokedVersion[] {
    const out: RevokedVersion[] = [];
    for (const key of this.principals()) {
      for (const v of key.versions) {
        if (isFinallyRefused(key, v.version)) out.push({ principal: key.id, version: v.version, ed25519: v.keys.ed25519, x25519: v.keys.x25519, natsUser: this.natsUser(key.id, v.version) ?? null });
      }
    }
    return out;
  }

  /** What `apply(fact)` would make of the principal's key, without applying it (`KeyLifecycleError` when refused). */
  check(fact: KeyFact): PrincipalKey | undefined {
    const key = this.#keys.get(fact.principal);
    const existing = (): PrincipalKey => {
      if (key === undefined) throw new KeyLifecycleError('E_KEY_UNKNOWN', `${fact.principal} has no key`, { principal: fact.principal });
      return key;
    };
    switch (fact.type) {
      case 'keys.generated':
        if (key !== undefined) throw new KeyLifecycleError('E_KEY_EXISTS', `${fact.principal} already has a key (version ${key.versions.length}); rotate it instead`, { principal: fact.principal });
        return generateKey(fact.principal, fact.keys, fact.at);
      case 'keys.invited':
        if (this.#invites.has(fact.tid)) throw new KeyLifecycleError('E_KEY_DUPLICATE', `join token ${fact.tid} was already issued`, { tid: fact.tid });
        if (key !== undefined && !this.cutOff(fact.principal)) throw new KeyLifecycleError('E_KEY_EXISTS', `${fact.principal} still has a usable key version (of ${key.versions.length}); a principal is invited again only once every version is revoked`, { principal: fact.principal });
        if (fact.exp <= fact.iat) throw new KeyLifecycleError('E_KEY_TIME', `join token ${fact.tid} expires before it is issued`, { tid: fact.tid });
        // The token's bootstrap identity (version 1, or the next version of a principal cut off and
        // invited again: re-enrolment with fresh keys, its revoked versions staying revoked), good
        // for one enrolment until the token expires.
        return key === undefined ? generateKey(fact.principal, fact.keys, fact.iat) : rotateKey(key, fact.keys, fact.iat);
      case 'keys.enrolled': {
        const invite = this.#invites.get(fact.tid);
        if (invite === undefined) throw new KeyLifecycleError('E_TOKEN_UNKNOWN', `join token ${fact.tid} was never issued`, { tid: fact.tid });
        if (invite.principal !== fact.principal) throw new KeyLifecycleError('E_TOKEN_PRINCIPAL', `join token ${fact.tid} is for ${invite.principal}, not ${fact.principal}`, { tid: fact.tid });
        const by = this.#used.get(fact.tid);
        if (by !== undefined) throw new KeyLifecycleError('E_TOKEN_USED', `join token ${fact.tid} was already used by ${by}`, { tid: fact.tid });
        if (fact.at >= invite.exp) throw new KeyLifecycleError('E_TOKEN_EXPIRED', `join token ${fact.tid} expired at ${new Date(invite.exp).toISOString()}`, { tid: fact.tid });
        if (key === undefined || key.versions.length !== invite.version || activeVersion(key)?.version !== invite.version) {
          throw new KeyLifecycleError('E_KEY_TRANSITION', `${fact.principal}: its bootstrap version is no longer the active one; it cannot enrol`, { principal: fact.principal });
        }
        // The principal's own keys become the next version; the bootstrap version is revoked at once (and the minimum raised past it).
        return revokeVersion(rotateKey(key, fact.keys, fact.at), invite.version, 'superseded', fact.at);
      }
      case 'keys.rotated': {
        const k = existing();
        if (fact.version !== k.versions.length + 1) throw new KeyLifecycleError('E_KEY_TRANSITION', `${fact.principal}: a rotation makes version ${k.versions.length + 1}, not ${fact.version}`, { principal: fact.principal });
        const rotated = rotateKey(k, fact.keys, fact.at);
        // A rotation on a compromise signal also raises the minimum at once: no older version verifies.
        return fact.trigger === 'compromise' ? raiseMinVerifyVersion(rotated, fact.version) : rotated;
      }
      case 'keys.revoked':
        return revokeVersion(existing(), fact.version, fact.reason, fact.at);
      case 'keys.disabled':
        return disableVersion(existing(), fact.version);
      case 'keys.enabled':
        return enableVersion(existing(), fact.version);
      case 'keys.deletion_scheduled':
        return scheduleDeletion(existing(), fact.version, fact.days, fact.at);
      case 'keys.deletion_cancelled':
        return cancelDeletion(existing(), fact.version);
      case 'keys.deleted':
        return destroyVersion(existing(), fact.version, fact.at);
      case 'keys.min_version_raised':
        return raiseMinVerifyVersion(existing(), fact.min);
      case 'keys.rotation_overdue': {
        const k = existing();
        if (activeVersion(k)?.version !== fact.version) throw new KeyLifecycleError('E_KEY_TRANSITION', `${fact.principal}: version ${fact.version} is not the active one; it cannot be overdue`, { principal: fact.principal });
        if (this.overdue(fact.principal, fact.version)) throw new KeyLifecycleError('E_KEY_DUPLICATE', `${fact.principal} v${fact.version} was already recorded overdue`, { principal: fact.principal });
        return k;
      }
      case 'keys.rotation_requested': {
        const k = existing();
        const active = activeVersion(k);
        if (active === undefined) throw new KeyLifecycleError('E_KEY_TRANSITION', `${fact.principal} has no active key version to rotate (versions 1..${k.versions.length}, minimum verify version ${k.minVerifyVersion}); a principal cut off is invited again`, { principal: fact.principal });
        if (this.isBootstrap(fact.principal, active.version)) throw new KeyLifecycleError('E_KEY_TRANSITION', `${fact.principal} holds only a bootstrap identity (v${active.version}); it rotates nothing before it enrols`, { principal: fact.principal });
        if (fact.version !== active.version) throw new KeyLifecycleError('E_KEY_TRANSITION', `${fact.principal}: a rotation is asked of its active version ${active.version}, not ${fact.version}`, { principal: fact.principal });
        const outstanding = this.rotationRequest(fact.principal);
        // A second request adds nothing unless it escalates an on_demand request to a compromise.
        if (outstanding !== undefined && (outstanding.reason === 'compromise' || outstanding.reason === fact.reason)) {
          throw new KeyLifecycleError('E_KEY_DUPLICATE', `${fact.principal} v${active.version}: a rotation (${outstanding.reason}) was already requested at ${new Date(outstanding.at).toISOString()} by ${outstanding.by}`, { principal: fact.principal });
        }
        return k;
      }
      default: {
        const never: never = fact;
        throw new Error(`unhandled key fact ${JSON.stringify(never)}`);
      }
    }
  }

  /** Applies a committed fact; a fact the rules refuse changes nothing and says why. */
  apply(fact: KeyFact): ApplyOutcome {
    let next: PrincipalKey | undefined;
    try {
      next = this.check(fact);
    } catch (e) {
      if (e instanceof KeyLifecycleError) return { kind: 'refused', why: e.message, code: e.code };
      throw e;
    }
    if (next !== undefined) this.#keys.set(fact.principal, next);
    const latest = next?.versions.length ?? 0;
    if (fact.type === 'keys.invited') this.#invites.set(fact.tid, { tid: fact.tid, principal: fact.principal, admin: fact.admin, iat: fact.iat, exp: fact.exp, by: fact.by, version: latest });
    if (fact.type === 'keys.enrolled') this.#used.set(fact.tid, fact.principal);
    if (fact.type === 'keys.rotation_overdue') this.#overdue.add(`${fact.principal}/${fact.version}`);
    if (fact.type === 'keys.rotation_requested') {
      this.#requests.set(fact.principal, { version: fact.version, reason: fact.reason, at: fact.at, by: fact.by });
      if (fact.reason === 'compromise') this.#compromised.set(fact.principal, Math.max(fact.version, this.#compromised.get(fact.principal) ?? 0));
    }
    const nats =
      fact.type === 'keys.generated' || fact.type === 'keys.invited' || fact.type === 'keys.enrolled'
        ? { version: latest, user: fact.natsUser }
          : fact.type === 'keys.rotated'
            ? { version: fact.version, user: fact.natsUser }
            : undefined;
    if (nats !== undefined && nats.user !== null) {
      const users = this.#natsUsers.get(fact.principal) ?? new Map<number, string>();
      users.set(nats.version, nats.user);
      this.#natsUsers.set(fact.principal, users);
    }
    this.#applied++;
    return { kind: 'applied', key: next };
  }

  /** The version a principal uses now, if any. */
  active(id: string): ReturnType<typeof activeVersion> {
    const key = this.#keys.get(id);
    return key === undefined ? undefined : activeVersion(key);
  }
}
