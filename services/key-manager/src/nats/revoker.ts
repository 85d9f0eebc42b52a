/**
 * The bus half of revocation (issue 12, DESIGN §3a): a revoked version's NATS user is put in the
 * account `BULWARK`'s JWT `revocations`, the JWT is re-signed with the operator key and pushed
 * through the system account (`$SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE`). What nats-server
 * 2.9.10 does with `resolver: MEMORY` (measured, services/key-manager/test/nats-revocation.latency.test.ts):
 * it answers that subject (not `$SYS.REQ.CLAIMS.UPDATE`: no responders), closes the revoked
 * user's connections at once ("User Authentication Revoked") and refuses them afterwards. The
 * update is held in the server's memory: after a server restart the configuration's preload
 * applies again, so the revoker pushes the whole list again (`push` is idempotent; the service
 * calls it at start and on an interval). The list is always the whole revoked set, rebuilt from
 * the ledger: nothing is ever removed from it.
 *
 * Custody: the operator, account and system account keys are read from the key manager's store
 * (the only store that holds them after `bulwark init` hands the root over).
 */
import { SystemAccountConnection } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { generateKey, ROOT_KEY_OWNER, type KeyStore, type NkeyKind } from '@bulwark/keystore';
import { ACCOUNT_NAME, DEFAULT_ACCOUNT_LIMITS, issueAccountJwt, issueUserJwt, nkeyPair, type AccountLimits } from '@bulwark/nats-auth';

const SYS_USER_TTL_MS = 24 * 60 * 60 * 1000;

type Pair = ReturnType<typeof nkeyPair>;

async function rootPair(store: KeyStore, kind: NkeyKind): Promise<Pair> {
  const { secretKey } = await store.get({ principal: ROOT_KEY_OWNER, kind, version: 1 });
  try {
    return nkeyPair(kind, secretKey);
  } finally {
    secretKey.fill(0);
  }
}

export interface NatsRevokerOptions {
  readonly store: KeyStore;
  readonly provider: CryptoProvider;
  readonly url: string;
  /** The account's limits as `bulwark init` set them (default DEFAULT_ACCOUNT_LIMITS): the re-signed JWT must keep them. */
  readonly limits?: AccountLimits;
}

export class NatsRevoker {
  readonly accountPublicKey: string;
  readonly #account: Pair;
  readonly #operator: Pair;
  readonly #limits: AccountLimits;
  readonly #sys: SystemAccountConnection;
  #last = '';

  private constructor(account: Pair, operator: Pair, limits: AccountLimits, sys: SystemAccountConnection) {
    this.#account = account;
    this.#operator = operator;
    this.#limits = limits;
    this.#sys = sys;
    this.accountPublicKey = account.getPublicKey();
  }

  /** Connects as a fresh, short-lived system-account user that may only push account claims. */
  static async open(options: NatsRevokerOptions): Promise<NatsRevoker> {
    const account = await rootPair(options.store, 'nats-account');
    const operator = await rootPair(options.store, 'nats-operator');
    const system = await rootPair(options.store, 'nats-system-account');
    const seed = generateKey(options.provider, 'nats-user');
    const user = nkeyPair('nats-user', seed);
    seed.fill(0);
    try {
      const jwt = await issueUserJwt('svc.key-manager#claims', user, system, { publish: ['$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE'], subscribe: ['_INBOX.>'], respond: false }, Date.now() + SYS_USER_TTL_MS);
      const sys = await SystemAccountConnection.connect({ url: options.url, name: 'svc.key-manager#claims', credentials: { jwt, seed: user.getSeed() } });
      return new NatsRevoker(account, operator, options.limits ?? DEFAULT_ACCOUNT_LIMITS, sys);
    } finally {
      user.clear();
      system.clear();
    }
  }

  /**
   * Pushes the account JWT revoking exactly `revocations` (user public nkey → Unix ms of the
   * revocation; every JWT of that key issued up to then is refused). Unchanged lists are pushed
   * again only when `force` (after a server restart the server has forgotten them).
   */
  async push(revocations: ReadonlyMap<string, number>, options: { force?: boolean } = {}): Promise<boolean> {
    const list: Record<string, number> = {};
    for (const [user, at] of [...revocations].sort(([a], [b]) => (a < b ? -1 : 1))) list[user] = Math.ceil(at / 1000);
    const key = JSON.stringify(list);
    if (key === this.#last && options.force !== true) return false;
    const jwt = await issueAccountJwt(ACCOUNT_NAME, this.#account, this.#operator, this.#limits, list);
    await this.#sys.updateAccountClaims(this.accountPublicKey, jwt);
    this.#last = key;
    return true;
  }

  async close(): Promise<void> {
    this.#account.clear();
    this.#operator.clear();
    await this.#sys.close();
  }
}
