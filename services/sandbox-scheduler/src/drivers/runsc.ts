import type { OciSpec } from '../oci/spec.js';
import { OciRuntimeDriver } from './oci-runtime.js';
import type { RuntimeDriverOptions } from './runc.js';

/**
 * S1.4 as runsc flags: the ptrace platform, gVisor's own network stack with no interface but
 * loopback (`--network=none`), exclusive file access, no debug, no strace; `--oci-seccomp` makes
 * runsc apply the spec's seccomp profile inside the sandbox too (it ignores it otherwise).
 */
export const GVISOR_FLAGS = ['--platform=ptrace', '--network=none', '--file-access=exclusive', '--oci-seccomp'] as const;

/** What Debian 12's runsc (release 20221219) does differently from runc, as measured on this host. */
export const RUNSC_KNOWN_LIMITS = [
  'pids: not applied. A host pids limit counts the Sentry\'s own threads, not guest processes, and this runsc fails to create a sandbox under one; guest processes are bounded by the memory limit only.',
  'memory: a hit kills the whole sandbox (exit 137), not one process; runsc removes the cgroup when it returns, so the hit is inferred from that exit without a wall-clock kill, and usage is not read.',
  'platform: only --platform=ptrace works here (no KVM); start-up is ~4x runc\'s.',
  'setuid: the gofer-served root does not honour setuid bits at all, so the no_new_privileges check cannot be shown to matter under runsc (it is set all the same).',
] as const;

/** The spec runsc runs: the same hardening, minus the pids limit it cannot take (stated above). */
export function adaptForRunsc(spec: OciSpec): OciSpec {
  const resources = { ...(spec.linux['resources'] as Record<string, unknown>) };
  delete resources['pids'];
  return { ...spec, linux: { ...spec.linux, resources } };
}

export function createRunscDriver(options: RuntimeDriverOptions): OciRuntimeDriver {
  return new OciRuntimeDriver({
    name: 'runsc',
    tier: 2,
    binary: options.binary ?? 'runsc',
    stateRoot: options.stateRoot,
    bundleRoot: options.bundleRoot,
    globalFlags: [...GVISOR_FLAGS],
    keep: false,
    knownLimits: RUNSC_KNOWN_LIMITS,
    adapt: adaptForRunsc,
    interpret: ({ exitCode, killedByUs }) => (exitCode === 137 && !killedByUs ? ['memory'] : []),
  });
}
