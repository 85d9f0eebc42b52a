import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { classifySyscall } from './syscalls.js';
import type { EscapeSign } from './signs.js';

/** One seccomp audit record (AUDIT_SECCOMP, type 1326) as the kernel prints it when no audit daemon listens. */
export interface SeccompRecord {
  readonly auid: number;
  readonly pid: number;
  readonly comm: string;
  readonly arch: string;
  readonly syscall: number;
  /** The signal the action sent (31 = SIGSYS for the kill actions, 0 for SCMP_ACT_LOG). */
  readonly sig: number;
}

const RECORD = /audit: type=1326 audit\([^)]*\): auid=(\d+) .*?\bpid=(\d+) comm="([^"]*)" .*?\bsig=(\d+) arch=([0-9a-f]+) syscall=(\d+) /;

/** Parses one /dev/kmsg record (`prio,seq,usec,flags;message`); anything but a seccomp record is undefined. */
export function parseSeccompRecord(line: string): SeccompRecord | undefined {
  const m = RECORD.exec(line);
  if (m === null) return undefined;
  return { auid: Number(m[1]), pid: Number(m[2]), comm: m[3] ?? '', sig: Number(m[4]), arch: m[5] ?? '', syscall: Number(m[6]) };
}

export function signFromRecord(r: SeccompRecord): EscapeSign {
  const { name, kind } = classifySyscall(r.arch, r.syscall);
  return { kind, source: 'kernel_log', syscall: name, comm: r.comm };
}

/** Audit login uids we hand out; far from real users' uids, never -1 (unset). */
const AUID_MIN = 1_000_000_000;
const AUID_MAX = 4_000_000_000;

/**
 * The kernel log as an escape-sign source (runc). The seccomp profile kills a process for an
 * escape-class syscall, and the kernel records the kill (pid, comm, syscall) in its log even
 * with audit disabled. The record names no container, so each sandbox's runtime process is
 * started with an audit login uid of its own (`/proc/self/loginuid`, inherited by every process
 * of the container, which cannot change it without CAP_AUDIT_CONTROL): the record's `auid` says
 * whose it is.
 *
 * Limits (stated where the driver reports them): the kernel rate-limits these messages (printk's
 * 10 per 5 s burst), so a flood can hide later ones; the log is read from /dev/kmsg, which needs
 * root (CAP_SYSLOG).
 */
export class KernelLog {
  private readonly buffer = Buffer.alloc(16 * 1024);
  /** Records seen for tags still in use, by auid. */
  private readonly pending = new Map<number, SeccompRecord[]>();

  private constructor(private fd: number | undefined) {
    this.read(() => undefined);
  }

  /** Opens /dev/kmsg at its end, or says why the kernel log cannot be used here. */
  static open(path = '/dev/kmsg'): { log: KernelLog } | { reason: string } {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      return { reason: `the kernel log (${path}) is not readable: ${(e as Error).message}` };
    }
    const probe = spawnSync('/bin/sh', ['-c', `echo ${AUID_MIN} > /proc/self/loginuid`], { stdio: 'ignore', timeout: 5000 });
    if (probe.status !== 0) {
      closeSync(fd);
      return { reason: 'a process cannot be given an audit login uid here (/proc/self/loginuid), so kernel records cannot be attributed to a sandbox' };
    }
    return { log: new KernelLog(fd) };
  }

  /** A fresh audit login uid for one sandbox; its records are kept until `take`. */
  tag(): number {
    for (;;) {
      const auid = randomInt(AUID_MIN, AUID_MAX);
      if (!this.pending.has(auid)) {
        this.pending.set(auid, []);
        return auid;
      }
    }
  }

  /** The escape signs recorded for a tag since it was handed out; the tag is released. */
  take(auid: number): EscapeSign[] {
    this.read((r) => this.pending.get(r.auid)?.push(r));
    const records = this.pending.get(auid) ?? [];
    this.pending.delete(auid);
    return records.map(signFromRecord);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Reads every record up to the log's end (one record per read; EAGAIN at the end, EPIPE when records were overwritten). */
  private read(onRecord: (r: SeccompRecord) => void): void {
    if (this.fd === undefined) return;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, this.buffer, 0, this.buffer.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EPIPE') continue;
        return;
      }
      if (n <= 0) return;
      const record = parseSeccompRecord(this.buffer.toString('utf8', 0, n));
      if (record !== undefined) onRecord(record);
    }
  }
}

/** The command that runs `binary args` with the audit login uid `auid`: a shell writes it, then execs (a failed write runs nothing). */
export function withAuditLoginUid(auid: number, binary: string, args: readonly string[]): { binary: string; args: string[] } {
  return { binary: '/bin/sh', args: ['-c', 'echo "$0" > /proc/self/loginuid && exec "$@"', String(auid), binary, ...args] };
}

let shared: { log: KernelLog } | { reason: string } | undefined;

/** One reader of the kernel log per process, shared by the runc driver and its warm pool. */
export function sharedKernelLog(): { log: KernelLog } | { reason: string } {
  shared ??= KernelLog.open();
  return shared;
}
