import type { Directory } from '@bulwark/envelope';
import { LEDGER_PRINCIPAL } from './subjects.js';

/**
 * The ledger's first key from its root-signed directory entry, for a reader given no pin: only while
 * that entry is version 1. The ledger rotates its key in its own chain, and every verifier starts
 * the chain from its first key; a later version is not where the chain starts, and the entry alone
 * cannot say which key was first. Otherwise what was found, for the caller's own error: no entry
 * (`keyVersion` undefined), or the later version.
 */
export function genesisFromDirectory(directory: Directory): { readonly key: Uint8Array } | { readonly keyVersion: number | undefined } {
  const entry = directory.lookup(LEDGER_PRINCIPAL);
  if (entry === undefined || entry.keyVersion !== 1) return { keyVersion: entry?.keyVersion };
  return { key: entry.ed25519PublicKey };
}
