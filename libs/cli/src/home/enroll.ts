import { openDirectoryBucket, publishDirectoryEntry, type Bus, type PublishOutcome } from '@bulwark/bus';
import type { BulwarkConfig } from '@bulwark/config';
import type { CryptoProvider } from '@bulwark/crypto';
import { signDirectoryEntry } from '@bulwark/envelope';
import { ensureIdentity, loadRootKey, type FileKeyStore, type Identity } from '@bulwark/keystore';
import { directoryEntryFor } from '../commands/init.js';

/**
 * Gives a principal (an agent, an analyst, the home's administrator) an identity in the key
 * store and a directory entry signed by the root key, published to the bus's directory
 * bucket. Idempotent: an existing identity is kept and its entry republished unchanged.
 */
export async function enrollPrincipal(
  bus: Bus,
  store: FileKeyStore,
  provider: CryptoProvider,
  config: BulwarkConfig,
  id: string,
): Promise<{ identity: Identity; created: boolean; published: PublishOutcome }> {
  const { identity, created } = await ensureIdentity(store, provider, id);
  const root = await loadRootKey(store);
  const signed = signDirectoryEntry(provider, root.keyPair.secretKey, directoryEntryFor(identity, config));
  const { outcome } = await publishDirectoryEntry(bus, signed, await openDirectoryBucket(bus));
  return { identity, created: created.length > 0, published: outcome };
}
