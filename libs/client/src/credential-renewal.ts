/**
 * Short-lived NATS credentials renewed at half-life (issue 12; SPIRE renews its SVIDs the same
 * way): the user JWT a connection presents is replaced by a fresh one for the same nkey well
 * before it expires. The connection itself keeps running: the server closes it when the JWT it
 * connected with expires, and the client reconnects at once with the renewed JWT
 * (`Bus.renewCredentials`), resubscribing and flushing what was published meanwhile. A renewal
 * that fails is retried (every tenth of the time left, at least `minRetryMs`) until the JWT
 * expires; a principal whose renewal is refused (revoked) is cut off at that expiry. A renewed
 * JWT is accepted only for the same user and name, with an expiry after the next retry could
 * come; it may expire before the current one (a long first JWT is replaced by short-lived ones).
 */
import type { Bus } from '@bulwark/bus';
import { BulwarkError } from '@bulwark/errors';
import { fromSeed } from '@nats-io/nkeys';

export interface CredentialRenewalOptions {
  readonly bus: Bus;
  /** The JWT the bus connected with and its user seed (`SU...` as bytes). */
  readonly credentials: { readonly jwt: string; readonly seed: Uint8Array };
  /** Asks the key manager for a fresh JWT of `natsUser` (`client.keys.renew`). */
  readonly renew: (natsUser: string) => Promise<{ natsJwt: string }>;
  /** Where in the JWT's life to renew, 0..1 (default 0.5: half-life). */
  readonly at?: number;
  readonly minRetryMs?: number;
  readonly onRenewed?: (expires: number) => void;
  readonly onError?: (error: unknown, retryInMs: number) => void;
  readonly now?: () => number;
}

export interface CredentialRenewal {
  /** When the JWT now presented expires (Unix ms), undefined for one that never does. */
  readonly expires: number | undefined;
  readonly renewals: number;
  stop(): void;
}

interface UserClaims {
  readonly sub: string;
  readonly name: string;
  readonly iat: number;
  readonly exp?: number;
}

function claimsOf(jwt: string, what: string): UserClaims {
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch (cause) {
    throw new BulwarkError('E_CREDENTIALS_JWT', `${what}: not a JWT`, {}, { cause });
  }
  const c = claims as Partial<UserClaims> | null;
  if (c === null || typeof c !== 'object' || typeof c.sub !== 'string' || typeof c.iat !== 'number' || (c.exp !== undefined && typeof c.exp !== 'number')) {
    throw new BulwarkError('E_CREDENTIALS_JWT', `${what}: not a NATS user JWT (sub, iat, exp)`, {});
  }
  return c as UserClaims;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export function startCredentialRenewal(options: CredentialRenewalOptions): CredentialRenewal {
  const now = options.now ?? Date.now;
  const at = options.at ?? 0.5;
  const minRetryMs = options.minRetryMs ?? 1000;
  const pair = fromSeed(options.credentials.seed.slice());
  const natsUser = pair.getPublicKey();
  pair.clear();
  let current = claimsOf(options.credentials.jwt, 'the current credentials');
  if (current.sub !== natsUser) throw new BulwarkError('E_CREDENTIALS_JWT', "the current credentials: the JWT is not the seed's user", {});
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let renewals = 0;
  const expiresOf = (c: UserClaims): number | undefined => (c.exp === undefined ? undefined : c.exp * 1000);

  const schedule = (delayMs: number): void => {
    if (stopped) return;
    // setTimeout fires at once beyond 2^31-1 ms (~24.8 days): a longer wait is made of shorter ones.
    const wait = Math.max(0, delayMs);
    timer = setTimeout(() => (wait > MAX_TIMER_MS ? schedule(wait - MAX_TIMER_MS) : void attempt()), Math.min(wait, MAX_TIMER_MS));
    timer.unref();
  };
  const attempt = async (): Promise<void> => {
    try {
      const { natsJwt } = await options.renew(natsUser);
      const next = claimsOf(natsJwt, 'the renewed credentials');
      // Only a JWT for the same user that lives longer is progress; anything else is refused.
      if (next.sub !== natsUser) throw new BulwarkError('E_CREDENTIALS_JWT', `the renewed JWT is for ${next.sub}, not ${natsUser}`, {});
      if (next.name !== current.name) throw new BulwarkError('E_CREDENTIALS_JWT', `the renewed JWT names ${next.name}, not ${current.name}`, {});
      // It must expire, and not before the next attempt could replace it. It may expire before
      // the current one: a service's first JWT (from `bulwark init`) lasts as long as its
      // directory entry, its renewals the key manager's credential lifetime (24 h by default).
      const after = expiresOf(next);
      if (after === undefined) throw new BulwarkError('E_CREDENTIALS_JWT', 'the renewed JWT never expires: refused (renewed credentials are short-lived)', {});
      if (after <= now() + minRetryMs) throw new BulwarkError('E_CREDENTIALS_JWT', `the renewed JWT expires at ${new Date(after).toISOString()}: too soon to be a renewal`, {});
      if (stopped) return;
      options.bus.renewCredentials({ jwt: natsJwt, seed: options.credentials.seed });
      current = next;
      renewals++;
      options.onRenewed?.(after);
      planNext();
    } catch (error) {
      const expires = expiresOf(current);
      const left = expires === undefined ? 0 : expires - now();
      const retryIn = Math.max(minRetryMs, left / 10);
      options.onError?.(error, retryIn);
      if (expires === undefined || left > 0) schedule(retryIn);
    }
  };
  const planNext = (): void => {
    const expires = expiresOf(current);
    if (expires === undefined) return;
    const issued = current.iat * 1000;
    schedule(issued + (expires - issued) * at - now());
  };
  planNext();
  return {
    get expires() {
      return expiresOf(current);
    },
    get renewals() {
      return renewals;
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
