/**
 * The key manager's commands (`bulwark.keys.*`, issue 12). A command changes nothing by itself:
 * it checks the request against the state (the same rules the state applies), turns it into a
 * key fact, publishes the fact sealed to the ledger, and answers once the verified reader has
 * applied the committed event. Replies are JSON.
 *
 * Who may call what: `get` and `directory` every authenticated principal; `enroll` only a
 * principal holding its token's bootstrap identity; `rotate` a principal for its own key;
 * `request-rotation` the administrators for anyone and a principal for itself (the holder rotates
 * at its next check); `revoke` the administrators and the incident-response service (a
 * compromise); the rest the administrators. A refused join token and a refused rotation request
 * are also reported as a `security.violation`.
 */
import { Commands, Events, type CommandHandler, type CommandSubject, type EventPublisher, type EventSubject } from '@bulwark/bus';
import { adoptionMessage, checkKeyPossession } from '@bulwark/client';
import { fromPublic } from '@nats-io/nkeys';
import type { CryptoProvider } from '@bulwark/crypto';
import { encodeSignedDirectoryEntry, type DirectoryEntry } from '@bulwark/envelope';
import { encodeEvent, newEvent, type AuditEvent } from '@bulwark/events';
import { parsePrincipalId } from '@bulwark/keystore';
import { JoinTokenError } from '../errors.js';
import { issueJoinToken, MAX_TOKEN_TTL_MS, parseJoinToken, verifyJoinToken } from '../enroll/join-token.js';
import {
  activeVersion,
  canVerify,
  factDetails,
  KeyLifecycleError,
  REVOCATION_REASONS,
  rotateAfter,
  ROTATION_REQUEST_REASONS,
  ROTATION_TRIGGERS,
  type KeyFact,
  type PrincipalKey,
  type RevocationReason,
  type RotationRequest,
  type RotationRequestReason,
  type RotationTrigger,
  type VersionKeys,
} from '@bulwark/ledger-reader';
import type { Certifier } from './certifier.js';
import type { KeyProjection } from './projection.js';

/**
 * How long after its own rotation's fact the key manager may still sign under the version it
 * replaces (the new entry is published, then it settles, then it switches: well under this).
 */
export const SELF_SWITCH_MARGIN_MS = 60_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const FACT_SUBJECTS: Readonly<Record<KeyFact['type'], EventSubject>> = {
  'keys.generated': Events.keys.generated,
  'keys.invited': Events.keys.invited,
  'keys.enrolled': Events.keys.enrolled,
  'keys.rotated': Events.keys.rotated,
  'keys.revoked': Events.keys.revoked,
  'keys.disabled': Events.keys.disabled,
  'keys.enabled': Events.keys.enabled,
  'keys.deletion_scheduled': Events.keys.deletionScheduled,
  'keys.deletion_cancelled': Events.keys.deletionCancelled,
  'keys.deleted': Events.keys.deleted,
  'keys.min_version_raised': Events.keys.minVersionRaised,
  'keys.rotation_overdue': Events.keys.rotationOverdue,
  'keys.rotation_requested': Events.keys.rotationRequested,
};

export interface HandlerContext {
  readonly provider: CryptoProvider;
  readonly self: { readonly id: string; readonly ed25519SecretKey: Uint8Array; readonly ed25519PublicKey: Uint8Array; readonly version: number };
  readonly projection: KeyProjection;
  readonly certifier: Certifier;
  readonly events: EventPublisher;
  readonly admins: readonly string[];
  /** Principals besides the administrators that may revoke, and invite again a principal whose every version is revoked (an incident's containment and recovery; default svc.incident-response). */
  readonly revokers: readonly string[];
  readonly applyWaitMs: number;
  /** How old an active version may get before its holder rotates it (`security.key_rotation_interval_days`; `SYMBIONT_KEY_ROTATION_INTERVAL_MS` in tests). */
  readonly rotationIntervalMs: number;
  /** The peer's current, valid directory entry (a service made by `bulwark init`, not in the book yet, is adopted from it at its first rotation). */
  readonly entryOf: (principal: string) => DirectoryEntry | undefined;
  /** How long an issued NATS user JWT lives (default 24 h; never past the directory entry's notAfter). */
  readonly credentialLifetimeMs: number;
  readonly now: () => number;
  /** Publishes the principal's directory entry as the state now calls for and waits until it is served (before a reply that hands it out). */
  readonly published: (principal: string) => Promise<void>;
  /** Principals whose rotation is being committed (an adoption is two facts): the overdue check passes them by. */
  readonly rotating: Set<string>;
  /** Makes the bootstrap identity of an invite (its secrets go only into the reply). */
  /** Enters the key manager's own init version in the book (self-rotation.ts); undefined when it does not rotate itself. */
  readonly adoptSelf?: () => Promise<PrincipalKey>;
  readonly bootstrap: () => Promise<{ keys: VersionKeys; secrets: Record<string, string>; natsUser: string; natsSeed: string | null }>;
}

