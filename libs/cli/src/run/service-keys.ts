/**
 * Each supervised service's key directory (DESIGN §3a, §8; issue 12 "Custody"): the key
 * manager runs from the home's store, which holds the root key and the NATS operator and
 * account keys; every other service gets `<home>/run/keys/<service>`, written afresh at each
 * start by `exportPrincipalKeys`: its own identity keys and NATS user, and the root pin,
 * nothing else. A compromised service process then cannot sign a directory entry or mint a
 * NATS user: the keys to do it are not where it can read them.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ServicePrincipals } from '@bulwark/bus';
import type { FileKeyStore } from '@bulwark/keystore';
import { exportPrincipalKeys } from '@bulwark/nats-auth';
import type { Home } from '../home/home.js';
import type { ServiceSpec } from './services.js';

/** Where a service's own key directory is under a home. */
export function serviceKeyDir(home: Home, spec: ServiceSpec): string {
  return join(home.runDir, 'keys', spec.name);
}

/** Writes the service's own key directory (replacing the last start's) and returns it; the key manager's is the home's store. */
export async function prepareServiceKeys(store: FileKeyStore, home: Home, spec: ServiceSpec): Promise<string> {
  if (spec.principal === ServicePrincipals.keys) return store.dir;
  const dir = serviceKeyDir(home, spec);
  rmSync(dir, { recursive: true, force: true });
  await exportPrincipalKeys(store, spec.principal, dir);
  return dir;
}
