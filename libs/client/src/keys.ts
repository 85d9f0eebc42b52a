/**
 * The key manager's calls (`bulwark.keys.*`, services/key-manager) for agents, analysts and
 * administrators, and enrolment with a join bundle: the principal's keys are generated here,
 * proved (`proveKeyPossession`) and sent with the token over the bundle's one-time bootstrap
 * session; the key manager certifies them and answers with the signed directory entry and the
 * NATS user JWT for the nkey made here. No private key ever leaves this process.
 */
import { CommandClient, Commands, RejectionReporter, type Bus, type CommandSubject } from '@bulwark/bus';
import type { Directory } from '@bulwark/envelope';
import type { CryptoProvider, Ed25519KeyPair, X25519KeyPair } from '@bulwark/crypto';
import { BulwarkError } from '@bulwark/errors';
import type { JoinBundle } from './join-bundle.js';
import { proveKeyPossession } from './key-possession.js';

export type RevocationReason = 'key_compromise' | 'superseded' | 'cessation_of_operation' | 'privilege_withdrawn';

export interface KeyVersionView {
  readonly version: number;
  readonly state: 'active' | 'verify_only' | 'disabled' | 'revoked' | 'pending_deletion' | 'deleted';
  /** False below the key's minimum verify version, whatever the state says. */
  readonly verifies: boolean;
  readonly created: string;
  readonly ed25519: string;
  readonly x25519: string;
  readonly revocation: { readonly reason: RevocationReason; readonly at: string } | null;
  readonly deleteAfter: string | null;
}

export interface KeyView {
  readonly principal: string;
  readonly minVerifyVersion: number;
  readonly activeVersion: number | null;
  /** When the active version is due to be rotated by its holder (its creation + the key manager's rotation interval); null without one. */
  readonly rotateAfter: string | null;
  /** Whether that time has passed, or a rotation was requested of the active version (the holder rotates: `startKeyRotation`). */
  readonly rotationDue: boolean;
  /** The rotation asked of the holder (`requestRotation`) while its active version is still the one asked; null otherwise. */
  readonly rotationRequested: RotationRequested | null;
  /** Whether the active version also passed the key manager's grace and was recorded overdue in the ledger (`keys.rotation_overdue`). */
  readonly rotationOverdue: boolean;
  readonly versions: readonly KeyVersionView[];
}

/** Why a rotation is requested: `compromise` also takes the old version out of verification once the holder rotated. */
export type RotationRequestReason = 'on_demand' | 'compromise';

export interface RotationRequested {
  readonly at: string;
  readonly reason: RotationRequestReason;
  /** Who asked: an administrator, or the principal itself. */
  readonly by: string;
}

export interface Invitation {
  readonly principal: string;
  readonly tid: string;
  readonly expires: string;
  /** The join bundle (`bwjb1.…`): a bearer secret until used. */
  readonly join: string;
}

export interface Certified {
  readonly principal: string;
  readonly version: number;
  readonly notAfter: string;
  /** base64 of the signed directory entry. */
  readonly entry: string;
  /** The NATS user JWT for the nkey sent, or null where the bus does not authenticate. */
  readonly natsJwt: string | null;
}

/** New keys for a version, made here, with what the key manager needs to certify them. */
export interface NewKeys {
  readonly ed25519: Ed25519KeyPair;
  readonly x25519: X25519KeyPair;
  /** The NATS user's public nkey (`U...`); its seed stays with the caller. */
  readonly natsUser: string;
}

/** A service's current NATS user (`bulwark init`'s), proved by a signature of its nkey over `adoptionMessage`: recorded as its version 1's at its first rotation. */
export interface CurrentNatsUser {
  readonly natsUser: string;
  /** base64 of the nkey's Ed25519 signature over `adoptionMessage(principal, natsUser)`. */
  readonly proof: string;
}

/** A SchemaPin provider key the key manager recorded from the ledger's pin events (an external key of the hierarchy). */
export interface ProviderKeyView {
  readonly fingerprint: string;
  /** `tool_id@domain` of every tool pinned to it now. */
  readonly tools: readonly string[];
  readonly revoked: boolean;
}

