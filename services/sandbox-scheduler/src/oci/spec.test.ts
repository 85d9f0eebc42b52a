import { describe, expect, it } from 'vitest';
import { defaultSeccompProfile } from './seccomp.js';
import { buildSpec, specHash, TIER1_LIMITS } from './spec.js';

const input = { args: ['/bin/true'], rootfs: '/srv/rootfs', cgroupsPath: '/bulwark/x' };

describe('buildSpec (S1.3)', () => {
  const spec = buildSpec(input);
  const linux = spec.linux as { resources: Record<string, Record<string, number>>; namespaces: { type: string }[]; seccomp: unknown };
  const proc = spec.process as { user: { uid: number }; noNewPrivileges: boolean; capabilities: Record<string, string[]> };

  it('carries the seed Tier 1 limits: 512 MB, 0.5 CPU, a pids limit, no swap beyond the limit', () => {
    expect(TIER1_LIMITS).toMatchObject({ memoryBytes: 512 * 1024 * 1024, cpus: 0.5 });
    expect(linux.resources['memory']).toEqual({ limit: 536870912, swap: 536870912 });
    expect(linux.resources['cpu']).toEqual({ quota: 50000, period: 100000 });
    expect(linux.resources['pids']).toEqual({ limit: 64 });
  });
  it('isolates network, pid, ipc, uts, mount and cgroup namespaces', () => {
    expect(linux.namespaces.map((n) => n.type).sort()).toEqual(['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
  });
  it('has a read-only root, no_new_privileges, a non-root user and only SETUID/SETGID in every capability set', () => {
    expect(spec.root.readonly).toBe(true);
    expect(proc.noNewPrivileges).toBe(true);
    expect(proc.user.uid).not.toBe(0);
    for (const set of ['bounding', 'effective', 'permitted', 'inheritable']) expect(proc.capabilities[set]).toEqual(['CAP_SETUID', 'CAP_SETGID']);
    expect(proc.capabilities['ambient']).toEqual([]);
  });
  it('carries the default seccomp profile', () => {
    expect(linux.seccomp).toBe(defaultSeccompProfile());
  });
  it('adds a tmpfs only where asked, and always noexec, nosuid, nodev', () => {
    expect(spec.mounts.some((m) => m['destination'] === '/tmp')).toBe(false);
    const withTmp = buildSpec({ ...input, tmpfs: [{ path: '/tmp', sizeBytes: 1 << 20 }] });
    expect(withTmp.mounts.find((m) => m['destination'] === '/tmp')?.['options']).toEqual(expect.arrayContaining(['noexec', 'nosuid', 'nodev', 'size=1048576']));
  });
  it('hashes the same spec to the same value and a changed limit to another', () => {
    expect(specHash(buildSpec(input))).toBe(specHash(spec));
    expect(specHash(buildSpec({ ...input, limits: { memoryBytes: 64 << 20 } }))).not.toBe(specHash(spec));
  });
  it('refuses an empty command, a relative rootfs and bad limits', () => {
    expect(() => buildSpec({ ...input, args: [] })).toThrow(/no command/);
    expect(() => buildSpec({ ...input, rootfs: 'rootfs' })).toThrow(/absolute path/);
    expect(() => buildSpec({ ...input, limits: { memoryBytes: 1024 } })).toThrow(/at least 4 MiB/);
    expect(() => buildSpec({ ...input, limits: { cpus: Number.NaN } })).toThrow(/cpu limit/);
    expect(() => buildSpec({ ...input, limits: { pids: 0 } })).toThrow(/pids limit/);
  });
});

describe('the default seccomp profile (deploy/seccomp/default.json)', () => {
  const profile = defaultSeccompProfile();
  const allowed = new Set(profile.syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW' && s.args === undefined).flatMap((s) => s.names));
  it('denies by default', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
  });
  it.each(['unshare', 'setns', 'keyctl', 'add_key', 'request_key', 'mount', 'umount2', 'pivot_root', 'ptrace', 'bpf', 'perf_event_open', 'kexec_load', 'init_module', 'finit_module', 'delete_module', 'open_by_handle_at', 'userfaultfd', 'process_vm_writev', 'reboot', 'swapon', 'chroot', 'io_uring_setup'])('does not allow %s', (name) => {
    expect(allowed.has(name)).toBe(false);
  });
  it('allows clone only without namespace flags, and answers clone3 with ENOSYS', () => {
    const clone = profile.syscalls.find((s) => s.names.includes('clone'));
    expect(clone?.args).toEqual([{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
    expect(profile.syscalls.find((s) => s.names.includes('clone3'))).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  });
});
