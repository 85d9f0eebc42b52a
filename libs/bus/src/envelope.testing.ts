// Test identities for the real envelope: fresh keys, a directory signed by a test root.
import { createCryptoProvider } from '@bulwark/crypto';
import { signDirectoryEntry, TrustedDirectory, type LocalIdentity } from '@bulwark/envelope';

export const provider = createCryptoProvider('node');

export interface TestWorld {
  readonly directory: TrustedDirectory;
  identity(id: string): LocalIdentity;
}

/** A directory holding an entry for every id asked for; `identity(id)` returns its keys. */
export function testWorld(ids: readonly string[]): TestWorld {
  const root = provider.ed25519.generateKeyPair();
  const directory = new TrustedDirectory({ provider, rootPublicKey: root.publicKey });
  const identities = new Map<string, LocalIdentity>();
  const now = Date.now();
  for (const id of ids) {
    const x25519 = provider.x25519.generateKeyPair();
    const ed = provider.ed25519.generateKeyPair();
    const verdict = directory.put(
      signDirectoryEntry(provider, root.secretKey, {
        id,
        ed25519PublicKey: ed.publicKey,
        x25519PublicKey: x25519.publicKey,
        keyVersion: 1,
        notBefore: now - 86_400_000,
        notAfter: now + 86_400_000,
        revoked: false,
      }),
    );
    if (!verdict.ok) throw new Error(`test directory refused ${id}`);
    identities.set(id, { id, x25519 });
  }
  return {
    directory,
    identity(id) {
      const found = identities.get(id);
      if (found === undefined) throw new Error(`no test identity ${id}`);
      return found;
    },
  };
}
