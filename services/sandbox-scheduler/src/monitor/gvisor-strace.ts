import { readdirSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { EscapeSign } from './signs.js';

/**
 * The syscalls runsc straces (`--strace-syscalls`): those that write a path, and those that need
 * CAP_CHOWN / CAP_MKNOD. gVisor applies the OCI seccomp profile before its strace, so a syscall
 * the profile refused never shows here (only the workload's own SIGSYS exit tells of it).
 */
export const STRACED_SYSCALLS = [
  'open', 'openat', 'creat', 'mkdir', 'mkdirat', 'rmdir', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2',
  'link', 'linkat', 'symlink', 'symlinkat', 'truncate', 'chmod', 'fchmodat', 'utimensat', 'setxattr', 'lsetxattr',
  'chown', 'lchown', 'fchown', 'fchownat', 'mknod', 'mknodat',
] as const;

const CAPABILITY_SYSCALLS = new Set(['chown', 'lchown', 'fchown', 'fchownat', 'mknod', 'mknodat']);
const EROFS = 30;
const EPERM = 1;

/** `runsc --debug-log=DIR/ --strace --strace-syscalls=...`: the global flags that turn the monitoring on for one run. */
export function straceFlags(logDir: string): string[] {
  return [`--debug-log=${logDir}/`, '--strace', `--strace-syscalls=${STRACED_SYSCALLS.join(',')}`];
}

// I1202 01:45:21.377161   16924 strace.go:608] [   1:   1] sh X openat(AT_FDCWD /, 0x5eec20 /etc/f, O_WRONLY|O_CREAT, 0o666) = 0 (0x0) errno=30 (read-only file system) (150µs)
const EXIT_LINE = /strace\.go:\d+\] \[\s*\d+:\s*\d+\] (\S+) X (\w+)\((.*)\) = .*? errno=(\d+) /;
const PATH_ARG = /0x[0-9a-f]+ (\/[^,)]*)/;

/** Escape signs in gVisor strace lines: a write refused as read-only, an ownership change or device node refused for want of the capability. */
export function signsFromStrace(text: string): EscapeSign[] {
  const signs: EscapeSign[] = [];
  for (const line of text.split('\n')) {
    const m = EXIT_LINE.exec(line);
    if (m === null) continue;
    const [, comm = '', syscall = '', args = '', errno = ''] = m;
    const path = PATH_ARG.exec(args)?.[1];
    const extra = { source: 'gvisor_strace' as const, syscall, comm, ...(path === undefined ? {} : { path }) };
    if (Number(errno) === EROFS) signs.push({ kind: 'read_only_write', ...extra });
    else if (Number(errno) === EPERM && CAPABILITY_SYSCALLS.has(syscall)) signs.push({ kind: 'capability_use', ...extra });
  }
  return signs;
}

/** A boot log past this size is read and emptied while the run goes on (so a workload's file syscalls cannot fill the host's disk). */
export const STRACE_LOG_ROLL_BYTES = 8 * 1024 * 1024;

function bootLogs(logDir: string): string[] {
  try {
    return readdirSync(logDir).filter((n) => n.endsWith('.boot.txt')).map((n) => join(logDir, n));
  } catch {
    return [];
  }
}

/**
 * The signs in the boot log (the Sentry's, where strace writes) of one run's debug-log directory;
 * none if it is missing. With `rollBytes`, only a log past that size is read, then emptied: lines
 * written between the read and the truncation are lost (a flood of 60 000 refused writes measured
 * 57 040 seen); runsc writes at its own offset, so the emptied part becomes a hole and takes no disk.
 */
export function signsFromDebugLogs(logDir: string, rollBytes?: number): EscapeSign[] {
  const signs: EscapeSign[] = [];
  for (const file of bootLogs(logDir)) {
    try {
      if (rollBytes !== undefined && statSync(file).size < rollBytes) continue;
      signs.push(...signsFromStrace(readFileSync(file, 'utf8')));
      if (rollBytes !== undefined) truncateSync(file, 0);
    } catch {
      // Removed with its bundle meanwhile: nothing more to read.
    }
  }
  return signs;
}
