import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OciRuntimeDriver } from '../drivers/oci-runtime.js';
import { createRuncDriver } from '../drivers/runc.js';
import { createRunscDriver } from '../drivers/runsc.js';
import type { DriverStatus } from '../drivers/types.js';
import { buildBusyboxRootfs } from '../oci/rootfs.js';

/** Where the scheduler (and `bulwark sandbox ps`) keep runtime state and bundles. */
export const DEFAULT_SANDBOX_ROOT = '/run/bulwark-sandbox';

/** The OCI drivers of this host under one root: runc for Tier 1, runsc for Tier 2. */
export function hostDrivers(root: string = DEFAULT_SANDBOX_ROOT): { runc: OciRuntimeDriver; runsc: OciRuntimeDriver } {
  return {
    runc: createRuncDriver({ stateRoot: join(root, 'runc'), bundleRoot: join(root, 'bundles') }),
    runsc: createRunscDriver({ stateRoot: join(root, 'runsc'), bundleRoot: join(root, 'bundles') }),
  };
}

/** The engine drivers this build does not have yet, reported as unavailable with the reason. */
export const UNBUILT_DRIVERS: readonly DriverStatus[] = [
  { driver: 'docker', tier: 1, available: false, reason: 'not built yet in this version of the scheduler (runc and runsc run bundles directly)', knownLimits: [] },
  { driver: 'kubernetes', tier: 2, available: false, reason: 'not built yet in this version of the scheduler', knownLimits: [] },
];

/** A busybox root filesystem in a fresh temp dir, removed by `cleanup`. */
export function temporaryRootfs(): { rootfs: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-rootfs-'));
  return { rootfs: buildBusyboxRootfs(join(dir, 'rootfs')), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
