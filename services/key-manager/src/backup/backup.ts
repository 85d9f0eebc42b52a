/**
 * Backup and recovery of the key store (issue 12; seed S3.2 "distributed backup and recovery").
 *
 * `createBackup` encrypts the store's files (they are already wrapped under the KEK; the backup
 * adds a layer so that the KEK alone does not open it, and the holders alone do not either)
 * with AES-256-GCM under a fresh 32-byte key, splits that key with Shamir's scheme
 * (`shamir-secret-sharing`, GF(256), k of n), and seals each share to one recovery holder's
 * X25519 key (ephemeral-static X25519 → HKDF-SHA256 → ChaCha20-Poly1305, bound to the backup id,
 * the share's index and the holder). The manifest lists, per share, its holder and the SHA-256 of
 * the share, and the root key signs the whole manifest (through its `RootSigner`: on an HSM the
 * token signs, and the root itself is not in the backup; the token is backed up by its own means).
 *
 * `restoreBackup` authenticates before it combines: the manifest's root signature; each share
 * opens under its holder's key (a wrong holder key or a tampered sealed share is named) and
 * matches its recorded hash (a wrong share is named); at least k good shares; the recombined key
 * opens the payload (GCM tag) and the payload matches its recorded hash. It returns the files and
 * writes nothing: the caller writes them only after every check passed.
 */
import type { CryptoProvider } from '@bulwark/crypto';
import { BulwarkError } from '@bulwark/errors';
import type { RootSigner } from '@bulwark/keystore';
import { combine, split } from 'shamir-secret-sharing';

export const BACKUP_FORMAT = 'bulwark-key-backup/v1';
const SHARE_LABEL = 'bulwark/backup-share/v1';

export class BackupError extends BulwarkError {}

