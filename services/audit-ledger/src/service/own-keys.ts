/**
 * The ledger's own signing keys across its rotations (issue 12, "the ledger rotates itself"):
 * the chain, not this process, says which key signs each event (a committed `keys.rotated` of
 * svc.audit-ledger at seq N puts its new key in force from seq N+1, @bulwark/ledger-reader
 * `LedgerKeySchedule`), and the core (`AuditLedger`, option `signingKeys`) asks here for the
 * private key of the public key in force. So this holds every Ed25519 key pair of the ledger's
 * identity versions, and the one staged in the store's pending slot while the ledger's own
 * rotation is out: the key manager commits the rotation before the holder stores the new version,
 * so the new key is only in the pending slot when the ledger seals the rotation event.
 *
 * `held` is synchronous (the core calls it while sealing a batch); the store is read by `find`,
 * which the service calls for each rotation fact before it reaches the batcher, so a key staged
 * after start is found. A key not found there is never in force: the fact is refused (service.ts).
 *
 * The genesis key is the ledger's version-1 key, the one `bulwark init` wrote and every reader
 * pins (BULWARK_LEDGER_PUBLIC_KEY, `audit-ledger.vkey`): the store's version 1, checked against
 * the pin when one is given (a ledger whose store does not start where its readers start would
 * sign a chain none of them verifies).
 */
import type { CryptoProvider, Ed25519KeyPair } from '@bulwark/crypto';
import { FileKeyStore, pendingRotationSlot, type KeyStore } from '@bulwark/keystore';
import { LedgerError } from '../errors.js';
import { signerKey, type SignerKey } from '../note/keys.js';

/** What the service needs of the ledger's own keys (the core takes `genesis` and `held`). */
export interface LedgerOwnKeys {
  /** The ledger's version-1 Ed25519 public key: where the chain's key schedule starts. */
  readonly genesis: Uint8Array;
  /** The note signer of a key pair this process holds (from memory; see `find`). */
  held(ed25519PublicKey: Uint8Array): SignerKey | undefined;
  /** Looks the key up in the store now (versions and the pending slot); true when it is held. */
  find(ed25519PublicKey: Uint8Array): Promise<boolean>;
  /** Secret material that stays the same across rotations (the violation ids' key: violations.ts). */
  readonly stableSecret: Uint8Array;
}

type Crypto = Pick<CryptoProvider, 'sha256' | 'ed25519' | 'equal'>;

/** Key pairs by public key (hex), as note signers under the ledger's origin. */
class HeldKeys {
  readonly #byKey = new Map<string, SignerKey>();
  constructor(
    readonly crypto: Crypto,
    readonly origin: string,
  ) {}

  add(secretKey: Uint8Array): SignerKey {
    const signer = signerKey(this.crypto, this.origin, secretKey);
    const hex = Buffer.from(signer.publicKey).toString('hex');
    const known = this.#byKey.get(hex);
    if (known !== undefined) return known;
    this.#byKey.set(hex, signer);
    return signer;
  }

  get(publicKey: Uint8Array): SignerKey | undefined {
    return this.#byKey.get(Buffer.from(publicKey).toString('hex'));
  }
}

/**
 * A ledger that holds only the key it runs with (a store that is not a file store, tests): it
 * never rotates, every rotation fact is refused as not held.
 */
export function fixedOwnKeys(crypto: Crypto, origin: string, key: Ed25519KeyPair): LedgerOwnKeys {
  const keys = new HeldKeys(crypto, origin);
  keys.add(key.secretKey);
  return {
    genesis: key.publicKey,
    held: (pk) => keys.get(pk),
    find: async (pk) => keys.get(pk) !== undefined,
    stableSecret: key.secretKey,
  };
}

/**
 * The ledger's keys from its own store: every Ed25519 version now, the pending slot on demand.
 * `pinned`: BULWARK_LEDGER_PUBLIC_KEY when set; it must be the store's version 1.
 */
export async function storeOwnKeys(options: { readonly crypto: Crypto; readonly origin: string; readonly store: KeyStore; readonly principal: string; readonly pinned?: Uint8Array }): Promise<LedgerOwnKeys> {
  const { crypto, origin, store, principal } = options;
  const keys = new HeldKeys(crypto, origin);
  const versions = async (): Promise<void> => {
    for (const info of (await store.list(principal)).filter((i) => i.kind === 'ed25519')) {
      if (keys.get(info.publicKey) !== undefined) continue;
      keys.add((await store.get({ principal, kind: 'ed25519', version: info.version })).secretKey);
    }
  };
  const first = (await store.list(principal)).find((i) => i.kind === 'ed25519' && i.version === 1);
  if (first === undefined) {
    throw new LedgerError('E_KEY', `ledger: ${store.location} holds no version-1 Ed25519 key of ${principal}; the chain's first key (its genesis) must be in the ledger's store`, { principal });
  }
  if (options.pinned !== undefined && !crypto.equal(options.pinned, first.publicKey)) {
    throw new LedgerError(
      'E_KEY',
      `ledger: BULWARK_LEDGER_PUBLIC_KEY is not ${principal}'s version-1 key in ${store.location}; it must be the ledger's first key (the one \`bulwark init\` wrote to audit-ledger.vkey), where every reader starts the chain`,
      { principal },
    );
  }
  const staged = async (): Promise<void> => {
    if (!(store instanceof FileKeyStore)) return;
    const pending = await pendingRotationSlot(store, principal).load();
    if (pending === undefined) return;
    pending.natsRaw.fill(0);
    keys.add(pending.ed25519.secretKey);
  };
  await versions();
  // A rotation staged before a stop and committed meanwhile, not settled yet at this start: the chain may already name its key.
  await staged();
  const genesis = keys.get(first.publicKey)!;
  return {
    genesis: first.publicKey,
    held: (pk) => keys.get(pk),
    async find(pk) {
      if (keys.get(pk) !== undefined) return true;
      // Stored since start (the rotation kept), or staged while the ledger's own rotation is out.
      await versions();
      if (keys.get(pk) === undefined) await staged();
      return keys.get(pk) !== undefined;
    },
    stableSecret: genesis.secretKey,
  };
}
