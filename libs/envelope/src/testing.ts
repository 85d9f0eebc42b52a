// Test support (`@bulwark/envelope/testing`), never for production: a throw-away root Ed25519
// key and a TrustedDirectory of entries it signed, with fresh keys per principal. Shared by the
// tests and benchmarks of every package; it lives here rather than in @bulwark/testkit because
// the envelope's own tests depend on the testkit.
import { defaultCryptoProvider, type CryptoProvider, type Ed25519KeyPair } from '@bulwark/crypto';
import { signDirectoryEntry, TrustedDirectory, type DirectoryEntry, type SignedDirectoryEntry } from './directory.js';
import type { Clock, LocalIdentity } from './options.js';

const DAY_MS = 86_400_000;

export interface TestWorldOptions {
  /** Default: `defaultCryptoProvider()` (SYMBIONT_CRYPTO_PROVIDER, else the default provider). */
  readonly provider?: CryptoProvider;
  /** Principals given fresh keys and an entry at once; `add` gives more later. */
  readonly ids?: readonly string[];
  /** The directory's clock, also the "now" entries are made valid around. Default `Date.now`. */
  readonly clock?: Clock;
  /** Entries are valid from now - validityMs to now + validityMs, now read when each is signed. Default one day. */
  readonly validityMs?: number;
  /** The root's Ed25519 secret key (a fixed seed makes signatures reproducible). Default: a fresh key. */
  readonly rootSecretKey?: Uint8Array;
}

/** A principal of the world: its local identity, its Ed25519 key pair and its signed entry. */
export interface TestIdentity extends LocalIdentity {
  readonly ed25519: Ed25519KeyPair;
  /** As put in the directory; publish it elsewhere (a NATS KV directory, a child process) to share the principal. */
  readonly signed: SignedDirectoryEntry;
}

/** What `admit` needs; every other field has the world's default (version 1, its validity window, not revoked). */
export type TestEntry = Pick<DirectoryEntry, 'id' | 'ed25519PublicKey' | 'x25519PublicKey'> & Partial<DirectoryEntry>;

export interface TestWorld {
  readonly provider: CryptoProvider;
  /** The root key the directory pins; its secret signs further entries (`admit`). */
  readonly root: Ed25519KeyPair;
  readonly directory: TrustedDirectory;
  /** Fresh X25519 and Ed25519 keys for `id`, with a root-signed entry in the directory. */
  add(id: string): TestIdentity;
  /** The identity `add` (or `ids`) gave `id`; throws for any other id. */
  identity(id: string): TestIdentity;
  /**
   * Signs `entry` with the root and puts it in the directory: keys held elsewhere (a keystore,
   * another world), a revocation, a rotation. Throws when the directory refuses it.
   */
  admit(entry: TestEntry): SignedDirectoryEntry;
}

export function testWorld(options: TestWorldOptions = {}): TestWorld {
  const provider = options.provider ?? defaultCryptoProvider();
  const clock = options.clock ?? Date.now;
  const validityMs = options.validityMs ?? DAY_MS;
  const root = options.rootSecretKey === undefined ? provider.ed25519.generateKeyPair() : { secretKey: options.rootSecretKey, publicKey: provider.ed25519.publicKey(options.rootSecretKey) };
  const directory = new TrustedDirectory({ provider, rootPublicKey: root.publicKey, clock });
  const identities = new Map<string, TestIdentity>();

  const admit = (entry: TestEntry): SignedDirectoryEntry => {
    const now = clock();
    const signed = signDirectoryEntry(provider, root.secretKey, { keyVersion: 1, notBefore: now - validityMs, notAfter: now + validityMs, revoked: false, ...entry });
    const verdict = directory.put(signed);
    if (!verdict.ok) throw new Error(`test directory refused '${entry.id}': ${verdict.detail}`);
    return signed;
  };
  const add = (id: string): TestIdentity => {
    const x25519 = provider.x25519.generateKeyPair();
    const ed25519 = provider.ed25519.generateKeyPair();
    const signed = admit({ id, ed25519PublicKey: ed25519.publicKey, x25519PublicKey: x25519.publicKey });
    const identity = { id, x25519, ed25519, signed };
    identities.set(id, identity);
    return identity;
  };
  const identity = (id: string): TestIdentity => {
    const found = identities.get(id);
    if (found === undefined) throw new Error(`no test identity '${id}': not added to this test world`);
    return found;
  };
  for (const id of options.ids ?? []) add(id);
  // Closures, not methods: callers may pass `world.identity` around or spread the world.
  return { provider, root, directory, add, identity, admit };
}
