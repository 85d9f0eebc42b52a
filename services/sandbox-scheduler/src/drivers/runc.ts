import { OciRuntimeDriver } from './oci-runtime.js';

export interface RuntimeDriverOptions {
  readonly binary?: string;
  readonly stateRoot: string;
  readonly bundleRoot: string;
}

/** Tier 1: runc runs the spec as is; every S1.3 limit is enforced by the kernel (cgroups, namespaces, seccomp). */
export function createRuncDriver(options: RuntimeDriverOptions): OciRuntimeDriver {
  return new OciRuntimeDriver({
    name: 'runc',
    tier: 1,
    binary: options.binary ?? 'runc',
    stateRoot: options.stateRoot,
    bundleRoot: options.bundleRoot,
    globalFlags: [],
    keep: true,
    knownLimits: [],
  });
}
