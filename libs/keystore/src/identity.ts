import type { CryptoProvider, Ed25519KeyPair, X25519KeyPair } from '@bulwark/crypto';
import { KeyStoreError } from './errors.js';
import type { KeyStore } from './key-store.js';
import { requirePrincipalId, ROOT_KEY_OWNER } from './principal-id.js';
import { IDENTITY_KEY_KINDS, type KeyKind, type KeyRef } from './wrapped-key.js';

/**
 * A principal's keys (DESIGN §3): Ed25519 to sign as itself, X25519 for the Noise
 * handshakes, both under one version. Structurally an envelope `LocalIdentity`.
 */
export interface Identity {
  readonly id: string;
  readonly version: number;
  readonly ed25519: Ed25519KeyPair;
  readonly x25519: X25519KeyPair;
  /** ISO 8601: when the identity's keys were stored (the later of the two). */
  readonly created: string;
  /** X25519 keys of the principal's earlier versions, newest first (a service that rotates its own key: envelope `LocalIdentity`). */
  readonly previousX25519?: readonly X25519KeyPair[];
}

/** The root signing key (DESIGN §8): it signs directory entries and nothing else. */
export interface RootKey {
  readonly version: number;
  readonly keyPair: Ed25519KeyPair;
  readonly created: string;
}

/** A fresh private key of the kind (nkey seeds are Ed25519 seeds). */
export function generateKey(provider: CryptoProvider, kind: KeyKind): Uint8Array {
  switch (kind) {
    case 'ed25519':
    case 'nats-operator':
    case 'nats-account':
    case 'nats-system-account':
    case 'nats-user':
      return provider.ed25519.generateKeyPair().secretKey;
    case 'x25519':
      return provider.x25519.generateKeyPair().secretKey;
    default: {
      const unreachable: never = kind;
      throw new Error(`unhandled key kind ${String(unreachable)}`);
    }
  }
}

/** The highest version for which the owner has every kind in `kinds`; undefined when none. */
async function latestVersion(store: KeyStore, owner: string, kinds: readonly KeyKind[]): Promise<number | undefined> {
  const infos = await store.list(owner);
  const versions = [...new Set(infos.map((i) => i.version))].sort((a, b) => b - a);
  return versions.find((v) => kinds.every((kind) => infos.some((i) => i.version === v && i.kind === kind)));
}

/** The identity at `version` (the latest complete one by default); `E_KEY_NOT_FOUND` when there is none. */
export async function loadIdentity(store: KeyStore, id: string, version?: number): Promise<Identity> {
  requirePrincipalId(id, 'identity');
  const at = version ?? (await latestVersion(store, id, IDENTITY_KEY_KINDS));
  if (at === undefined) throw new KeyStoreError('E_KEY_NOT_FOUND', `no identity for ${id} in ${store.location}`, { id });
  const ed = await store.get({ principal: id, kind: 'ed25519', version: at });
  const x = await store.get({ principal: id, kind: 'x25519', version: at });
  return {
    id,
    version: at,
    ed25519: { secretKey: ed.secretKey, publicKey: ed.info.publicKey },
    x25519: { secretKey: x.secretKey, publicKey: x.info.publicKey },
    created: ed.info.created > x.info.created ? ed.info.created : x.info.created,
  };
}

/**
 * The principal's identity, creating version 1 when it has none. A half-written identity
 * (one key of a version stored, a crash before the other) is completed, never replaced.
 * `created` lists the kinds this call generated.
 */
export async function ensureIdentity(store: KeyStore, provider: CryptoProvider, id: string): Promise<{ identity: Identity; created: readonly KeyKind[] }> {
  requirePrincipalId(id, 'identity');
  const infos = (await store.list(id)).filter((i) => IDENTITY_KEY_KINDS.includes(i.kind));
  const version = infos.reduce((max, i) => Math.max(max, i.version), 0) || 1;
  const created: KeyKind[] = [];
  for (const kind of IDENTITY_KEY_KINDS) {
    const ref: KeyRef = { principal: id, kind, version };
    if (infos.some((i) => i.kind === kind && i.version === version)) continue;
    const secretKey = generateKey(provider, kind);
    await store.put(ref, secretKey);
    secretKey.fill(0);
    created.push(kind);
  }
  return { identity: await loadIdentity(store, id, version), created };
}

export async function loadRootKey(store: KeyStore, version?: number): Promise<RootKey> {
  const at = version ?? (await latestVersion(store, ROOT_KEY_OWNER, ['ed25519']));
  if (at === undefined) throw new KeyStoreError('E_KEY_NOT_FOUND', `no root key in ${store.location}`, {});
  const { info, secretKey } = await store.get({ principal: ROOT_KEY_OWNER, kind: 'ed25519', version: at });
  return { version: at, keyPair: { secretKey, publicKey: info.publicKey }, created: info.created };
}

/** The root key, creating version 1 when the store has none. */
export async function ensureRootKey(store: KeyStore, provider: CryptoProvider): Promise<{ root: RootKey; created: boolean }> {
  if ((await latestVersion(store, ROOT_KEY_OWNER, ['ed25519'])) !== undefined) return { root: await loadRootKey(store), created: false };
  const secretKey = generateKey(provider, 'ed25519');
  await store.put({ principal: ROOT_KEY_OWNER, kind: 'ed25519', version: 1 }, secretKey);
  secretKey.fill(0);
  return { root: await loadRootKey(store, 1), created: true };
}