export interface KeyView {
  readonly principal: string;
  readonly minVerifyVersion: number;
  readonly activeVersion: number | null;
  /** When the active version is due to be rotated by its holder (its creation + the rotation interval); null without an active version. */
  readonly rotateAfter: string | null;
  /** Whether that time has passed, or a rotation was requested of the active version: the holder rotates (`@bulwark/service-host`, `@bulwark/client` `startKeyRotation`). */
  readonly rotationDue: boolean;
  /** The rotation asked of the holder (`keys.request-rotation`) while its active version is still the one asked; null otherwise. */
  readonly rotationRequested: { readonly at: string; readonly reason: RotationRequestReason; readonly by: string } | null;
  /** Whether the active version passed it by the grace too, recorded in the ledger (`keys.rotation_overdue`). */
  readonly rotationOverdue: boolean;
  readonly versions: readonly { version: number; state: string; verifies: boolean; created: string; ed25519: string; x25519: string; revocation: { reason: string; at: string } | null; deleteAfter: string | null }[];
}

export function viewOf(key: PrincipalKey, rotation: { readonly intervalMs: number; readonly now: number; readonly overdue?: (version: number) => boolean; readonly requested?: RotationRequest }): KeyView {
  const after = rotateAfter(key, rotation.intervalMs);
  const active = activeVersion(key)?.version;
  const requested = active !== undefined && rotation.requested?.version === active ? rotation.requested : undefined;
  return {
    principal: key.id,
    minVerifyVersion: key.minVerifyVersion,
    activeVersion: activeVersion(key)?.version ?? null,
    rotateAfter: after === undefined ? null : new Date(after).toISOString(),
    rotationDue: (after !== undefined && rotation.now >= after) || requested !== undefined,
    rotationRequested: requested === undefined ? null : { at: new Date(requested.at).toISOString(), reason: requested.reason, by: requested.by },
    rotationOverdue: active !== undefined && rotation.overdue?.(active) === true,
    versions: key.versions.map((v) => ({
      version: v.version,
      state: v.state,
      // A version below the minimum keeps its state but verifies nothing (Vault's min_decryption_version).
      verifies: canVerify(key, v.version),
      created: new Date(v.created).toISOString(),
      ed25519: v.keys.ed25519,
      x25519: v.keys.x25519,
      revocation: v.revocation === undefined ? null : { reason: v.revocation.reason, at: new Date(v.revocation.at).toISOString() },
      deleteAfter: v.deleteAfter === undefined ? null : new Date(v.deleteAfter).toISOString(),
    })),
  };
}

class KeyCommandError extends KeyLifecycleError {}

function body(bytes: Uint8Array, command: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(decoder.decode(bytes));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new KeyCommandError('E_KEYS_REQUEST', `${command}: the body must be a JSON object`, {});
}

function principalOf(b: Record<string, unknown>, command: string): string {
  const p = b['principal'];
  if (typeof p !== 'string' || parsePrincipalId(p) === undefined) throw new KeyCommandError('E_KEYS_REQUEST', `${command}: "principal" must be a principal id (agent.<uuid>, analyst.<name>, svc.<name>)`, {});
  return p;
}

function versionOf(b: Record<string, unknown>, command: string): number {
  const v = b['version'];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new KeyCommandError('E_KEYS_REQUEST', `${command}: "version" must be a positive integer`, {});
  return v;
}

function b64key(b: Record<string, unknown>, name: string, command: string): Uint8Array {
  const v = b[name];
  const bytes = typeof v === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(v) ? new Uint8Array(Buffer.from(v, 'base64')) : undefined;
  if (bytes?.length !== 32) throw new KeyCommandError('E_KEYS_REQUEST', `${command}: "${name}" must be the base64 of a 32-byte public key`, {});
  return bytes;
}

