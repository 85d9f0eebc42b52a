/**
 * The NATS JWTs (decentralized auth, nats-server operator mode): operator, accounts, users.
 * Every limit is explicit: NATS 2.9 refuses connections to an account or user whose JWT
 * leaves them at 0, and JetStream is off for an account without storage limits.
 */
import { decode, encodeAccount, encodeOperator, encodeUser, type ClaimsData } from '@nats-io/jwt';
import type { KeyPair } from '@nats-io/nkeys';
import { NatsAuthError } from './errors.js';
import type { BusPermissions } from './permissions.js';

/** The account's JetStream and connection limits; -1 is "no limit". */
export interface AccountLimits {
  /** File storage for every stream and bucket of the account (default 10 GiB). */
  readonly diskStorageBytes: number;
  /** Memory storage (default 256 MiB). */
  readonly memoryStorageBytes: number;
  /** Connections (default -1). */
  readonly connections: number;
}

export const DEFAULT_ACCOUNT_LIMITS: AccountLimits = Object.freeze({ diskStorageBytes: 10 * 1024 ** 3, memoryStorageBytes: 256 * 1024 ** 2, connections: -1 });

export const ACCOUNT_NAME = 'BULWARK';
export const SYSTEM_ACCOUNT_NAME = 'SYS';
export const OPERATOR_NAME = 'bulwark';

/** How long a reply permission lasts (`allow_responses`), in nanoseconds as the JWT has it. */
const RESPONSE_TTL_NS = 120 * 1_000_000_000;

export function issueOperatorJwt(operator: KeyPair, systemAccountPublicKey: string): Promise<string> {
  return encodeOperator(OPERATOR_NAME, operator, { system_account: systemAccountPublicKey });
}

/**
 * `revocations` (user public nkey → Unix seconds): the server refuses and disconnects every
 * user JWT of that key issued at or before that time (the key manager's revocation, pushed with
 * `updateAccountClaims`).
 */
export function issueAccountJwt(name: string, account: KeyPair, operator: KeyPair, limits: AccountLimits | undefined, revocations?: Readonly<Record<string, number>>): Promise<string> {
  const base = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: limits?.connections ?? -1, leaf: -1 };
  const js =
    limits === undefined
      ? {}
      : { disk_storage: limits.diskStorageBytes, mem_storage: limits.memoryStorageBytes, streams: -1, consumer: -1, max_ack_pending: -1, mem_max_stream_bytes: -1, disk_max_stream_bytes: -1, max_bytes_required: false };
  return encodeAccount(name, account, { limits: { ...base, ...js }, ...(revocations === undefined || Object.keys(revocations).length === 0 ? {} : { revocations: { ...revocations } }) }, { signer: operator });
}

/** `expiresAt` (ms since the epoch): the JWT's `exp`, after which the server refuses and drops the connection. */
export function issueUserJwt(name: string, user: KeyPair, account: KeyPair, permissions: BusPermissions, expiresAt?: number): Promise<string> {
  const opts = expiresAt === undefined ? {} : { exp: Math.floor(expiresAt / 1000) };
  return encodeUser(name, user, account, {
    pub: { allow: [...permissions.publish] },
    sub: { allow: [...permissions.subscribe] },
    ...(permissions.respond ? { resp: { max: 1, ttl: RESPONSE_TTL_NS } } : {}),
    subs: -1,
    data: -1,
    payload: -1,
  }, opts);
}

/** The verified claims (the signature checks against the issuer in the JWT); `E_NATS_JWT` otherwise. */
export function verifyJwt(jwt: string, where: string): ClaimsData<Record<string, unknown>> {
  try {
    return decode<Record<string, unknown>>(jwt);
  } catch (cause) {
    throw new NatsAuthError('E_NATS_JWT', `${where}: not a valid NATS JWT (${cause instanceof Error ? cause.message : String(cause)})`, { where }, { cause });
  }
}

/**
 * True when two JWTs say the same thing (issuer, subject, name, every `nats` claim), whatever
 * their issue time: a re-run of `bulwark init` keeps a JWT that is still what it would issue.
 */
export function sameClaims(a: string, b: string): boolean {
  const view = (jwt: string): string => {
    const c = decode<Record<string, unknown>>(jwt);
    return canonical({ iss: c.iss, sub: c.sub, name: c.name, exp: c.exp ?? null, nats: c.nats });
  };
  try {
    return view(a) === view(b);
  } catch {
    return false;
  }
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
