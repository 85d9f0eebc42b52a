import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OciRuntimeDriver } from '../drivers/oci-runtime.js';
import { createRuncDriver } from '../drivers/runc.js';
import { createRunscDriver } from '../drivers/runsc.js';
import { DockerDriver } from '../drivers/docker.js';
import { KUBERNETES_KNOWN_LIMITS } from '../drivers/kubernetes.js';
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

/** The image the docker driver runs workloads in (import a rootfs tarball under this name). */
export const DEFAULT_DOCKER_IMAGE = 'bulwark-sandbox:busybox';

/** The Docker Engine drivers (Tier 1 with runc, Tier 2 with runsc) on a socket. */
export function dockerDrivers(socketPath = process.env['DOCKER_HOST']?.replace(/^unix:\/\//, '') ?? '/var/run/docker.sock', image = DEFAULT_DOCKER_IMAGE): DockerDriver[] {
  return [new DockerDriver({ socketPath, image, tier: 1 }), new DockerDriver({ socketPath, image, tier: 2 })];
}

/** The kubernetes form is built and validated (buildKubernetesJob) but not submitted: reported as such. */
export const KUBERNETES_STATUS: DriverStatus = { driver: 'kubernetes', tier: 2, available: false, reason: 'Job submission is not built; buildKubernetesJob gives the exact Job and NetworkPolicy', knownLimits: KUBERNETES_KNOWN_LIMITS };

/** A busybox root filesystem in a fresh temp dir, removed by `cleanup`. */
export function temporaryRootfs(): { rootfs: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-rootfs-'));
  return { rootfs: buildBusyboxRootfs(join(dir, 'rootfs')), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
