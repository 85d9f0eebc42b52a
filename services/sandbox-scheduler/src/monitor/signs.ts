/**
 * Signs of an escape attempt (S1.5 "escape detection"), each from a source the runtime or the
 * kernel really exposes on the host, never from what the workload prints about itself.
 */
export type EscapeSignKind = 'denied_syscall' | 'capability_use' | 'read_only_write' | 'processes_past_limit';

export type EscapeSignSource =
  /** The kernel's seccomp audit record (type 1326) in /dev/kmsg, attributed by the sandbox's audit login uid. */
  | 'kernel_log'
  /** The workload itself ended by SIGSYS: the profile killed it for a syscall. */
  | 'exit_signal'
  /** gVisor's strace of the write and ownership syscalls in runsc's debug log. */
  | 'gvisor_strace'
  /** The pids controller's refusal counter (pids.events `max`). */
  | 'cgroup';

export interface EscapeSign {
  readonly kind: EscapeSignKind;
  readonly source: EscapeSignSource;
  /** The syscall, where known (name on x86-64, else `#<nr>`). */
  readonly syscall?: string;
  /** The process name the kernel or gVisor reported. */
  readonly comm?: string;
  /** The path a refused write named (gVisor strace). */
  readonly path?: string;
  /** How many times (refused forks). */
  readonly count?: number;
}

/** The workload's exit status when a seccomp kill action ended it (128 + SIGSYS). */
export const SIGSYS_EXIT = 128 + 31;

/** Signs the runtime's exit status and cgroup counters give, whatever else is available. */
export function signsFromExit(exitCode: number, pidsRefused: number | undefined): EscapeSign[] {
  const signs: EscapeSign[] = [];
  if (exitCode === SIGSYS_EXIT) signs.push({ kind: 'denied_syscall', source: 'exit_signal' });
  if ((pidsRefused ?? 0) > 0) signs.push({ kind: 'processes_past_limit', source: 'cgroup', count: pidsRefused ?? 0 });
  return signs;
}

/** At most this many signs of one kind per run; the rest are counted in one more sign of that kind. */
export const MAX_SIGNS_PER_KIND = 20;

/**
 * Keeps one sign per distinct thing seen: the kernel log's record and the exit signal name the same
 * kill, so the exit-signal sign is dropped when the kernel log already named the syscall. A flood
 * (a workload writing thousands of read-only paths) becomes MAX_SIGNS_PER_KIND signs and a count,
 * not thousands of ledger events.
 */
export function mergeSigns(signs: readonly EscapeSign[]): EscapeSign[] {
  const named = signs.some((s) => s.source === 'kernel_log');
  const seen = new Set<string>();
  const kept = new Map<EscapeSignKind, number>();
  const dropped = new Map<EscapeSignKind, { source: EscapeSignSource; count: number }>();
  const out: EscapeSign[] = [];
  for (const s of signs) {
    if (named && s.source === 'exit_signal') continue;
    const key = JSON.stringify([s.kind, s.source, s.syscall, s.comm, s.path]);
    if (seen.has(key)) continue;
    seen.add(key);
    const n = kept.get(s.kind) ?? 0;
    if (n >= MAX_SIGNS_PER_KIND) {
      const d = dropped.get(s.kind) ?? { source: s.source, count: 0 };
      d.count++;
      dropped.set(s.kind, d);
      continue;
    }
    kept.set(s.kind, n + 1);
    out.push(s);
  }
  for (const [kind, d] of dropped) out.push({ kind, source: d.source, count: d.count });
  return out;
}

/** One line for people (incident response's rule output names `details.reason`). */
export function describeSign(sign: EscapeSign): string {
  const by = sign.comm === undefined ? '' : ` by ${sign.comm}`;
  switch (sign.kind) {
    case 'denied_syscall':
      if (sign.syscall === undefined && sign.count !== undefined) return `${sign.count} more syscalls killed by the seccomp profile (${sign.source})`;
      return sign.syscall === undefined ? 'the workload was killed for a syscall the seccomp profile denies (SIGSYS)' : `${sign.syscall}${by}, killed by the seccomp profile (${sign.source})`;
    case 'capability_use':
      if (sign.syscall === undefined && sign.count !== undefined) return `${sign.count} more uses of a capability the sandbox does not have (${sign.source})`;
      return `${sign.syscall ?? 'a syscall'}${by} needs a capability the sandbox does not have (${sign.source})`;
    case 'read_only_write':
      if (sign.path === undefined && sign.count !== undefined) return `${sign.count} more writes to read-only paths (${sign.source})`;
      return `write to the read-only ${sign.path ?? 'filesystem'}${by} (${sign.syscall ?? 'write'}, ${sign.source})`;
    case 'processes_past_limit':
      return `${sign.count ?? 0} new processes refused at the pids limit`;
  }
}
