/**
 * One-time join tokens (issue 12, "Enrollment without handing out private keys"): an
 * administrator asks the key manager for a token naming one principal (id and kind) with a
 * lifetime; the principal generates its keys where it runs and enrolls with the token, and
 * the key manager certifies the public keys it sent. The token carries no key.
 *
 * Wire form: `bwjt1.<base64url(claims JSON)>.<base64url(Ed25519 signature)>`, the signature by
 * the key manager's own identity key over `lp("bulwark/join-token/v1") ‖ claims bytes`.
 * The claims are checked strictly (exact key set, types, lengths), so a token has one form.
 * One-time use is not the token's business: the key manager's state (rebuilt from the ledger,
 * `keys.invited` / `keys.enrolled`) knows which token ids were issued and which were used.
 * The token is a bearer secret until used: the ledger records its id and claims, never the
 * signature, so a reader of the ledger cannot enroll with it.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { parsePrincipalId, type PrincipalKind } from '@bulwark/keystore';
import { JoinTokenError } from '../errors.js';

export const JOIN_TOKEN_PREFIX = 'bwjt1';
const DOMAIN = new TextEncoder().encode('bulwark/join-token/v1');
/** Longest token lifetime an administrator may ask for (7 days); default 1 hour. */
export const MAX_TOKEN_TTL_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_TOKEN_TTL_MS = 60 * 60 * 1000;
const MAX_TOKEN_LENGTH = 2048;

export interface JoinTokenClaims {
  /** Token id: 32 hex characters (128 random bits). */
  readonly tid: string;
  /** The principal the token admits, e.g. `agent.<uuid>`. */
  readonly sub: string;
  readonly kind: PrincipalKind;
  /** Analysts only: enrolled as an administrator. */
  readonly admin: boolean;
  /** Issued at / expires at, Unix ms. */
  readonly iat: number;
  readonly exp: number;
  /** The issuing key manager's identity key version (which public key verifies the signature). */
  readonly kv: number;
}

const CLAIM_KEYS = ['admin', 'exp', 'iat', 'kind', 'kv', 'sub', 'tid'] as const;

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

function fromB64url(text: string, what: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw malformed(`${what} is not base64url`);
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

function malformed(why: string): JoinTokenError {
  return new JoinTokenError('E_TOKEN_MALFORMED', `join token: ${why}`, {});
}

function signedBytes(claimsBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + DOMAIN.length + claimsBytes.length);
  out[0] = DOMAIN.length;
  out.set(DOMAIN, 1);
  out.set(claimsBytes, 1 + DOMAIN.length);
  return out;
}

/** Claims in one canonical JSON form (keys sorted), so the signed bytes are what `parse` re-derives. */
function encodeClaims(c: JoinTokenClaims): Uint8Array {
  const sorted: Record<string, unknown> = {};
  for (const k of CLAIM_KEYS) sorted[k] = c[k];
  return new TextEncoder().encode(JSON.stringify(sorted));
}

export interface IssueTokenOptions {
  readonly principal: string;
  readonly admin?: boolean;
  readonly ttlMs?: number;
  readonly now: number;
  /** The key manager's Ed25519 identity key and its version. */
  readonly signer: { readonly secretKey: Uint8Array; readonly version: number };
}

