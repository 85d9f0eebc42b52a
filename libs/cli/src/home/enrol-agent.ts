/**
 * An agent enrolled through the key manager (issue 12 "Enrollment without handing out private
 * keys"), as `bulwark demo` does it on the fly: the administrator asks `keys.invite` for a join
 * bundle; the agent's Ed25519, X25519 and NATS user keys are generated here, in memory, and
 * certified by `keys.enroll`; the key manager signs the directory entry and the NATS user JWT.
 * Nothing here needs the root key or the NATS account key.
 */
import { connectBus } from '@bulwark/bus';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle } from '@bulwark/client';
import type { Ed25519KeyPair, X25519KeyPair } from '@bulwark/crypto';
import { BulwarkError } from '@bulwark/errors';
import { inboxPrefixFor } from '@bulwark/nats-auth';
import { newNatsUser } from '../commands/keys.js';
import type { Session } from './session.js';

export interface EnrolledAgent {
  readonly identity: { readonly id: string; readonly version: number; readonly ed25519: Ed25519KeyPair; readonly x25519: X25519KeyPair };
  /** What the key manager signed: the directory entry (base64 of its wire bytes) and its end of validity. */
  readonly certified: { readonly entry: string; readonly notAfter: string };
  /** Its own NATS user: the JWT the key manager issued for the nkey made here. */
  readonly credentials: { readonly jwt: string; readonly seed: Uint8Array; readonly publicKey: string; readonly inboxPrefix: string };
}

/** `agentId` may be an analyst too (`admin`: enrolled as an administrator, `bulwark principal add --admin`). */
export async function enrolAgentThroughKeyManager(admin: Session, url: string, agentId: string, options: { readonly admin?: boolean } = {}): Promise<EnrolledAgent> {
  const adminClient = createBulwarkClient({ bus: admin.bus, sessions: { provider: admin.provider, self: { id: admin.identity.id, x25519: admin.identity.x25519 }, directory: admin.directory } });
  const bundle = parseJoinBundle((await adminClient.keys.invite(agentId, { ttlMs: 10 * 60_000, ...(options.admin === true ? { admin: true } : {}) })).join);
  const inboxPrefix = inboxPrefixFor({ kind: 'principal', id: agentId });
  const boot = bundle.natsJwt !== null && bundle.natsSeed !== null ? { credentials: { jwt: bundle.natsJwt, seed: bundle.natsSeed }, inboxPrefix } : {};
  const bus = await connectBus({ url, name: `${agentId}#enroll`, namespace: admin.bus.namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...boot });
  const nats = newNatsUser(admin.provider);
  try {
    const { identity, certified } = await enrollWithJoinBundle({ bus, provider: admin.provider, directory: admin.directory, bundle, natsUser: nats.publicKey, timeoutMs: 10_000 });
    if (certified.natsJwt === null) throw new BulwarkError('E_KEYS_REPLY', `keys.enroll for ${agentId} issued no NATS user JWT: the bus of this home authenticates`, { principal: agentId });
    return { identity, certified: { entry: certified.entry, notAfter: certified.notAfter }, credentials: { jwt: certified.natsJwt, seed: nats.seed, publicKey: nats.publicKey, inboxPrefix } };
  } catch (error) {
    nats.seed.fill(0);
    throw error;
  } finally {
    await bus.close();
  }
}