function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Checks the fact against the state, publishes it, and waits for the ledger-committed copy to be applied (every key change goes this way, the key manager's own rotation included). */
export async function commitFact(ctx: Pick<HandlerContext, 'projection' | 'events' | 'applyWaitMs'>, fact: KeyFact): Promise<PrincipalKey | undefined> {
  ctx.projection.book.check(fact);
  const event = newEvent({ agentId: fact.principal, eventType: fact.type, details: factDetails(fact) });
  const wait = ctx.projection.waitFor(event.eventId, ctx.applyWaitMs);
  try {
    await ctx.events.publish({ subject: FACT_SUBJECTS[fact.type], eventId: event.eventId, payload: encodeEvent(event) });
    const outcome = await wait.promise;
    if (outcome === undefined) throw new KeyCommandError('E_KEYS_PENDING', `${fact.type} for ${fact.principal} was sent to the ledger but has not come back applied within ${ctx.applyWaitMs} ms`, { eventId: event.eventId });
    if (outcome.kind === 'refused') throw new KeyCommandError(outcome.code, `${fact.type} for ${fact.principal} was committed but not applied: ${outcome.why}`, { eventId: event.eventId });
    return outcome.key;
  } finally {
    wait.cancel();
  }
}

export function createHandlers(ctx: HandlerContext): { readonly [S in CommandSubject]?: CommandHandler } {
  const book = ctx.projection.book;
  const view = (key: PrincipalKey): KeyView => {
    const requested = book.rotationRequest(key.id);
    return viewOf(key, { intervalMs: ctx.rotationIntervalMs, now: ctx.now(), overdue: (v) => book.overdue(key.id, v), ...(requested === undefined ? {} : { requested }) });
  };

  // One change at a time per instance: two local commands never check against the same state.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => undefined);
    return run;
  };

  const requireLive = (): void => {
    const halt = ctx.projection.halted;
    if (halt !== undefined) throw new KeyCommandError('E_KEYS_HALTED', `key manager: its ledger reader halted (${halt.code} at seq ${halt.seq}); no key command is served`, {});
  };
  const requireAdmin = (peer: string, command: string): void => {
    if (!ctx.admins.includes(peer)) throw new KeyCommandError('E_KEYS_FORBIDDEN', `${command}: principal ${peer} is not a key administrator`, { peer });
  };

  const violation = async (peer: string, kind: string, detail: Record<string, string>): Promise<void> => {
    const event: AuditEvent = newEvent({ agentId: peer, eventType: 'security.violation', details: { kind, severity: 'high', ...detail } });
    await ctx.events.publish({ subject: Events.security.violation, eventId: event.eventId, payload: encodeEvent(event) }).catch(() => undefined);
  };

  const commit = (fact: KeyFact): Promise<PrincipalKey | undefined> => commitFact(ctx, fact);

  const known = (principal: string, command: string): PrincipalKey => {
    const key = book.key(principal);
    if (key === undefined) throw new KeyCommandError('E_KEY_UNKNOWN', `${command}: ${principal} has no key`, { principal });
    return key;
  };

  // Join tokens are signed by the key manager's own Ed25519 key of the version live at the time
  // (`kv`). After its own rotation a token issued under an earlier version still enrols until it
  // expires: that version's public key comes from the key book, only while the version verifies
  // (revoking it refuses its tokens), only for a token issued before its successor went live, and
  // only up to the longest token lifetime after that (no token of it can be unexpired later).
  const joinTokenKey = (kv: number, iat: number, now: number): Uint8Array | undefined => {
    if (kv === ctx.self.version) return ctx.self.ed25519PublicKey;
    const own = book.key(ctx.self.id);
    const version = own?.versions[kv - 1];
    const successor = own?.versions[kv];
    if (own === undefined || version === undefined || successor === undefined || !canVerify(own, kv)) return undefined;
    if (iat > successor.created + SELF_SWITCH_MARGIN_MS || now >= successor.created + SELF_SWITCH_MARGIN_MS + MAX_TOKEN_TTL_MS) return undefined;
    return new Uint8Array(Buffer.from(version.keys.ed25519, 'base64'));
  };

  // A service made by `bulwark init` is not in the book (init certified it with the root before
  // the key manager ran). At its first rotation its current keys become version 1 (`keys.generated`,
  // from its root-signed entry, whose X25519 key the caller's session just proved), then it rotates.
  // Its NATS user is recorded as version 1's only if it proves it (`currentNatsUser`, signed by
  // that nkey): revoking version 1 then also revokes that user on the bus.
  const adopt = async (principal: string, b: Record<string, unknown>): Promise<PrincipalKey> => {
    const entry = parsePrincipalId(principal)?.kind === 'svc' ? ctx.entryOf(principal) : undefined;
    if (entry === undefined || entry.revoked) throw new KeyCommandError('E_KEY_UNKNOWN', `keys.rotate: ${principal} has no key`, { principal });
    if (entry.keyVersion !== 1) throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.rotate: ${principal} is not in the key book and its directory entry is version ${entry.keyVersion}, not init's version 1`, { principal });
    const keys = { ed25519: Buffer.from(entry.ed25519PublicKey).toString('base64'), x25519: Buffer.from(entry.x25519PublicKey).toString('base64') };
    const current = b['currentNatsUser'];
    let natsUser: string | null = null;
    if (current !== undefined) {
      if (typeof current !== 'string' || !/^U[A-Z2-7]{55}$/.test(current)) throw new KeyCommandError('E_KEYS_REQUEST', 'keys.rotate: "currentNatsUser" must be a public user nkey (U...)', {});
      const proof = typeof b['currentNatsProof'] === 'string' ? new Uint8Array(Buffer.from(b['currentNatsProof'], 'base64')) : new Uint8Array(0);
      let proved: boolean;
      try {
        proved = fromPublic(current).verify(adoptionMessage(principal, current), proof);
      } catch {
        proved = false;
      }
      if (!proved) throw new KeyCommandError('E_KEYS_POSSESSION', `keys.rotate: the proof for ${principal}'s current NATS user does not verify under that nkey`, { principal });
      natsUser = current;
    }
    return (await commit({ type: 'keys.generated', principal, by: principal, keys, at: entry.notBefore, natsUser }))!;
  };

  const get: CommandHandler = async (req) => {
    requireLive();
    const b = body(req.body, 'keys.get');
    return json(view(known(principalOf(b, 'keys.get'), 'keys.get')));
  };

  const list: CommandHandler = async (req) => {
    requireLive();
    requireAdmin(req.peer, 'keys.list');
    return json({ principals: book.principals().map(view), providerKeys: ctx.projection.providers.providerKeys() });
  };

  const directory: CommandHandler = async (req) => {
    requireLive();
    const b = body(req.body, 'keys.directory');
    const key = known(principalOf(b, 'keys.directory'), 'keys.directory');
    const invite = book.pendingInvite(key.id);
    return json({ principal: key.id, entry: Buffer.from(encodeSignedDirectoryEntry(ctx.certifier.entryFor(key, invite?.exp))).toString('base64') });
  };

  const invite: CommandHandler = async (req) => {
    requireLive();
    const b = body(req.body, 'keys.invite');
    const principal = principalOf(b, 'keys.invite');
    const ttlMs = b['ttlMs'] === undefined ? undefined : Number(b['ttlMs']);
    const admin = b['admin'] === true;
    // A responder re-enrols what it cut off: a principal whose every version is revoked, never a new one, never as an administrator.
    const reenrolment = !ctx.admins.includes(req.peer) && ctx.revokers.includes(req.peer);
    if (!reenrolment) requireAdmin(req.peer, 'keys.invite');
    return serial(async () => {
      if (reenrolment && (admin || !book.cutOff(principal))) {
        throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.invite: ${req.peer} may invite only a principal whose every key version is revoked, and not as an administrator (${principal} ${book.key(principal) === undefined ? 'has no key' : admin ? 'asked as an administrator' : 'still has a usable version'})`, { peer: req.peer });
      }
      const now = ctx.now();
      const { token, claims } = issueJoinToken(ctx.provider, { principal, admin, now, ...(ttlMs === undefined ? {} : { ttlMs }), signer: { secretKey: ctx.self.ed25519SecretKey, version: ctx.self.version } });
      const boot = await ctx.bootstrap();
      const invited = await commit({ type: 'keys.invited', principal, by: req.peer, tid: claims.tid, admin, iat: claims.iat, exp: claims.exp, keys: boot.keys, natsUser: boot.natsUser });
      await ctx.published(principal);
      const jwt = ctx.certifier.issuesNatsUsers ? await ctx.certifier.userJwt(principal, admin, boot.natsUser, claims.exp, true) : null;
      // The join bundle: the token and the bootstrap identity's secrets. A bearer secret until used.
      // `version`: the version the enrolment makes (the bootstrap's + 1; 2 for a new principal).
      const bundle = { v: 1, token, principal, version: invited!.versions.length + 1, ...boot.secrets, natsJwt: jwt, natsSeed: boot.natsSeed };
      return json({ principal, tid: claims.tid, expires: new Date(claims.exp).toISOString(), join: `bwjb1.${Buffer.from(JSON.stringify(bundle)).toString('base64url')}` });
    });
  };

  // The new entry is NOT published before this reply: this reply travels in the session of the
  // version being replaced, and a session's frames are checked against the directory per frame
  // (a changed static key ends the session). The entry follows just after (service.ts).
  const certifyReply = async (key: PrincipalKey, natsUser: string, admin: boolean) => {
    const signed = ctx.certifier.entryFor(key);
    const expires = Math.min(signed.entry.notAfter, ctx.now() + ctx.credentialLifetimeMs);
    const jwt = ctx.certifier.issuesNatsUsers ? await ctx.certifier.userJwt(key.id, admin, natsUser, expires) : null;
    return json({ principal: key.id, version: signed.entry.keyVersion, notAfter: new Date(signed.entry.notAfter).toISOString(), entry: Buffer.from(encodeSignedDirectoryEntry(signed)).toString('base64'), natsJwt: jwt });
  };

  const newKeys = (b: Record<string, unknown>, principal: string, version: number, command: string): { keys: VersionKeys; natsUser: string } => {
    const ed = b64key(b, 'ed25519', command);
    const x = b64key(b, 'x25519', command);
    const natsUser = b['natsUser'];
    if (typeof natsUser !== 'string' || !/^U[A-Z2-7]{55}$/.test(natsUser)) throw new KeyCommandError('E_KEYS_REQUEST', `${command}: "natsUser" must be a public user nkey (U...)`, {});
    const proof = typeof b['proof'] === 'string' ? new Uint8Array(Buffer.from(b['proof'], 'base64')) : new Uint8Array(0);
    if (!checkKeyPossession(ctx.provider, principal, version, ed, x, natsUser, proof)) {
      throw new KeyCommandError('E_KEYS_POSSESSION', `${command}: the proof of possession does not verify under the new Ed25519 key`, { principal });
    }
    return { keys: { ed25519: Buffer.from(ed).toString('base64'), x25519: Buffer.from(x).toString('base64') }, natsUser };
  };

  const enroll: CommandHandler = async (req) => {
    requireLive();
    const b = body(req.body, 'keys.enroll');
    return serial(async () => {
      const now = ctx.now();
      let claims;
      try {
        claims = verifyJoinToken(ctx.provider, b['token'], (v) => joinTokenKey(v, parseJoinToken(b['token']).claims.iat, now), now);
        if (claims.sub !== req.peer) throw new JoinTokenError('E_TOKEN_PRINCIPAL', `join token ${claims.tid} is for ${claims.sub}, not ${req.peer}`, { tid: claims.tid });
        const invited = book.invite(claims.tid);
        if (invited === undefined) throw new JoinTokenError('E_TOKEN_FORGED', `join token ${claims.tid} was never issued`, { tid: claims.tid });
        const usedBy = book.usedBy(claims.tid);
        if (usedBy !== undefined) throw new JoinTokenError('E_TOKEN_USED', `join token ${claims.tid} was already used`, { tid: claims.tid });
      } catch (e) {
        if (e instanceof JoinTokenError) await violation(req.peer, 'keys.join_token_refused', { code: e.code, reason: e.message });
        throw e;
      }
      const { keys, natsUser } = newKeys(b, req.peer, book.invite(claims.tid)!.version + 1, 'keys.enroll');
      const key = await commit({ type: 'keys.enrolled', principal: req.peer, by: req.peer, tid: claims.tid, keys, at: now, natsUser });
      return certifyReply(key!, natsUser, claims.admin);
    });
  };

  const rotate: CommandHandler = async (req) => {
    requireLive();
    const b = body(req.body, 'keys.rotate');
    const principal = b['principal'] === undefined ? req.peer : principalOf(b, 'keys.rotate');
    if (principal !== req.peer) throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.rotate: ${req.peer} may rotate only its own key (the key manager never makes or holds another principal's private key); to cut ${principal} off, revoke it`, { peer: req.peer });
    const trigger = (b['trigger'] ?? 'on_demand') as RotationTrigger;
    if (!(ROTATION_TRIGGERS as readonly string[]).includes(trigger)) throw new KeyCommandError('E_KEYS_REQUEST', `keys.rotate: "trigger" must be one of ${ROTATION_TRIGGERS.join(', ')}`, {});
    return serial(async () => {
      // Between an adoption's version 1 (dated at init) and its rotation, that version is not overdue.
      ctx.rotating.add(principal);
      try {
        const current = book.key(principal) ?? (await adopt(principal, b));
        if (book.pendingInvite(principal) !== undefined) throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.rotate: ${principal} holds a bootstrap identity; enroll first`, {});
        const version = current.versions.length + 1;
        const { keys, natsUser } = newKeys(b, principal, version, 'keys.rotate');
        const key = await commit({ type: 'keys.rotated', principal, by: req.peer, version, keys, at: ctx.now(), trigger, natsUser });
        return certifyReply(key!, natsUser, b['admin'] === true && ctx.admins.includes(principal));
      } finally {
        ctx.rotating.delete(principal);
      }
    });
  };

  // Short-lived NATS credentials, as SPIRE's SVIDs: a principal renews its own user JWT (same
  // nkey, same permissions, a new expiry) well before it expires. A principal this service
  // manages gets one only for the NATS user of its active, verifying version: a revoked or
  // disabled key, or any other nkey, is refused, so a revocation also ends renewal. A service
  // made by `bulwark init` (not in the book) is vouched for by its session alone: the session
  // is checked per frame against its root-signed, unrevoked directory entry.
  const renew: CommandHandler = async (req) => {
    requireLive();
    if (!ctx.certifier.issuesNatsUsers) throw new KeyCommandError('E_KEYS_NO_NATS', 'keys.renew: this deployment issues no NATS users (the bus does not authenticate)', {});
    const b = body(req.body, 'keys.renew');
    const natsUser = b['natsUser'];
    if (typeof natsUser !== 'string' || !/^U[A-Z2-7]{55}$/.test(natsUser)) throw new KeyCommandError('E_KEYS_REQUEST', 'keys.renew: "natsUser" must be a public user nkey (U...)', {});
    const refuse = (why: string): never => {
      throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.renew: ${req.peer} ${why}`, { peer: req.peer });
    };
    const now = ctx.now();
    if (book.revoked().some((r) => r.natsUser === natsUser)) refuse('asked for a revoked NATS user');
    const key = book.key(req.peer);
    let until = now + ctx.credentialLifetimeMs;
    if (key === undefined) {
      if (parsePrincipalId(req.peer)?.kind !== 'svc') refuse('has no key here; enroll with a join token first');
    } else {
      if (book.pendingInvite(req.peer) !== undefined) refuse('holds a bootstrap identity; enroll first');
      const active = activeVersion(key);
      if (active === undefined || !canVerify(key, active.version)) refuse('has no active key version');
      if (book.natsUser(req.peer, active!.version) !== natsUser) refuse(`asked for a NATS user that is not its active version's (v${active!.version})`);
      until = Math.min(until, ctx.certifier.entryFor(key).entry.notAfter);
    }
    const jwt = await ctx.certifier.userJwt(req.peer, ctx.admins.includes(req.peer), natsUser, until);
    return json({ principal: req.peer, natsJwt: jwt, expires: new Date(until).toISOString() });
  };

  const revoke: CommandHandler = async (req) => {
    requireLive();
    if (!ctx.admins.includes(req.peer) && !ctx.revokers.includes(req.peer)) throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.revoke: principal ${req.peer} may not revoke keys`, { peer: req.peer });
    const b = body(req.body, 'keys.revoke');
    const principal = principalOf(b, 'keys.revoke');
    const reason = b['reason'];
    if (typeof reason !== 'string' || !(REVOCATION_REASONS as readonly string[]).includes(reason)) throw new KeyCommandError('E_KEYS_REQUEST', `keys.revoke: "reason" must be one of ${REVOCATION_REASONS.join(', ')}`, {});
    return serial(async () => {
      const current = known(principal, 'keys.revoke');
      const version = b['version'] === undefined ? (activeVersion(current)?.version ?? current.versions.length) : versionOf(b, 'keys.revoke');
      const key = await commit({ type: 'keys.revoked', principal, by: req.peer, version, reason: reason as RevocationReason, at: ctx.now() });
      return json(view(key!));
    });
  };

  // Nobody but the holder can rotate a key (the key manager never holds another principal's
  // private key), so an operator or an incident asks the holder to: the request is a ledger fact,
  // and `keys.get` says the rotation is due (`rotationRequested`) until a newer version is active;
  // the holder's rotation check picks it up at its next check. On `compromise` the key manager
  // also raises the minimum past the old version once the holder rotated (compromise.ts).
  const requestRotation: CommandHandler = async (req) => {
    requireLive();
    const b = body(req.body, 'keys.request-rotation');
    const principal = principalOf(b, 'keys.request-rotation');
    const reason = b['reason'] ?? 'on_demand';
    if (typeof reason !== 'string' || !(ROTATION_REQUEST_REASONS as readonly string[]).includes(reason)) throw new KeyCommandError('E_KEYS_REQUEST', `keys.request-rotation: "reason" must be one of ${ROTATION_REQUEST_REASONS.join(', ')}`, {});
    if (principal !== req.peer && !ctx.admins.includes(req.peer)) {
      await violation(req.peer, 'keys.rotation_request_refused', { principal, reason, code: 'E_KEYS_FORBIDDEN' });
      throw new KeyCommandError('E_KEYS_FORBIDDEN', `keys.request-rotation: ${req.peer} may request a rotation only of its own key (administrators of any); refused for ${principal} and recorded`, { peer: req.peer });
    }
    return serial(async () => {
      // The key manager itself, made by `bulwark init`, enters the book on request (its init version adopted) so that it can be asked.
      const current = book.key(principal) ?? (principal === ctx.self.id && ctx.adoptSelf !== undefined ? await ctx.adoptSelf() : undefined);
      if (current === undefined) {
        throw new KeyCommandError('E_KEY_UNKNOWN', `keys.request-rotation: ${principal} has no key in the key book (never enrolled here; a service made by \`bulwark init\` enters it at its first rotation)`, { principal });
      }
      // Asked again while outstanding: nothing new to record (an on_demand request may still be escalated to a compromise).
      const outstanding = book.rotationRequest(principal);
      if (outstanding !== undefined && (outstanding.reason === 'compromise' || outstanding.reason === reason)) return json(view(current));
      const version = activeVersion(current)?.version ?? current.versions.length;
      const key = await commit({ type: 'keys.rotation_requested', principal, by: req.peer, version, reason: reason as RotationRequestReason, at: ctx.now() });
      return json(view(key!));
    });
  };

  const versionCommand =
    (type: 'keys.disabled' | 'keys.enabled' | 'keys.deletion_cancelled', command: string): CommandHandler =>
    async (req) => {
      requireLive();
      requireAdmin(req.peer, command);
      const b = body(req.body, command);
      const principal = principalOf(b, command);
      const version = versionOf(b, command);
      return serial(async () => json(view((await commit({ type, principal, by: req.peer, version }))!)));
    };

  const scheduleDeletion: CommandHandler = async (req) => {
    requireLive();
    requireAdmin(req.peer, 'keys.schedule-deletion');
    const b = body(req.body, 'keys.schedule-deletion');
    const principal = principalOf(b, 'keys.schedule-deletion');
    const version = versionOf(b, 'keys.schedule-deletion');
    const days = b['days'] === undefined ? 7 : Number(b['days']);
    return serial(async () => json(view((await commit({ type: 'keys.deletion_scheduled', principal, by: req.peer, version, days, at: ctx.now() }))!)));
  };

  return {
    [Commands.keys.get]: get,
    [Commands.keys.list]: list,
    [Commands.keys.directory]: directory,
    [Commands.keys.invite]: invite,
    [Commands.keys.enroll]: enroll,
    [Commands.keys.rotate]: rotate,
    [Commands.keys.revoke]: revoke,
    [Commands.keys.requestRotation]: requestRotation,
    [Commands.keys.renew]: renew,
    [Commands.keys.disable]: versionCommand('keys.disabled', 'keys.disable'),
    [Commands.keys.enable]: versionCommand('keys.enabled', 'keys.enable'),
    [Commands.keys.cancelDeletion]: versionCommand('keys.deletion_cancelled', 'keys.cancel-deletion'),
    [Commands.keys.scheduleDeletion]: scheduleDeletion,
  };
}
