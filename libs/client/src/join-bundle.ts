/**
 * The join bundle an administrator hands to a new principal (`bulwark keys invite` prints it):
 * `bwjb1.<base64url(JSON)>` with the join token and the token's one-time bootstrap identity
 * (Ed25519 + X25519 secret keys, and the NATS user JWT and seed that may only call
 * `keys.enroll`). It is a bearer secret until used: pass it the way a password is passed.
 * The principal's own keys are generated where it runs and never travel.
 */
import { BulwarkError } from '@bulwark/errors';

export interface JoinBundle {
  readonly token: string;
  readonly principal: string;
  /** The key version the enrolment makes: 2 for a new principal, more for one invited again after its versions were revoked. */
  readonly version: number;
  readonly ed25519Secret: Uint8Array;
  readonly x25519Secret: Uint8Array;
  /** Null in a deployment without NATS authentication. */
  readonly natsJwt: string | null;
  readonly natsSeed: Uint8Array | null;
}

export function parseJoinBundle(text: string): JoinBundle {
  const fail = (why: string) => new BulwarkError('E_TOKEN_MALFORMED', `join bundle: ${why}`, {});
  const trimmed = text.trim();
  if (!trimmed.startsWith('bwjb1.')) throw fail('expected bwjb1.<base64url>');
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(trimmed.slice(6), 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw fail('not base64url JSON');
  }
  const key = (name: string): Uint8Array => {
    const v = o[name];
    const b = typeof v === 'string' ? Buffer.from(v, 'base64') : undefined;
    if (b?.length !== 32) throw fail(`${name} is not a 32-byte key`);
    return new Uint8Array(b);
  };
  if (o['v'] !== 1 || typeof o['token'] !== 'string' || typeof o['principal'] !== 'string') throw fail('needs v 1, token and principal');
  const jwt = o['natsJwt'];
  const seed = o['natsSeed'];
  const version = o['version'] ?? 2;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 2) throw fail('version must be an integer of at least 2');
  return {
    token: o['token'],
    principal: o['principal'],
    version,
    ed25519Secret: key('ed25519Secret'),
    x25519Secret: key('x25519Secret'),
    natsJwt: typeof jwt === 'string' ? jwt : null,
    natsSeed: typeof seed === 'string' ? new TextEncoder().encode(seed) : null,
  };
}
