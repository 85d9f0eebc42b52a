/**
 * The pending slot of a file key store (`<dir>/pending/`, same modes, same KEK): a principal's
 * new keys for a version it is asking the key manager to certify (issue 12, a key rotation). They
 * are written here BEFORE the request goes out, so a reply lost after the key manager committed
 * the rotation (or a crash before the keys were stored) never leaves the holder on a version
 * whose private keys it does not have: it settles with the key manager and adopts them, sends
 * the same rotation again, or drops them (libs/client rotation-settle.ts). Nothing in the slot is
 * an identity: `loadIdentity` and `list` never see it, until the keys are stored as a version.
 */
import { promises as fs } from 'node:fs';
import type { Ed25519KeyPair, X25519KeyPair } from '@bulwark/crypto';
import { join } from 'node:path';
import { PENDING_DIR, type FileKeyStore } from './file-key-store.js';
import type { KeyKind } from './wrapped-key.js';

/** A rotation's keys as staged: its version, the identity key pairs and the new NATS user's raw seed. */
export interface PendingRotation {
  readonly version: number;
  readonly ed25519: Ed25519KeyPair;
  readonly x25519: X25519KeyPair;
  /** The 32-byte seed of the new NATS user (`nats-user` kind). */
  readonly natsRaw: Uint8Array;
}

/** The pending slot of `store` for `principal`: stage, load, drop (the shape @bulwark/client's `RotationStaging` takes). */
export interface PendingRotationSlot {
  stage(keys: PendingRotation): Promise<void>;
  load(): Promise<PendingRotation | undefined>;
  drop(): Promise<void>;
}

const KINDS = ['ed25519', 'x25519', 'nats-user'] as const satisfies readonly KeyKind[];

export function pendingRotationSlot(store: FileKeyStore, principal: string): PendingRotationSlot {
  // Reading an absent slot does not create it (only staging does).
  const exists = (): Promise<boolean> => fs.stat(join(store.dir, PENDING_DIR)).then(() => true, () => false);
  const drop = async (): Promise<void> => {
    if (!(await exists())) return;
    const slot = await store.pendingStore();
    for (const info of await slot.list(principal)) await fs.rm(slot.pathOf(info), { force: true });
  };
  return {
    // One staged rotation at a time: an earlier one (never certified, or settled) goes first.
    async stage(keys) {
      await drop();
      const slot = await store.pendingStore();
      await slot.put({ principal, kind: 'ed25519', version: keys.version }, keys.ed25519.secretKey);
      await slot.put({ principal, kind: 'x25519', version: keys.version }, keys.x25519.secretKey);
      await slot.put({ principal, kind: 'nats-user', version: keys.version }, keys.natsRaw);
    },
    async load() {
      if (!(await exists())) return undefined;
      const slot = await store.pendingStore();
      const infos = await slot.list(principal);
      const version = Math.max(0, ...infos.map((i) => i.version));
      // Staged in full before the request went out: a partial set (a crash while staging) was never sent.
      if (version === 0 || !KINDS.every((kind) => infos.some((i) => i.kind === kind && i.version === version))) return undefined;
      const [ed, x, nats] = await Promise.all(KINDS.map((kind) => slot.get({ principal, kind, version })));
      return {
        version,
        ed25519: { secretKey: ed!.secretKey, publicKey: ed!.info.publicKey },
        x25519: { secretKey: x!.secretKey, publicKey: x!.info.publicKey },
        natsRaw: nats!.secretKey,
      };
    },
    drop,
  };
}