/** A channel's current epoch as the key manager announced it (the wraps stay in the ledger). */
export interface ChannelView {
  readonly channel: string;
  readonly epoch: number;
  readonly reason: string;
  /** The subscriber the change was about (add, revoke), if any. */
  readonly subject?: string;
  readonly at: string;
  readonly subscribers: readonly { id: string; keyVersion: number }[];
}

/** `bulwark.keys.channel`: any principal may get and list; the changes are the administrators'. */
export type ChannelAction = { action: 'get' | 'rotate'; channel: string } | { action: 'create'; channel: string; subscribers: readonly string[] } | { action: 'add' | 'revoke'; channel: string; subscriber: string };

export interface KeyCalls {
  get(principal: string): Promise<KeyView>;
  list(): Promise<{ principals: KeyView[]; providerKeys: ProviderKeyView[] }>;
  directory(principal: string): Promise<{ principal: string; entry: string }>;
  invite(principal: string, options?: { ttlMs?: number; admin?: boolean }): Promise<Invitation>;
  /** Rotates the caller's own key to `keys` as version `version` (its current latest + 1); resolves once the client's directory serves the new entry (published just after the reply). */
  rotate(self: string, version: number, keys: NewKeys, trigger?: 'on_demand' | 'interval' | 'compromise', adopt?: CurrentNatsUser): Promise<Certified>;
  revoke(principal: string, reason: RevocationReason, version?: number): Promise<KeyView>;
  /** Asks the holder of `principal`'s key to rotate it (administrators for anyone, a principal for itself): the view, `rotationRequested` set until the holder rotated. */
  requestRotation(principal: string, reason?: RotationRequestReason): Promise<KeyView>;
  disable(principal: string, version: number): Promise<KeyView>;
  enable(principal: string, version: number): Promise<KeyView>;
  scheduleDeletion(principal: string, version: number, days?: number): Promise<KeyView>;
  cancelDeletion(principal: string, version: number): Promise<KeyView>;
  /** A fresh short-lived user JWT for the caller's own NATS user `natsUser` (`startCredentialRenewal` calls it at half-life). */
  renew(natsUser: string): Promise<{ principal: string; natsJwt: string; expires: string }>;
  /** A change to a channel (a new epoch, wrapped to its subscribers), or its current epoch. */
  channel(action: ChannelAction): Promise<ChannelView>;
  channels(): Promise<{ channels: ChannelView[] }>;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function keysBody(provider: CryptoProvider, principal: string, version: number, keys: NewKeys): Record<string, string> {
  const proof = proveKeyPossession(provider, principal, version, { ed25519: keys.ed25519, x25519PublicKey: keys.x25519.publicKey, natsUser: keys.natsUser });
  return { ed25519: b64(keys.ed25519.publicKey), x25519: b64(keys.x25519.publicKey), natsUser: keys.natsUser, proof: b64(proof) };
}

/** The calls over `call` (a JSON request to a key manager command). */
export function createKeyCalls(provider: CryptoProvider, call: (subject: CommandSubject, body: unknown) => Promise<unknown>, directory?: Directory): KeyCalls {
  const as = <T>(v: unknown, subject: string, check: (o: Record<string, unknown>) => boolean): T => {
    if (typeof v !== 'object' || v === null || !check(v as Record<string, unknown>)) throw new BulwarkError('E_KEYS_REPLY', `malformed reply to ${subject}`, { subject });
    return v as T;
  };
  const view = async (subject: CommandSubject, body: unknown): Promise<KeyView> => as<KeyView>(await call(subject, body), subject, (o) => typeof o['principal'] === 'string' && Array.isArray(o['versions']));
  return {
    get: (principal) => view(Commands.keys.get, { principal }),
    list: async () => as(await call(Commands.keys.list, {}), Commands.keys.list, (o) => Array.isArray(o['principals']) && Array.isArray(o['providerKeys'])),
    directory: async (principal) => as(await call(Commands.keys.directory, { principal }), Commands.keys.directory, (o) => typeof o['entry'] === 'string'),
    invite: async (principal, options = {}) => as(await call(Commands.keys.invite, { principal, ...options }), Commands.keys.invite, (o) => typeof o['join'] === 'string'),
    rotate: async (self, version, keys, trigger = 'on_demand', adopt) => {
      const adoption = adopt === undefined ? {} : { currentNatsUser: adopt.natsUser, currentNatsProof: adopt.proof };
      const certified = as<Certified>(await call(Commands.keys.rotate, { principal: self, trigger, ...keysBody(provider, self, version, keys), ...adoption }), Commands.keys.rotate, (o) => typeof o['entry'] === 'string');
      // The new entry is published just after the reply: wait (up to 5 s) until it is served here.
      const deadline = Date.now() + 5000;
      while (directory !== undefined && directory.lookup(self)?.keyVersion !== certified.version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      return certified;
    },
    revoke: (principal, reason, version) => view(Commands.keys.revoke, { principal, reason, ...(version === undefined ? {} : { version }) }),
    requestRotation: (principal, reason = 'on_demand') => view(Commands.keys.requestRotation, { principal, reason }),
    disable: (principal, version) => view(Commands.keys.disable, { principal, version }),
    enable: (principal, version) => view(Commands.keys.enable, { principal, version }),
    scheduleDeletion: (principal, version, days = 7) => view(Commands.keys.scheduleDeletion, { principal, version, days }),
    cancelDeletion: (principal, version) => view(Commands.keys.cancelDeletion, { principal, version }),
    renew: async (natsUser) => as(await call(Commands.keys.renew, { natsUser }), Commands.keys.renew, (o) => typeof o['natsJwt'] === 'string' && typeof o['expires'] === 'string'),
    channel: async (action) => as(await call(Commands.keys.channel, action), Commands.keys.channel, (o) => typeof o['channel'] === 'string' && typeof o['epoch'] === 'number' && Array.isArray(o['subscribers'])),
    channels: async () => as(await call(Commands.keys.channel, { action: 'list' }), Commands.keys.channel, (o) => Array.isArray(o['channels'])),
  };
}

export interface EnrollOptions {
  /** A bus connected with the bundle's NATS credentials (`bundle.natsJwt`, `bundle.natsSeed`), or anonymous where the bus does not authenticate. */
  readonly bus: Bus;
  readonly provider: CryptoProvider;
  /** The directory (the key manager's entry, checked against the pinned root). */
  readonly directory: Directory;
  readonly bundle: JoinBundle;
  /** The NATS user's public nkey made here for the enrolled principal. */
  readonly natsUser: string;
  readonly timeoutMs?: number;
}

/** Enrols the bundle's principal: returns its new identity (the bundle's version, 2 for a new principal; generated here) and what the key manager certified. */
export async function enrollWithJoinBundle(options: EnrollOptions): Promise<{ identity: { id: string; version: number; ed25519: Ed25519KeyPair; x25519: X25519KeyPair }; certified: Certified }> {
  const { provider, bundle } = options;
  const boot = { id: bundle.principal, x25519: { secretKey: bundle.x25519Secret, publicKey: provider.x25519.publicKey(bundle.x25519Secret) } };
  const client = new CommandClient(options.bus, { sessions: { provider, self: boot, directory: options.directory }, rejections: new RejectionReporter({ reporter: bundle.principal, publish: async () => undefined }) });
  const keys: NewKeys = { ed25519: provider.ed25519.generateKeyPair(), x25519: provider.x25519.generateKeyPair(), natsUser: options.natsUser };
  const body = { token: bundle.token, ...keysBody(provider, bundle.principal, bundle.version, keys) };
  const reply = JSON.parse(new TextDecoder().decode(await client.request(Commands.keys.enroll, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: options.timeoutMs ?? 5000 }))) as unknown;
  if (typeof reply !== 'object' || reply === null || typeof (reply as Record<string, unknown>)['entry'] !== 'string') throw new BulwarkError('E_KEYS_REPLY', 'malformed reply to keys.enroll', {});
  client.reset();
  // The key manager publishes the new entry just after its reply: wait until it is served here.
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  while (options.directory.lookup(bundle.principal)?.keyVersion !== bundle.version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return { identity: { id: bundle.principal, version: bundle.version, ed25519: keys.ed25519, x25519: keys.x25519 }, certified: reply as Certified };
}
