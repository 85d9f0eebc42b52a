/**
 * The NATS authority (DESIGN §3a): the operator, the account `BULWARK` every principal's
 * user belongs to, and the system account. Their nkey seeds are kept in the key store
 * under the KEK like every other private key (owner `root`, kinds `nats-operator`,
 * `nats-account`, `nats-system-account`); their JWTs beside them. Created once, kept after.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { generateKey, ROOT_KEY_OWNER, type FileKeyStore, type NkeyKind } from '@bulwark/keystore';
import type { KeyPair } from '@nats-io/nkeys';
import { NatsAuthError } from './errors.js';
import { readJwt, writeJwt, type JwtRef } from './jwt-file.js';
import { ACCOUNT_NAME, DEFAULT_ACCOUNT_LIMITS, issueAccountJwt, issueOperatorJwt, sameClaims, SYSTEM_ACCOUNT_NAME, type AccountLimits } from './jwts.js';
import { nkeyPair, publicNkey } from './nkey.js';

export interface NatsAuthority {
  readonly operator: { readonly publicKey: string; readonly jwt: string };
  /** The account `BULWARK`: every principal's user. */
  readonly account: { readonly publicKey: string; readonly jwt: string };
  readonly systemAccount: { readonly publicKey: string; readonly jwt: string };
}

export interface EnsureAuthorityResult {
  readonly authority: NatsAuthority;
  /** The nkeys this call generated (empty on a re-run). */
  readonly created: readonly NkeyKind[];
  /** The JWTs this call (re-)issued because they were missing or said something else. */
  readonly issued: readonly NkeyKind[];
}

const VERSION = 1;
const ref = (kind: NkeyKind): JwtRef => ({ owner: ROOT_KEY_OWNER, kind, version: VERSION });

/** The raw seed of `root`'s nkey of this kind, creating it when `provider` is given and it is missing. */
export async function rootNkey(store: FileKeyStore, kind: NkeyKind, provider?: CryptoProvider): Promise<{ pair: KeyPair; created: boolean }> {
  const keyRef = { principal: ROOT_KEY_OWNER, kind, version: VERSION };
  let created = false;
  if (!(await store.has(keyRef))) {
    if (provider === undefined) throw new NatsAuthError('E_NATS_CREDS', `no NATS ${kind} key in ${store.location}: run bulwark init`, { kind });
    const seed = generateKey(provider, kind);
    await store.put(keyRef, seed);
    seed.fill(0);
    created = true;
  }
  const { secretKey } = await store.get(keyRef);
  const pair = nkeyPair(kind, secretKey);
  secretKey.fill(0);
  return { pair, created };
}

/** Keeps the stored JWT when it says what `fresh` says; otherwise stores `fresh`. */
async function keepOrStore(store: FileKeyStore, kind: NkeyKind, fresh: string, issued: NkeyKind[]): Promise<string> {
  const stored = await readJwt(store, ref(kind));
  if (stored !== undefined && sameClaims(stored, fresh)) return stored;
  await writeJwt(store, ref(kind), fresh);
  issued.push(kind);
  return fresh;
}

/**
 * The operator and both accounts, created on first use. Idempotent: keys are never
 * replaced, and a JWT is re-issued only when what it would say changed (e.g. new limits).
 */
export async function ensureNatsAuthority(store: FileKeyStore, provider: CryptoProvider, options: { limits?: AccountLimits } = {}): Promise<EnsureAuthorityResult> {
  const created: NkeyKind[] = [];
  const issued: NkeyKind[] = [];
  const pairs: KeyPair[] = [];
  try {
    const get = async (kind: NkeyKind): Promise<KeyPair> => {
      const { pair, created: isNew } = await rootNkey(store, kind, provider);
      if (isNew) created.push(kind);
      pairs.push(pair);
      return pair;
    };
    const operator = await get('nats-operator');
    const account = await get('nats-account');
    const system = await get('nats-system-account');
    const operatorJwt = await keepOrStore(store, 'nats-operator', await issueOperatorJwt(operator, system.getPublicKey()), issued);
    const accountJwt = await keepOrStore(store, 'nats-account', await issueAccountJwt(ACCOUNT_NAME, account, operator, options.limits ?? DEFAULT_ACCOUNT_LIMITS), issued);
    const systemJwt = await keepOrStore(store, 'nats-system-account', await issueAccountJwt(SYSTEM_ACCOUNT_NAME, system, operator, undefined), issued);
    return {
      authority: {
        operator: { publicKey: operator.getPublicKey(), jwt: operatorJwt },
        account: { publicKey: account.getPublicKey(), jwt: accountJwt },
        systemAccount: { publicKey: system.getPublicKey(), jwt: systemJwt },
      },
      created,
      issued,
    };
  } finally {
    for (const p of pairs) p.clear();
  }
}

/** The stored authority's public parts (for the server configuration); `E_NATS_CREDS` when init has not made it. */
export async function loadNatsAuthority(store: FileKeyStore): Promise<NatsAuthority> {
  const part = async (kind: NkeyKind): Promise<{ publicKey: string; jwt: string }> => {
    const info = (await store.list(ROOT_KEY_OWNER)).find((k) => k.kind === kind && k.version === VERSION);
    const jwt = await readJwt(store, ref(kind));
    if (info === undefined || jwt === undefined) throw new NatsAuthError('E_NATS_CREDS', `no NATS ${kind} in ${store.location}: run bulwark init`, { kind });
    return { publicKey: publicNkey(kind, info.publicKey), jwt };
  };
  return { operator: await part('nats-operator'), account: await part('nats-account'), systemAccount: await part('nats-system-account') };
}
