import { createCryptoProvider, type CryptoProvider, type X25519KeyPair } from '@bulwark/crypto';
import { signDirectoryEntry, type DirectoryEntry, type TrustedDirectory } from '../directory.js';
import type { LocalIdentity } from '../options.js';
import { testWorld } from '../testing.js';

/** Tests only (excluded from the build): every provider, fixed keys, a settable clock. */
export const providers: readonly CryptoProvider[] = [createCryptoProvider('sodium'), createCryptoProvider('node'), createCryptoProvider('noble')];

export const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

export class TestClock {
  constructor(public now = T0) {}
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** A key pair from a one-byte seed, so failures are reproducible. */
export function x25519From(provider: CryptoProvider, seed: number): X25519KeyPair {
  const secretKey = new Uint8Array(32).fill(seed);
  return { secretKey, publicKey: provider.x25519.publicKey(secretKey) };
}

export interface Principal extends LocalIdentity {
  readonly ed25519PublicKey: Uint8Array;
}

export function principal(provider: CryptoProvider, id: string, seed: number): Principal {
  const ed = provider.ed25519.publicKey(new Uint8Array(32).fill(seed + 100));
  return { id, x25519: x25519From(provider, seed), ed25519PublicKey: ed };
}

export function entryFor(p: Principal, overrides: Partial<DirectoryEntry> = {}): DirectoryEntry {
  return {
    id: p.id,
    ed25519PublicKey: p.ed25519PublicKey,
    x25519PublicKey: p.x25519.publicKey,
    keyVersion: 1,
    notBefore: T0 - 86_400_000,
    notAfter: T0 + 365 * 86_400_000,
    revoked: false,
    ...overrides,
  };
}

export const ROOT_SEED = new Uint8Array(32).fill(7);

/** A directory pinned to the fixed root key, holding entries for the given principals. */
export function directoryOf(provider: CryptoProvider, clock: TestClock, principals: readonly Principal[]): TrustedDirectory {
  const fixed = testWorld({ provider, clock: clock.read, rootSecretKey: ROOT_SEED });
  for (const p of principals) fixed.admit(entryFor(p));
  return fixed.directory;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function unhex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** The cast of the mode tests, sharing one clock and one directory. */
export function world(provider: CryptoProvider) {
  const clock = new TestClock();
  const agent = principal(provider, 'agent.0b5c3f3e-5e0a-4d8f-9a43-2f6d8c1b7e21', 1);
  const policy = principal(provider, 'svc.policy', 2);
  const ledger = principal(provider, 'svc.audit-ledger', 3);
  const keyManager = principal(provider, 'svc.key-manager', 4);
  const alice = principal(provider, 'analyst.alice', 5);
  const bob = principal(provider, 'analyst.bob', 6);
  const directory = directoryOf(provider, clock, [agent, policy, ledger, keyManager, alice, bob]);
  const common = { provider, clock: clock.read, directory };
  return { clock, agent, policy, ledger, keyManager, alice, bob, directory, common };
}

export function revoke(provider: CryptoProvider, directory: TrustedDirectory, p: Principal): void {
  const verdict = directory.put(signDirectoryEntry(provider, ROOT_SEED, entryFor(p, { revoked: true })));
  if (!verdict.ok) throw new Error(verdict.detail);
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
