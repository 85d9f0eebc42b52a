/**
 * A rotation the service staged and never stored (it was stopped while `keys.rotate` was out, or
 * right after the key manager committed it), settled before the service starts: its directory
 * entry may already be the new version, and a service still holding the old keys cannot open a
 * handshake made to it, nor have its own requests (the ledger replay its start waits for)
 * answered. Adopted (stored, identity and NATS user switched in place), sent again, or dropped:
 * @bulwark/client rotation-settle.ts.
 */
import type { Bus, KvDirectory } from '@bulwark/bus';
import { startKeyRotation } from '@bulwark/client';
import type { CryptoProvider } from '@bulwark/crypto';
import { pendingRotationSlot, type FileKeyStore, type Identity } from '@bulwark/keystore';
import type { Logger } from '@bulwark/telemetry';
import { keepRotated } from './rotation-keep.js';

export interface StagedAtStartOptions {
  readonly bus: Bus;
  readonly store: FileKeyStore;
  readonly identity: Identity;
  readonly directory: KvDirectory;
  readonly crypto: CryptoProvider;
  readonly log: Logger;
  readonly credentials: { readonly jwt: string; readonly seed: Uint8Array };
}

/** The NATS credentials to go on with: the new user's after an adoption, else those given. */
export async function settleStagedAtStart(options: StagedAtStartOptions): Promise<{ jwt: string; seed: Uint8Array }> {
  const { store, identity, log } = options;
  const slot = pendingRotationSlot(store, identity.id);
  const pending = await slot.load();
  if (pending === undefined) return { jwt: options.credentials.jwt, seed: options.credentials.seed };
  pending.natsRaw.fill(0);
  let credentials = { jwt: options.credentials.jwt, seed: options.credentials.seed };
  const rotation = startKeyRotation({
    bus: options.bus,
    identity,
    directory: options.directory,
    crypto: options.crypto,
    credentials: options.credentials,
    staging: slot,
    keep: (rotated) => keepRotated(store, identity.id, rotated),
    onSwitched: (rotated) => {
      if (rotated.nats !== null) credentials = { jwt: rotated.nats.jwt, seed: rotated.nats.seed.slice() };
    },
    onSettled: (version, settlement, detail) => log.warn({ principal: identity.id, version, settlement, ...(detail === undefined ? {} : { detail }) }, `key rotation to version ${version} settled with the key manager: ${settlement}`),
    onRotated: (rotated) => log.info({ principal: identity.id, version: rotated.version, trigger: 'settled_at_start', notAfter: rotated.notAfter }, `identity rotated to version ${rotated.version}`),
  });
  try {
    await rotation.settled;
  } catch (error) {
    // Left staged: the rotation checks settle it again once the service runs.
    log.warn({ err: error, principal: identity.id, version: pending.version }, 'key rotation staged before this start could not be settled yet; retrying at the next check');
  } finally {
    rotation.stop();
  }
  return credentials;
}