/** A fresh token and its claims. Refuses an id that is not a principal, a service (services are enrolled by `bulwark init`), a TTL out of range, `admin` for a non-analyst. */
export function issueJoinToken(provider: CryptoProvider, options: IssueTokenOptions): { token: string; claims: JoinTokenClaims } {
  const parsed = parsePrincipalId(options.principal);
  if (parsed === undefined) throw new JoinTokenError('E_TOKEN_PRINCIPAL', `join token: ${JSON.stringify(options.principal.slice(0, 80))} is not a principal id (agent.<uuid> or analyst.<name>)`, {});
  if (parsed.kind === 'svc') throw new JoinTokenError('E_TOKEN_PRINCIPAL', `join token: ${options.principal} is a service; services are enrolled by bulwark init, not by token`, { principal: options.principal });
  const admin = options.admin === true;
  if (admin && parsed.kind !== 'analyst') throw new JoinTokenError('E_TOKEN_PRINCIPAL', `join token: only analysts can be administrators, not ${options.principal}`, { principal: options.principal });
  const ttl = options.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
  if (!Number.isSafeInteger(ttl) || ttl <= 0 || ttl > MAX_TOKEN_TTL_MS) throw new JoinTokenError('E_TOKEN_TTL', `join token: lifetime ${String(ttl)} ms is outside 1 ms..7 days`, { ttl });
  const claims: JoinTokenClaims = {
    tid: Buffer.from(provider.randomBytes(16)).toString('hex'),
    sub: options.principal,
    kind: parsed.kind,
    admin,
    iat: options.now,
    exp: options.now + ttl,
    kv: options.signer.version,
  };
  const bytes = encodeClaims(claims);
  const signature = provider.ed25519.sign(options.signer.secretKey, signedBytes(bytes));
  return { token: `${JOIN_TOKEN_PREFIX}.${b64url(bytes)}.${b64url(signature)}`, claims };
}

/** The claims of a token's text, checked for shape only (no signature, no time): for messages and lookups. */
export function parseJoinToken(token: unknown): { claims: JoinTokenClaims; claimsBytes: Uint8Array; signature: Uint8Array } {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw malformed('not a token string');
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== JOIN_TOKEN_PREFIX) throw malformed(`expected ${JOIN_TOKEN_PREFIX}.<claims>.<signature>`);
  const claimsBytes = fromB64url(parts[1]!, 'the claims part');
  const signature = fromB64url(parts[2]!, 'the signature part');
  if (signature.length !== 64) throw malformed('the signature is not 64 bytes');
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(claimsBytes));
  } catch {
    throw malformed('the claims are not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('the claims are not an object');
  const o = value as Record<string, unknown>;
  if (Object.keys(o).sort().join() !== CLAIM_KEYS.join()) throw malformed(`the claims must be exactly ${CLAIM_KEYS.join(', ')}`);
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof o['tid'] !== 'string' || !/^[0-9a-f]{32}$/.test(o['tid'])) throw malformed('tid is not 32 hex characters');
  if (!int(o['iat']) || !int(o['exp']) || !int(o['kv']) || typeof o['admin'] !== 'boolean') throw malformed('iat, exp, kv or admin has the wrong type');
  const parsed = typeof o['sub'] === 'string' ? parsePrincipalId(o['sub']) : undefined;
  if (parsed === undefined || parsed.kind !== o['kind']) throw malformed('sub is not a principal id of the stated kind');
  const claims: JoinTokenClaims = { tid: o['tid'], sub: o['sub'] as string, kind: parsed.kind, admin: o['admin'], iat: o['iat'], exp: o['exp'], kv: o['kv'] };
  // One form only: the bytes must be the canonical encoding of what they say.
  if (Buffer.compare(Buffer.from(encodeClaims(claims)), Buffer.from(claimsBytes)) !== 0) throw malformed('the claims are not in canonical form');
  return { claims, claimsBytes, signature };
}

/**
 * The claims of an authentic, unexpired token: the signature must verify under the key
 * manager's identity key of version `kv` (`issuerKey` gives it; undefined = unknown version,
 * forged), and `now` must be before `exp`. Used-ness is the caller's (the ledger-rebuilt state).
 */
export function verifyJoinToken(provider: CryptoProvider, token: unknown, issuerKey: (version: number) => Uint8Array | undefined, now: number): JoinTokenClaims {
  const { claims, claimsBytes, signature } = parseJoinToken(token);
  const key = issuerKey(claims.kv);
  if (key === undefined || !provider.ed25519.verify(key, signedBytes(claimsBytes), signature)) {
    throw new JoinTokenError('E_TOKEN_FORGED', `join token ${claims.tid} for ${claims.sub}: the signature is not the key manager's`, { tid: claims.tid, principal: claims.sub });
  }
  if (now >= claims.exp) {
    throw new JoinTokenError('E_TOKEN_EXPIRED', `join token ${claims.tid} for ${claims.sub} expired at ${new Date(claims.exp).toISOString()}`, { tid: claims.tid, principal: claims.sub });
  }
  return claims;
}
