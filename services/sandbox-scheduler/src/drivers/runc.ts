import { sharedKernelLog } from '../monitor/kernel-log.js';
import { OciRuntimeDriver } from './oci-runtime.js';

export interface RuntimeDriverOptions {
  readonly binary?: string;
  readonly stateRoot: string;
  readonly bundleRoot: string;
  /** Read the escape signs the runtime can report (default true). */
  readonly monitor?: boolean;
}

/** What runc cannot tell of an escape attempt on this host (the limits themselves are all enforced). */
export const RUNC_KNOWN_LIMITS = [
  'escape signs: a write to a read-only path is refused (EROFS) but leaves no trace (this kernel has no AppArmor and audit is off), so it is not reported; capability use is reported only for the syscalls the profile kills (mount, chroot, sethostname, ...), not for an EPERM from a dropped capability (chown, kill of another user\'s process).',
  'escape signs: the kernel prints its seccomp records at most 10 per 5 s (printk rate limit), so a burst can hide later ones; the workload\'s own SIGSYS exit is reported regardless.',
] as const;

/** Tier 1: runc runs the spec as is; every S1.3 limit is enforced by the kernel (cgroups, namespaces, seccomp). */
export function createRuncDriver(options: RuntimeDriverOptions): OciRuntimeDriver {
  const kernel = options.monitor === false ? undefined : sharedKernelLog();
  const kernelLog = kernel !== undefined && 'log' in kernel ? kernel.log : undefined;
  return new OciRuntimeDriver({
    name: 'runc',
    tier: 1,
    binary: options.binary ?? 'runc',
    stateRoot: options.stateRoot,
    bundleRoot: options.bundleRoot,
    globalFlags: [],
    keep: true,
    knownLimits: [
      ...RUNC_KNOWN_LIMITS,
      ...(kernel === undefined ? ['escape signs: monitoring is off; only the SIGSYS exit and refused forks are reported.'] : 'reason' in kernel ? [`escape signs: ${kernel.reason}; only the SIGSYS exit and refused forks are reported.`] : []),
    ],
    ...(kernelLog === undefined ? {} : { kernelLog }),
  });
}