export interface BackupFile {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface RecoveryHolder {
  readonly id: string;
  readonly x25519PublicKey: Uint8Array;
}

interface SealedShare {
  readonly index: number;
  readonly holder: string;
  readonly ephemeral: string;
  readonly sealed: string;
  readonly shareHash: string;
}

export interface BackupManifest {
  readonly format: typeof BACKUP_FORMAT;
  readonly backupId: string;
  readonly created: string;
  readonly threshold: number;
  readonly shares: readonly SealedShare[];
  readonly nonce: string;
  readonly ciphertext: string;
  readonly payloadHash: string;
  /** base64 Ed25519 signature by the root key over the manifest's canonical text without this field. */
  readonly signature: string;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Keys sorted at every level: the text the root signs. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function shareKey(provider: CryptoProvider, shared: Uint8Array, backupId: string, index: number, holder: string, ephemeral: Uint8Array, recipient: Uint8Array): Uint8Array {
  return provider.hkdfSha256(shared, provider.sha256([ephemeral, recipient]), utf8(`${SHARE_LABEL}|${backupId}|${index}|${holder}`), 32);
}

function shareAd(backupId: string, index: number, holder: string): Uint8Array {
  return utf8(`${SHARE_LABEL}|${backupId}|${index}|${holder}`);
}

export interface CreateBackupOptions {
  readonly provider: CryptoProvider;
  readonly files: readonly BackupFile[];
  readonly holders: readonly RecoveryHolder[];
  /** k: shares needed to restore (2 ≤ k ≤ n). */
  readonly threshold: number;
  /** Signs the manifest: the root signer (the token's C_Sign on an HSM: the root's bytes are never needed). */
  readonly root: Pick<RootSigner, 'sign'>;
  readonly now?: number;
}

export async function createBackup(options: CreateBackupOptions): Promise<BackupManifest> {
  const { provider, holders, threshold } = options;
  const n = holders.length;
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > n || n > 255) {
    throw new BackupError('E_BACKUP_HOLDERS', `backup: --holders ${threshold}-of-${n} is not possible; need 2 ≤ k ≤ n ≤ 255`, { threshold, n });
  }
  if (new Set(holders.map((h) => h.id)).size !== n) throw new BackupError('E_BACKUP_HOLDERS', 'backup: each recovery holder must appear once', {});
  const backupId = hex(provider.randomBytes(16));
  const payload = utf8(canonical(options.files.map((f) => ({ name: f.name, bytes: b64(f.bytes) }))));
  const dek = provider.randomBytes(32);
  const nonce = provider.randomBytes(12);
  const ciphertext = provider.aes256gcm.seal(dek, nonce, payload, utf8(`${BACKUP_FORMAT}|${backupId}`));
  const parts = await split(dek, n, threshold);
  dek.fill(0);
  const shares: SealedShare[] = parts.map((share, i) => {
    const holder = holders[i]!;
    const eph = provider.x25519.generateKeyPair();
    const key = shareKey(provider, provider.x25519.sharedSecret(eph.secretKey, holder.x25519PublicKey), backupId, i, holder.id, eph.publicKey, holder.x25519PublicKey);
    const sealed = provider.chacha20poly1305.seal(key, new Uint8Array(12), share, shareAd(backupId, i, holder.id));
    const out = { index: i, holder: holder.id, ephemeral: b64(eph.publicKey), sealed: b64(sealed), shareHash: hex(provider.sha256(share)) };
    share.fill(0);
    eph.secretKey.fill(0);
    return out;
  });
  const unsigned = { format: BACKUP_FORMAT, backupId, created: new Date(options.now ?? Date.now()).toISOString(), threshold, shares, nonce: b64(nonce), ciphertext: b64(ciphertext), payloadHash: hex(provider.sha256(payload)) } as const;
  return { ...unsigned, signature: b64(options.root.sign(utf8(canonical(unsigned)))) };
}

/** The SHA-256 of the manifest's canonical text (signature included): what the ledger anchors. */
export function backupHash(provider: CryptoProvider, manifest: BackupManifest): string {
  return hex(provider.sha256(utf8(canonical(manifest))));
}

export interface RestoreBackupOptions {
  readonly provider: CryptoProvider;
  readonly manifest: BackupManifest;
  readonly rootPublicKey: Uint8Array;
  /** The holders present, each with its X25519 secret key. */
  readonly holders: readonly { readonly id: string; readonly x25519SecretKey: Uint8Array }[];
}

export async function restoreBackup(options: RestoreBackupOptions): Promise<readonly BackupFile[]> {
  const { provider, manifest } = options;
  const { signature, ...unsigned } = manifest;
  if (manifest.format !== BACKUP_FORMAT || typeof signature !== 'string' || !provider.ed25519.verify(options.rootPublicKey, utf8(canonical(unsigned)), unb64(signature))) {
    throw new BackupError('E_BACKUP_SIGNATURE', `restore: the backup manifest is not signed by the pinned root key (altered, or another deployment's)`, {});
  }
  const good: Uint8Array[] = [];
  for (const h of options.holders) {
    const entry = manifest.shares.find((s) => s.holder === h.id);
    if (entry === undefined) throw new BackupError('E_BACKUP_SHARE', `restore: ${h.id} holds no share of backup ${manifest.backupId}`, { holder: h.id });
    const recipient = provider.x25519.publicKey(h.x25519SecretKey);
    let share: Uint8Array;
    try {
      const key = shareKey(provider, provider.x25519.sharedSecret(h.x25519SecretKey, unb64(entry.ephemeral)), manifest.backupId, entry.index, h.id, unb64(entry.ephemeral), recipient);
      share = provider.chacha20poly1305.open(key, new Uint8Array(12), unb64(entry.sealed), shareAd(manifest.backupId, entry.index, h.id));
    } catch (cause) {
      throw new BackupError('E_BACKUP_SHARE', `restore: share ${entry.index} (holder ${h.id}) does not open: the wrong holder key, or the sealed share was altered`, { holder: h.id, index: entry.index }, { cause });
    }
    if (hex(provider.sha256(share)) !== entry.shareHash) throw new BackupError('E_BACKUP_SHARE', `restore: share ${entry.index} (holder ${h.id}) is not the share recorded in the manifest`, { holder: h.id, index: entry.index });
    good.push(share);
  }
  if (good.length < manifest.threshold) {
    throw new BackupError('E_BACKUP_SHARES', `restore: backup ${manifest.backupId} needs ${manifest.threshold} shares, ${good.length} given`, { needed: manifest.threshold, given: good.length });
  }
  const dek = await combine(good);
  let payload: Uint8Array;
  try {
    payload = provider.aes256gcm.open(dek, unb64(manifest.nonce), unb64(manifest.ciphertext), utf8(`${BACKUP_FORMAT}|${manifest.backupId}`));
  } catch (cause) {
    throw new BackupError('E_BACKUP_INTEGRITY', `restore: the recombined key does not open backup ${manifest.backupId}`, {}, { cause });
  } finally {
    dek.fill(0);
    for (const s of good) s.fill(0);
  }
  if (hex(provider.sha256(payload)) !== manifest.payloadHash) throw new BackupError('E_BACKUP_INTEGRITY', `restore: backup ${manifest.backupId}'s content does not match its recorded hash`, {});
  const files = JSON.parse(new TextDecoder().decode(payload)) as { name: string; bytes: string }[];
  return files.map((f) => ({ name: f.name, bytes: unb64(f.bytes) }));
}
