import type { SeccompProfile } from '../oci/seccomp.js';
import type { OciSpec } from '../oci/spec.js';
import { OciRuntimeDriver } from './oci-runtime.js';
import type { RuntimeDriverOptions } from './runc.js';

/**
 * S1.4 as runsc flags: the ptrace platform, gVisor's own network stack with no interface but
 * loopback (`--network=none`), exclusive file access; `--oci-seccomp` makes
 * runsc apply the spec's seccomp profile inside the sandbox too (it ignores it otherwise). Each run
 * adds the monitoring flags (monitor/gvisor-strace.ts): a debug log of its own with an strace of the
 * write and ownership syscalls only.
 */
export const GVISOR_FLAGS = ['--platform=ptrace', '--network=none', '--file-access=exclusive', '--oci-seccomp'] as const;

/** What Debian 12's runsc (release 20221219) does differently from runc, as measured on this host. */
export const RUNSC_KNOWN_LIMITS = [
  'pids: not applied. A host pids limit counts the Sentry\'s own threads, not guest processes, and this runsc fails to create a sandbox under one; guest processes are bounded by the memory limit only.',
  'memory: a hit kills the whole sandbox (exit 137), not one process; runsc removes the cgroup when it returns, so the hit is inferred from that exit without a wall-clock kill, and usage is not read.',
  'platform: only --platform=ptrace works here (no KVM); start-up is ~4x runc\'s.',
  'setuid: the gofer-served root does not honour setuid bits at all, so the no_new_privileges check cannot be shown to matter under runsc (it is set all the same).',
  'seccomp: this runsc knows SCMP_ACT_KILL (the thread) but not SCMP_ACT_KILL_PROCESS; the profile\'s kill rules are given to it as SCMP_ACT_KILL.',
  'escape signs: gVisor applies the profile before its strace, so a refused syscall is reported only when it ends the workload itself (exit 159, SIGSYS), not when a child process dies of it; refused writes to read-only paths and EPERM on chown/mknod are reported (strace of those syscalls in the run\'s debug log, read and emptied past 8 MiB while the run goes on, so a flood loses a few lines); no pids limit, so no refused forks.',
] as const;

/** The spec runsc runs: the same hardening, minus the pids limit it cannot take, kill rules as this runsc spells them (stated above). */
export function adaptForRunsc(spec: OciSpec): OciSpec {
  const resources = { ...(spec.linux['resources'] as Record<string, unknown>) };
  delete resources['pids'];
  const seccomp = spec.linux['seccomp'] as SeccompProfile | undefined;
  const linux = { ...spec.linux, resources, ...(seccomp === undefined ? {} : { seccomp: killAsThread(seccomp) }) };
  return { ...spec, linux };
}

function killAsThread(profile: SeccompProfile): SeccompProfile {
  const action = (a: string): string => (a === 'SCMP_ACT_KILL_PROCESS' ? 'SCMP_ACT_KILL' : a);
  return { ...profile, defaultAction: action(profile.defaultAction), syscalls: profile.syscalls.map((s) => ({ ...s, action: action(s.action) })) };
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
    strace: options.monitor !== false,
    interpret: ({ exitCode, killedByUs }) => (exitCode === 137 && !killedByUs ? ['memory'] : []),
  });
}
