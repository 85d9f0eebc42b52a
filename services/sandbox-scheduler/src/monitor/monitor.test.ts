import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSeccompRecord, signFromRecord, withAuditLoginUid } from './kernel-log.js';
import { signsFromDebugLogs, signsFromStrace, straceFlags, STRACED_SYSCALLS } from './gvisor-strace.js';
import { describeSign, MAX_SIGNS_PER_KIND, mergeSigns, signsFromExit, SIGSYS_EXIT } from './signs.js';
import { classifySyscall, KILLED_SYSCALLS } from './syscalls.js';
import { defaultSeccompProfile } from '../oci/seccomp.js';

// As this host's /dev/kmsg gives them (captured from a runc sandbox killed for unshare and for sethostname).
const UNSHARE = '5,345,2059923787,-;audit: type=1326 audit(1796175910.773:3): auid=3141592653 uid=65534 gid=65534 ses=17 pid=16691 comm="unshare" exe="/bin/busybox" sig=31 arch=c000003e syscall=272 compat=0 ip=0x4815c7 code=0x80000000\n';
const HOSTNAME = '5,350,2100000000,-;audit: type=1326 audit(1796175999.001:4): auid=3141592653 uid=65534 gid=65534 ses=17 pid=16702 comm="hostname" exe="/bin/busybox" sig=31 arch=c000003e syscall=170 compat=0 ip=0x4815c7 code=0x80000000\n';

