import type { RotatedKeys } from '@bulwark/client';
import { BulwarkError } from '@bulwark/errors';
import type { FileKeyStore } from '@bulwark/keystore';
import { storeNatsUser, storeRenewedJwt } from '@bulwark/nats-auth';

/**
 * Stores a certified version. A key of it stored already with the same public key (a stop in
 * the middle of an earlier keep, settled since) is kept as it is; `put` never replaces one.
 */
export async function keepRotated(store: FileKeyStore, principal: string, rotated: RotatedKeys): Promise<void> {
  const stored = async (kind: 'ed25519' | 'x25519' | 'nats-user', publicKey: Uint8Array | undefined): Promise<boolean> => {
    const ref = { principal, kind, version: rotated.version };
    if (!(await store.has(ref))) return false;
    const info = (await store.list(principal)).find((i) => i.kind === kind && i.version === rotated.version);
    if (publicKey !== undefined && (info === undefined || Buffer.compare(Buffer.from(info.publicKey), Buffer.from(publicKey)) !== 0)) {
      throw new BulwarkError('E_ROTATION_STORE', `${principal}: its store already holds another ${kind} key for version ${rotated.version}`, { principal, version: rotated.version });
    }
    return true;
  };
  if (!(await stored('ed25519', rotated.ed25519.publicKey))) await store.put({ principal, kind: 'ed25519', version: rotated.version }, rotated.ed25519.secretKey);
  if (!(await stored('x25519', rotated.x25519.publicKey))) await store.put({ principal, kind: 'x25519', version: rotated.version }, rotated.x25519.secretKey);
  if (rotated.nats === null) return;
  if (await stored('nats-user', undefined)) await storeRenewedJwt(store, principal, rotated.version, rotated.nats.jwt);
  else await storeNatsUser(store, principal, rotated.version, rotated.nats.rawSeed, rotated.nats.jwt);
}

