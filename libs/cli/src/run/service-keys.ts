/**
 * Each supervised service's key directory (DESIGN §3a, §8; issue 12 "Custody"): the key
 * manager runs from its own store (`<home>/key-manager/keys`, under its own KEK), which holds
 * the root key and the NATS operator and account keys; every other service gets
 * `<home>/run/keys/<service>`, written afresh at each start under the home KEK: its own
 * identity keys and NATS user, and the root pin, nothing else (plus the versions the service
 * rotated to itself since, which only it holds: custody.ts `exportServiceDirectory`). A compromised service process
 * then cannot sign a directory entry or mint a NATS user: the keys to do it are not where it
 * can read them, nor wrapped under a KEK it holds.
 */
import { join } from 'node:path';
import { ServicePrincipals } from '@bulwark/bus';
import type { FileKeyStore } from '@bulwark/keystore';
import { exportServiceDirectory, keyManagerEnvironment, withoutHsm } from '../home/custody.js';
import type { Home } from '../home/home.js';
import type { ServiceSpec } from './services.js';

/** Where a service's own key directory is under a home. */
export function serviceKeyDir(home: Home, spec: ServiceSpec): string {
  return join(home.runDir, 'keys', spec.name);
}

/**
 * The service's environment with its own key directory (replacing the last start's) and KEK:
 * the key manager's store and KEK (or its HSM) for the key manager, the home KEK for every other
 * service, which never gets the HSM's configuration or PIN.
 */
export async function serviceKeyEnvironment(keyManagerStore: FileKeyStore, home: Home, spec: ServiceSpec, homeEnv: NodeJS.ProcessEnv, cwd: string): Promise<NodeJS.ProcessEnv> {
  if (spec.principal === ServicePrincipals.keys) return keyManagerEnvironment(home, homeEnv);
  const env = withoutHsm(homeEnv);
  return { ...env, SYMBIONT_KEY_DIR: await exportServiceDirectory(keyManagerStore, spec.principal, serviceKeyDir(home, spec), env, cwd) };
}
