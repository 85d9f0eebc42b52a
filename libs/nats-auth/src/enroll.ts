/**
 * Enrolment (DESIGN §3, §3a): a principal gets its identity keys, a directory entry signed by
 * the root key, and its NATS user. `bulwark init` enrols the services and the first
 * administrator, `bulwark principal add` everyone else; the key manager will serve the same
 * call over the bus.
 */
import { publishDirectoryEntry, type Bus, type Namespace, type PublishOutcome } from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { DEFAULT_SKEW_MS, encodeDirectoryEntry, type DirectoryEntry, type SignedDirectoryEntry } from '@bulwark/envelope';
import { ensureIdentity, openStoreRootSigner, requirePrincipalId, type FileKeyStore, type Identity, type KeyKind, type RootSigner } from '@bulwark/keystore';
import { NatsAuthError } from './errors.js';
import { ensureNatsUser, type NatsCredentials } from './users.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The directory entry for an identity. Deterministic in the stored keys (validity from the
 * keys' creation time), so a re-run signs the same bytes and republishing is a no-op. Valid
 * from the creation time less the envelope's clock skew, for one rotation interval.
 */
export function directoryEntryFor(identity: Identity, validityDays: number): DirectoryEntry {
  const created = Date.parse(identity.created);
  return {
    id: identity.id,
    ed25519PublicKey: identity.ed25519.publicKey,
    x25519PublicKey: identity.x25519.publicKey,
    keyVersion: identity.version,
    notBefore: Math.max(0, created - DEFAULT_SKEW_MS),
    notAfter: created + validityDays * DAY_MS,
    revoked: false,
  };
}

export interface EnrollOptions {
  readonly store: FileKeyStore;
  readonly provider: CryptoProvider;
  /** `svc.<name>`, `agent.<uuid>` or `analyst.<name>`. */
  readonly id: string;
  /** An administrator (analysts only): policy administration, audit, keys. */
  readonly admin?: boolean;
  /** The bus namespace the NATS user's permissions are for. */
  readonly namespace: Namespace;
  /** How long the directory entry is valid (config `security.key_rotation_interval_days`). */
  readonly validityDays: number;
  /** When given, the signed entry is published to the directory bucket on it. */
  readonly bus?: Bus;
  /** The root that signs the entry (an HSM's C_Sign); default the root key file of `store`. */
  readonly root?: RootSigner;
}

export interface Enrolment {
  readonly identity: Identity;
  /** The identity key kinds this call generated. */
  readonly createdKeys: readonly KeyKind[];
  readonly entry: DirectoryEntry;
  readonly signed: SignedDirectoryEntry;
  readonly credentials: NatsCredentials;
  readonly natsUserCreated: boolean;
  readonly natsJwtIssued: boolean;
  /** The bucket write, when a bus was given. */
  readonly published: PublishOutcome | null;
}

/** Enrols (or re-enrols, idempotently: keys are kept) one principal. Needs the NATS account key in `store`, and the root key there unless `root` is given. */
export async function enrollPrincipal(options: EnrollOptions): Promise<Enrolment> {
  const principal = requirePrincipalId(options.id, 'principal');
  if (options.admin === true && principal.kind !== 'analyst') {
    throw new NatsAuthError('E_NATS_PRINCIPAL', `principal ${options.id}: only analysts can be administrators`, { principal: options.id });
  }
  // Without a signer the root file must open before any key is made.
  const root = options.root ?? (await openStoreRootSigner(options.store, options.provider));
  let enrolled;
  try {
    const { identity, created } = await ensureIdentity(options.store, options.provider, options.id);
    const entry = directoryEntryFor(identity, options.validityDays);
    // The NATS user lapses with the directory entry: one validity for both layers.
    const user = await ensureNatsUser(options.store, options.provider, { kind: 'principal', id: options.id, admin: options.admin === true }, options.namespace, { expiresAt: entry.notAfter });
    const signed: SignedDirectoryEntry = { entry, signature: root.sign(encodeDirectoryEntry(entry)) };
    enrolled = { identity, created, entry, signed, user };
  } finally {
    // A signer opened here is forgotten here; the caller's stays open.
    if (options.root === undefined) root.close();
  }
  const { identity, created, entry, signed, user } = enrolled;
  const published = options.bus === undefined ? null : (await publishDirectoryEntry(options.bus, signed)).outcome;
  return { identity, createdKeys: created, entry, signed, credentials: user.credentials, natsUserCreated: user.created, natsJwtIssued: user.issued, published };
}