describe('kernel seccomp records', () => {
  it('parses the auid, pid, comm, arch and syscall of a record', () => {
    expect(parseSeccompRecord(UNSHARE)).toEqual({ auid: 3141592653, pid: 16691, comm: 'unshare', sig: 31, arch: 'c000003e', syscall: 272 });
  });

  it('ignores every other kernel message', () => {
    expect(parseSeccompRecord('6,344,1367101,-;EXT4-fs (vda): mounted filesystem r/w without journal.\n')).toBeUndefined();
    expect(parseSeccompRecord('5,2,265794,-;audit: type=2000 audit(1795120339.764:1): state=initialized audit_enabled=0 res=1\n')).toBeUndefined();
  });

  it('names the syscall and tells a denied syscall from capability use', () => {
    expect(signFromRecord(parseSeccompRecord(UNSHARE)!)).toEqual({ kind: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', comm: 'unshare' });
    expect(signFromRecord(parseSeccompRecord(HOSTNAME)!)).toEqual({ kind: 'capability_use', source: 'kernel_log', syscall: 'sethostname', comm: 'hostname' });
    expect(classifySyscall('40000003', 26)).toEqual({ name: '#26 (arch 40000003)', kind: 'denied_syscall' });
  });

  it('the table is exactly the syscalls deploy/seccomp/default.json kills the process for', () => {
    const killed = defaultSeccompProfile().syscalls.filter((s) => s.action === 'SCMP_ACT_KILL_PROCESS').flatMap((s) => s.names);
    // clone only with each namespace flag (masked equal), the flags the allow rule excludes.
    const clone = defaultSeccompProfile().syscalls.filter((s) => s.action === 'SCMP_ACT_KILL_PROCESS' && s.names.includes('clone'));
    expect(clone.map((s) => s.args?.[0]?.value).reduce((a, b) => (a ?? 0) + (b ?? 0), 0)).toBe(0x7e020000);
    expect(clone.every((s) => s.args?.[0]?.op === 'SCMP_CMP_MASKED_EQ' && s.args[0].value === s.args[0].valueTwo)).toBe(true);
    expect(new Set(killed)).toEqual(new Set(Object.keys(KILLED_SYSCALLS)));
  });

  it('runs the runtime with its own audit login uid, passed as data (never parsed as shell)', () => {
    expect(withAuditLoginUid(42, 'runc', ['run', '--bundle', '/b; rm -rf /', 'id'])).toEqual({ binary: '/bin/sh', args: ['-c', 'echo "$0" > /proc/self/loginuid && exec "$@"', '42', 'runc', 'run', '--bundle', '/b; rm -rf /', 'id'] });
  });
});

describe('gVisor strace', () => {
  const line = (comm: string, call: string, errno: string) => `I1202 01:45:21.377161   16924 strace.go:608] [   2:   2] ${comm} X ${call} = 0 (0x0) ${errno} (150.905µs)`;

  it('a write refused as read-only is read_only_write, with the path', () => {
    expect(signsFromStrace(line('mkdir', 'mkdir(0x7ffc1 /home/sandbox/d, 0o777)', 'errno=30 (read-only file system)'))).toEqual([{ kind: 'read_only_write', source: 'gvisor_strace', syscall: 'mkdir', comm: 'mkdir', path: '/home/sandbox/d' }]);
    expect(signsFromStrace(line('touch', 'openat(AT_FDCWD /, 0x5eec20 /home/sandbox/f, O_WRONLY|O_CREAT, 0o666)', 'errno=30 (read-only file system)'))[0]).toMatchObject({ kind: 'read_only_write', syscall: 'openat', path: '/home/sandbox/f' });
  });

  it('an ownership change refused for want of CAP_CHOWN is capability_use', () => {
    expect(signsFromStrace(line('chown', 'fchownat(AT_FDCWD /, 0x7ffc /tmp/ok, 0x0, 0xffffffff, 0x0)', 'errno=1 (operation not permitted)'))[0]).toMatchObject({ kind: 'capability_use', syscall: 'fchownat' });
  });

  it('a successful call, a plain permission denial or an entry line is no sign', () => {
    const text = [
      'I1202 01:45:21.376931   16924 strace.go:570] [   1:   1] sh E openat(AT_FDCWD /, 0x5eec20 /tmp/f, O_WRONLY|O_CREAT|O_TRUNC, 0o666)',
      'I1202 01:45:21.377161   16924 strace.go:608] [   1:   1] sh X openat(AT_FDCWD /, 0x5eec20 /tmp/f, O_WRONLY|O_CREAT|O_TRUNC, 0o666) = 3 (0x3) (50µs)',
      line('sh', 'openat(AT_FDCWD /, 0x5eec20 /etc/f, O_WRONLY|O_CREAT|O_TRUNC, 0o666)', 'errno=13 (permission denied)'),
      line('rm', 'unlinkat(AT_FDCWD /, 0x5eec20 /tmp/none, 0x0)', 'errno=2 (no such file or directory)'),
    ].join('\n');
    expect(signsFromStrace(text)).toEqual([]);
  });

  it('straces only the write and ownership syscalls, into the run\'s own log directory', () => {
    expect(straceFlags('/b/log')).toEqual(['--debug-log=/b/log/', '--strace', `--strace-syscalls=${STRACED_SYSCALLS.join(',')}`]);
  });
});

describe('signs from the exit status and the cgroup', () => {
  it('a SIGSYS exit is a denied syscall; refused forks are processes past the limit; a clean run has none', () => {
    expect(signsFromExit(SIGSYS_EXIT, 0)).toEqual([{ kind: 'denied_syscall', source: 'exit_signal' }]);
    expect(signsFromExit(0, 7)).toEqual([{ kind: 'processes_past_limit', source: 'cgroup', count: 7 }]);
    expect(signsFromExit(0, 0)).toEqual([]);
    expect(signsFromExit(137, undefined)).toEqual([]);
  });

  it('the exit signal is dropped when the kernel log named the syscall; duplicates are kept once', () => {
    const k = { kind: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', comm: 'unshare' } as const;
    expect(mergeSigns([k, k, { kind: 'denied_syscall', source: 'exit_signal' }])).toEqual([k]);
    expect(mergeSigns([{ kind: 'denied_syscall', source: 'exit_signal' }])).toEqual([{ kind: 'denied_syscall', source: 'exit_signal' }]);
  });
});

describe('describeSign', () => {
  it('says what happened in one line', () => {
    expect(describeSign({ kind: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', comm: 'unshare' })).toBe('unshare by unshare, killed by the seccomp profile (kernel_log)');
    expect(describeSign({ kind: 'read_only_write', source: 'gvisor_strace', syscall: 'mkdir', comm: 'mkdir', path: '/home/sandbox/d' })).toBe('write to the read-only /home/sandbox/d by mkdir (mkdir, gvisor_strace)');
    expect(describeSign({ kind: 'processes_past_limit', source: 'cgroup', count: 44 })).toBe('44 new processes refused at the pids limit');
  });
});

describe('floods', () => {
  it('thousands of signs of one kind become MAX_SIGNS_PER_KIND and a count', () => {
    const flood = Array.from({ length: 5000 }, (_, i) => ({ kind: 'read_only_write' as const, source: 'gvisor_strace' as const, syscall: 'mkdir', comm: 'sh', path: `/x/${i}` }));
    const merged = mergeSigns([...flood, { kind: 'denied_syscall', source: 'exit_signal' }]);
    expect(merged).toHaveLength(MAX_SIGNS_PER_KIND + 2);
    expect(merged.at(-1)).toEqual({ kind: 'read_only_write', source: 'gvisor_strace', count: 5000 - MAX_SIGNS_PER_KIND });
    expect(describeSign(merged.at(-1)!)).toBe(`${5000 - MAX_SIGNS_PER_KIND} more writes to read-only paths (gvisor_strace)`);
  });

  it('a boot log past the roll size is read and emptied; a smaller one is left for the end of the run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-strace-'));
    try {
      const file = join(dir, 'runsc.log.1.boot.txt');
      const line = 'I1202 01:45:21.377161   16924 strace.go:608] [   2:   2] mkdir X mkdir(0x7ffc1 /home/sandbox/d, 0o777) = 0 (0x0) errno=30 (read-only file system) (15µs)\n';
      writeFileSync(file, line);
      expect(signsFromDebugLogs(dir, 1024)).toEqual([]);
      expect(readFileSync(file, 'utf8')).toBe(line);
      writeFileSync(file, line.repeat(20));
      expect(signsFromDebugLogs(dir, 1024)).toHaveLength(20);
      expect(statSync(file).size).toBe(0);
      expect(signsFromDebugLogs(join(dir, 'none'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
