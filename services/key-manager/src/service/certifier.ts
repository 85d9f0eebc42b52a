/**
 * Custody (issue 12): the root signing key and the NATS account key live with the key manager
 * only. The certifier holds them in memory for the life of the service, opened from its own key
 * store at start (a wrong KEK or a corrupted key file stops the start: fail secure), and signs
 * directory entries and user JWTs with them. Nothing here is ever written or sent elsewhere.
 */
import type { Namespace } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { DEFAULT_SKEW_MS, encodeDirectoryEntry, type DirectoryEntry, type SignedDirectoryEntry } from '@bulwark/envelope';
import { activeVersion, type PrincipalKey } from '@bulwark/ledger-reader';
import { openStoreRootSigner, ROOT_KEY_OWNER, type KeyStore, type RootSigner } from '@bulwark/keystore';
import { issueUserJwt, nkeyPair, permissionsFor, type BusPermissions } from '@bulwark/nats-auth';
import { fromPublic } from '@nats-io/nkeys';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertifierOptions {
  readonly store: KeyStore;
  /** The root signing key when it is not in `store` (an HSM's); the caller keeps and closes it. Default: the store's root. */
  readonly root?: RootSigner;
  readonly provider: CryptoProvider;
  readonly namespace: Namespace;
  /** How long a certified version's directory entry is valid (`key_rotation_interval_days`, default 90). */
  readonly validityDays: number;
}

export class Certifier {
  readonly rootPublicKey: Uint8Array;
  readonly #root: RootSigner;
  readonly #ownsRoot: boolean;
  readonly #account: ReturnType<typeof nkeyPair> | undefined;
  readonly #options: CertifierOptions;

  private constructor(root: RootSigner, ownsRoot: boolean, account: ReturnType<typeof nkeyPair> | undefined, options: CertifierOptions) {
    this.#root = root;
    this.#ownsRoot = ownsRoot;
    this.rootPublicKey = root.publicKey;
    this.#account = account;
    this.#options = options;
  }

  /** Opens the root key (and the NATS account key, when the store has one). Throws what the store throws: E_KEY_UNWRAP, E_KEY_FILE, E_KEY_NOT_FOUND. */
  static async open(options: CertifierOptions): Promise<Certifier> {
    const root = options.root ?? (await openStoreRootSigner(options.store, options.provider));
    const ref = { principal: ROOT_KEY_OWNER, kind: 'nats-account' as const, version: 1 };
    let account: ReturnType<typeof nkeyPair> | undefined;
    if (await options.store.has(ref)) {
      const { secretKey } = await options.store.get(ref);
      account = nkeyPair('nats-account', secretKey);
      secretKey.fill(0);
    }
    return new Certifier(root, options.root === undefined, account, options);
  }

  get issuesNatsUsers(): boolean {
    return this.#account !== undefined;
  }

  /**
   * The directory entry the key's state calls for, deterministic in it (so every instance
   * signs the same bytes and a re-publish is a no-op): the active version valid from its
   * creation for the validity period (a bootstrap version until its token's expiry); with no
   * active version, the latest version revoked (a disabled one: expired at once).
   */
  entryFor(key: PrincipalKey, bootstrapUntil?: number): SignedDirectoryEntry {
    const active = activeVersion(key);
    const latest = active ?? key.versions[key.versions.length - 1]!;
    const notBefore = Math.max(0, latest.created - DEFAULT_SKEW_MS);
    const entry: DirectoryEntry = {
      id: key.id,
      ed25519PublicKey: new Uint8Array(Buffer.from(latest.keys.ed25519, 'base64')),
      x25519PublicKey: new Uint8Array(Buffer.from(latest.keys.x25519, 'base64')),
      keyVersion: latest.version,
      notBefore,
      notAfter: active === undefined && latest.state === 'disabled' ? notBefore + 1 : (bootstrapUntil ?? latest.created + this.#options.validityDays * DAY_MS),
      revoked: active === undefined && latest.state !== 'disabled',
    };
    return { entry, signature: this.#root.sign(encodeDirectoryEntry(entry)) };
  }

  /** The user JWT of `principal`'s NATS user key `natsUser` (public `U...`), expiring at `expiresAt`; `onlyEnroll` keeps the bootstrap user to `keys.enroll`. */
  async userJwt(principal: string, admin: boolean, natsUser: string, expiresAt: number, onlyEnroll = false): Promise<string> {
    if (this.#account === undefined) throw new Error('the key store holds no NATS account key: this deployment issues no NATS users');
    const full = permissionsFor({ kind: 'principal', id: principal, admin }, this.#options.namespace);
    const ns = this.#options.namespace.subjectPrefix;
    const permissions: BusPermissions = onlyEnroll
      ? { publish: full.publish.filter((s) => !s.startsWith(`${ns}bulwark.`) || s.endsWith('keys.enroll')), subscribe: full.subscribe, respond: false }
      : full;
    return issueUserJwt(principal, fromPublic(natsUser), this.#account, permissions, expiresAt);
  }

  close(): void {
    if (this.#ownsRoot) this.#root.close();
    this.#account?.clear();
  }
}
