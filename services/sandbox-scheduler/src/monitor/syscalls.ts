import type { EscapeSignKind } from './signs.js';

/**
 * The syscalls deploy/seccomp/default.json kills the process for (SCMP_ACT_KILL_PROCESS), with
 * their x86-64 numbers (the kernel's audit record names a number, not a name). Two kinds:
 * `capability_use`: syscalls whose only use needs a capability the sandbox does not have
 * (CAP_SYS_ADMIN, CAP_SYS_CHROOT, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYS_RAWIO, CAP_SYS_MODULE,
 * CAP_SYS_PACCT); `denied_syscall`: the classic kernel attack surface of a container escape
 * (namespaces, keyrings, BPF, tracing other processes, file handles).
 */
export const KILLED_SYSCALLS: Readonly<Record<string, { readonly nr: number; readonly kind: EscapeSignKind }>> = {
  unshare: { nr: 272, kind: 'denied_syscall' },
  /** Only with a namespace flag (the profile allows clone without one). */
  clone: { nr: 56, kind: 'denied_syscall' },
  setns: { nr: 308, kind: 'denied_syscall' },
  keyctl: { nr: 250, kind: 'denied_syscall' },
  add_key: { nr: 248, kind: 'denied_syscall' },
  request_key: { nr: 249, kind: 'denied_syscall' },
  bpf: { nr: 321, kind: 'denied_syscall' },
  ptrace: { nr: 101, kind: 'denied_syscall' },
  perf_event_open: { nr: 298, kind: 'denied_syscall' },
  process_vm_readv: { nr: 310, kind: 'denied_syscall' },
  process_vm_writev: { nr: 311, kind: 'denied_syscall' },
  open_by_handle_at: { nr: 304, kind: 'denied_syscall' },
  name_to_handle_at: { nr: 303, kind: 'denied_syscall' },
  kexec_load: { nr: 246, kind: 'capability_use' },
  kexec_file_load: { nr: 320, kind: 'capability_use' },
  init_module: { nr: 175, kind: 'capability_use' },
  finit_module: { nr: 313, kind: 'capability_use' },
  delete_module: { nr: 176, kind: 'capability_use' },
  mount: { nr: 165, kind: 'capability_use' },
  umount2: { nr: 166, kind: 'capability_use' },
  pivot_root: { nr: 155, kind: 'capability_use' },
  chroot: { nr: 161, kind: 'capability_use' },
  sethostname: { nr: 170, kind: 'capability_use' },
  setdomainname: { nr: 171, kind: 'capability_use' },
  reboot: { nr: 169, kind: 'capability_use' },
  swapon: { nr: 167, kind: 'capability_use' },
  swapoff: { nr: 168, kind: 'capability_use' },
  settimeofday: { nr: 164, kind: 'capability_use' },
  clock_settime: { nr: 227, kind: 'capability_use' },
  iopl: { nr: 172, kind: 'capability_use' },
  ioperm: { nr: 173, kind: 'capability_use' },
  acct: { nr: 163, kind: 'capability_use' },
  quotactl: { nr: 179, kind: 'capability_use' },
  fsopen: { nr: 430, kind: 'capability_use' },
  fsconfig: { nr: 431, kind: 'capability_use' },
  fsmount: { nr: 432, kind: 'capability_use' },
  fspick: { nr: 433, kind: 'capability_use' },
  move_mount: { nr: 429, kind: 'capability_use' },
  open_tree: { nr: 428, kind: 'capability_use' },
  mount_setattr: { nr: 442, kind: 'capability_use' },
};

/** AUDIT_ARCH_X86_64 as the audit record prints it. */
export const ARCH_X86_64 = 'c000003e';

const BY_NUMBER = new Map(Object.entries(KILLED_SYSCALLS).map(([name, s]) => [s.nr, { name, kind: s.kind }]));

/** The name and kind of a killed syscall; one not in the table (another arch, a kill by another filter) is a denied syscall by number. */
export function classifySyscall(arch: string, nr: number): { name: string; kind: EscapeSignKind } {
  const known = arch === ARCH_X86_64 ? BY_NUMBER.get(nr) : undefined;
  return known ?? { name: `#${nr}${arch === ARCH_X86_64 ? '' : ` (arch ${arch})`}`, kind: 'denied_syscall' };
}
