import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSpec, limitsOf, type OciSpec, type SandboxLimits, type SpecInput } from '../oci/spec.js';
import type { OciRuntimeDriver } from './oci-runtime.js';
import { createRuncDriver } from './runc.js';
import { createRunscDriver } from './runsc.js';
import { installNsclone, makeTestRootfs, skipReason, type TestRootfs } from './testing.js';
import type { SandboxRun } from './types.js';

/**
 * Real workloads under each runtime. Every attack runs twice: against the hardened spec (it must
 * fail) and against the same spec with only that one protection removed (it must succeed), so a
 * check that would also pass on an unprotected process cannot go unnoticed.
 */
type Mutate = (spec: OciSpec) => OciSpec;
const withLinux = (spec: OciSpec, linux: Record<string, unknown>): OciSpec => ({ ...spec, linux: { ...spec.linux, ...linux } });
const withProcess = (spec: OciSpec, process: Record<string, unknown>): OciSpec => ({ ...spec, process: { ...spec.process, ...process } });
const ALL_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETUID', 'CAP_SETGID', 'CAP_NET_RAW', 'CAP_SYS_ADMIN'];

const runtimes = [
  { name: 'runc', make: createRuncDriver },
  { name: 'runsc', make: createRunscDriver },
] as const;

for (const runtime of runtimes) {
  const reason = skipReason(runtime.name);
  describe.skipIf(reason !== undefined)(`${runtime.name} isolation${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
    let fs: TestRootfs;
    let driver: OciRuntimeDriver;
    let n = 0;
    let noNsclone: string | undefined;

    beforeAll(() => {
      fs = makeTestRootfs();
      noNsclone = installNsclone(fs.rootfs);
      driver = runtime.make({ stateRoot: join(fs.dir, 'state'), bundleRoot: join(fs.dir, 'bundles') });
    });
    afterAll(() => fs?.cleanup());

    async function run(script: string, options: { limits?: Partial<SandboxLimits>; mutate?: Mutate; user?: SpecInput['user']; tmpfs?: boolean } = {}): Promise<SandboxRun> {
      const id = `t-${runtime.name}-${process.pid}-${n++}`;
      const input: SpecInput = { args: ['/bin/sh', '-c', script], rootfs: fs.rootfs, cgroupsPath: `/bulwark-test/${id}`, limits: { wallClockMs: 20_000, ...options.limits }, ...(options.user ? { user: options.user } : {}), ...(options.tmpfs ? { tmpfs: [{ path: '/tmp', sizeBytes: 1024 * 1024 }] } : {}) };
      const spec = buildSpec(input);
      return driver.run({ id, spec: options.mutate?.(spec) ?? spec, limits: limitsOf(input) });
    }

    it('returns the workload exit code and output, and records the spec hash and runtime flags', async () => {
      const r = await run('echo hello; echo oops >&2; exit 7');
      expect(r.exitCode).toBe(7);
      expect(r.stdout).toBe('hello\n');
      expect(r.stderr).toContain('oops');
      expect(r.specHash).toMatch(/^[0-9a-f]{64}$/);
      expect(r.runtimeFlags[0]).toBe(runtime.name);
      expect(r.firstOutputMs).toBeGreaterThan(0);
    });

    it('cannot connect to PostgreSQL on the host loopback (127.0.0.1:5432): own network namespace', async () => {
      const script = 'nc -w 2 127.0.0.1 5432 </dev/null && echo CONNECTED || echo REFUSED';
      expect((await run(script)).stdout).toContain('REFUSED');
      const open = await run(script, { mutate: (s) => withLinux(s, { namespaces: (s.linux['namespaces'] as { type: string }[]).filter((ns) => ns.type !== 'network') }) });
      expect(open.stdout).toContain(runtime.name === 'runsc' ? 'REFUSED' : 'CONNECTED');
    });

    it('cannot write its root filesystem, even a directory the sandbox user owns', async () => {
      const script = 'echo x > /home/sandbox/f && echo WROTE';
      const r = await run(script);
      expect(r.stdout).not.toContain('WROTE');
      expect(r.stderr).toMatch(/Read-only file system/);
      const open = await run(script, { mutate: (s) => ({ ...s, root: { ...s.root, readonly: false } }) });
      rmSync(join(fs.rootfs, 'home/sandbox/f'), { force: true });
      expect(open.stdout).toContain('WROTE');
    });

    it('is killed past its memory limit (200 MiB allocated under 64 MiB)', async () => {
      const script = 'dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo SURVIVED';
      const r = await run(script, { limits: { memoryBytes: 64 * 1024 * 1024 } });
      expect(r.stdout).not.toContain('SURVIVED');
      expect(r.exitCode).not.toBe(0);
      expect(r.limitsExceeded).toContain('memory');
      // The limit read back from the cgroup is the one asked for (runsc removes its cgroup: nothing to read).
      if (runtime.name === 'runc') expect(r.usage).toMatchObject({ memoryLimitBytes: 64 * 1024 * 1024, oomKills: 1 });
      const open = await run(script, { limits: { memoryBytes: 1024 * 1024 * 1024 } });
      expect(open.stdout).toContain('SURVIVED');
      expect(open.limitsExceeded).not.toContain('memory');
    });

    it.skipIf(runtime.name === 'runsc')(`stops a fork bomb at its pids limit${runtime.name === 'runsc' ? ' (skipped: runsc cannot take a pids limit, see RUNSC_KNOWN_LIMITS)' : ''}`, async () => {
      const script = '(for i in $(seq 1 60); do sleep 5 & done) 2>/dev/null; set -- /proc/[0-9]*; echo RUNNING $#';
      const r = await run(script, { limits: { pids: 16 } });
      const running = Number(/RUNNING (\d+)/.exec(r.stdout)?.[1]);
      expect(running).toBeLessThanOrEqual(16);
      expect(r.limitsExceeded).toContain('pids');
      expect(r.usage.pidsLimit).toBe(16);
      expect(r.escapeSigns).toContainEqual({ kind: 'processes_past_limit', source: 'cgroup', count: r.usage.pidsRefused });
      expect(r.usage.pidsRefused).toBeGreaterThan(0);
      const open = await run(script, { limits: { pids: 1000 } });
      expect(Number(/RUNNING (\d+)/.exec(open.stdout)?.[1])).toBeGreaterThan(60);
      expect(open.escapeSigns).toEqual([]);
    });

    it.skipIf(runtime.name === 'runsc')(`holds a busy loop to its CPU quota${runtime.name === 'runsc' ? ' (skipped: runsc removes the cgroup before usage can be read)' : ''}`, async () => {
      const script = 'timeout 1 sh -c "while :; do :; done"; true';
      const r = await run(script, { limits: { cpus: 0.2 } });
      const share = (r.usage.cpuNs ?? Number.NaN) / 1e9 / (r.durationMs / 1000);
      expect(share).toBeLessThan(0.3);
      const open = await run(script, { limits: { cpus: 2 } });
      expect((open.usage.cpuNs ?? 0) / 1e9 / (open.durationMs / 1000)).toBeGreaterThan(share);
    });

    it('has only CAP_SETUID and CAP_SETGID (read from /proc/self/status inside)', async () => {
      const script = 'grep -E "^Cap(Eff|Bnd|Prm)" /proc/self/status';
      const asNobody = await run(script);
      expect(asNobody.stdout).toMatch(/CapBnd:\s+00000000000000c0/);
      expect(asNobody.stdout).toMatch(/CapEff:\s+0000000000000000/);
      const asRoot = await run(script, { user: { uid: 0, gid: 0 } });
      expect(asRoot.stdout).toMatch(/CapEff:\s+00000000000000c0/);
      expect(asRoot.stdout).toMatch(/CapBnd:\s+00000000000000c0/);
      const open = await run(script, { user: { uid: 0, gid: 0 }, mutate: (s) => withProcess(s, { capabilities: { bounding: ALL_CAPS, effective: ALL_CAPS, permitted: ALL_CAPS, inheritable: [], ambient: [] } }) });
      expect(open.stdout).not.toMatch(/CapEff:\s+00000000000000c0/);
    });

    it('cannot gain privileges through a setuid-root binary (no_new_privileges)', async () => {
      const script = '/usr/local/bin/suid-id -u';
      expect((await run(script)).stdout.trim()).toBe('65534');
      if (runtime.name === 'runsc') return; // runsc ignores setuid bits altogether (RUNSC_KNOWN_LIMITS): no control run can show 0
      const open = await run(script, { mutate: (s) => withProcess(s, { noNewPrivileges: false }) });
      expect(open.stdout.trim()).toBe('0');
    });

    it('is refused a syscall the seccomp profile denies (unshare of a user namespace)', async () => {
      const script = 'unshare -U true && echo UNSHARED || echo DENIED';
      const r = await run(script);
      expect(r.stdout).toContain('DENIED');
      const open = await run(script, { mutate: (s) => withLinux(s, { seccomp: undefined }) });
      expect(open.stdout).toContain('UNSHARED');
    });

    // Escape signs (S1.5). Each comes from what the runtime or kernel reports, and a benign workload has none.
    const killToErrno: Mutate = (s) => {
      const seccomp = s.linux['seccomp'] as { syscalls: { action: string }[] };
      return withLinux(s, { seccomp: { ...seccomp, syscalls: seccomp.syscalls.map((r) => (r.action === 'SCMP_ACT_KILL_PROCESS' ? { ...r, action: 'SCMP_ACT_ERRNO' } : r)) } });
    };

    it('a benign workload (files in its tmpfs, a few processes, /proc) shows no escape sign', async () => {
      const r = await run('echo data > /tmp/f && cat /tmp/f >/dev/null && for i in 1 2 3; do sleep 0 & done; wait; cat /proc/self/status >/dev/null; ls / >/dev/null; echo ok', { tmpfs: true });
      expect(r.stdout).toBe('ok\n');
      expect(r.escapeSigns).toEqual([]);
    });

    it('the workload killed for a syscall the profile denies (unshare) is escape_suspected', async () => {
      const r = await run('exec unshare -U true');
      expect(r.exitCode).toBe(159);
      expect(r.escapeSigns).toContainEqual(runtime.name === 'runc' ? { kind: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', comm: 'unshare' } : { kind: 'denied_syscall', source: 'exit_signal' });
      // The same attempt refused with EPERM (the profile's kill rule made an errno rule) leaves no trace.
      const quiet = await run('exec unshare -U true', { mutate: killToErrno });
      expect(quiet.exitCode).toBe(1);
      expect(quiet.escapeSigns).toEqual([]);
    });

    it.skipIf(runtime.name === 'runsc')(`a child process killed for a denied syscall is reported by name, from the kernel log${runtime.name === 'runsc' ? ' (skipped: gVisor reports only the workload\'s own exit, see RUNSC_KNOWN_LIMITS)' : ''}`, async () => {
      const r = await run('unshare -U true; keyctl show 2>/dev/null; echo still-here');
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('still-here\n');
      expect(r.escapeSigns).toContainEqual({ kind: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', comm: 'unshare' });
    });

    it('clone(2) with a namespace flag, called directly instead of unshare, is killed and reported too', async (t) => {
      if (noNsclone !== undefined) t.skip(noNsclone);
      const r = await run('nsclone; echo rc=$?');
      expect(r.stdout).toBe('rc=159\n');
      if (runtime.name === 'runc') expect(r.escapeSigns).toContainEqual({ kind: 'denied_syscall', source: 'kernel_log', syscall: 'clone', comm: 'nsclone' });
      else expect((await run('exec nsclone')).escapeSigns).toContainEqual({ kind: 'denied_syscall', source: 'exit_signal' });
      // Threads and forks (clone without a namespace flag) are untouched.
      expect((await run('sleep 0 & wait; echo ok')).escapeSigns).toEqual([]);
      const quiet = await run('nsclone', { mutate: killToErrno });
      expect(quiet.stdout).toBe('clone=-1\n');
      expect(quiet.escapeSigns).toEqual([]);
    });

    it.skipIf(runtime.name === 'runsc')(`the kernel's records are attributed to the sandbox that made them, not to one running beside it${runtime.name === 'runsc' ? ' (skipped: runc only)' : ''}`, async () => {
      const [attacker, bystander] = await Promise.all([run('sleep 0.3; unshare -U true; sleep 0.3; echo done'), run('sleep 0.2; echo quiet; sleep 0.6')]);
      expect(attacker.escapeSigns).toContainEqual(expect.objectContaining({ syscall: 'unshare', source: 'kernel_log' }));
      expect(bystander.escapeSigns).toEqual([]);
    });

    it('capability use is escape_suspected: a hostname change under runc (the profile kills sethostname), a chown under runsc (gVisor strace)', async () => {
      if (runtime.name === 'runc') {
        const r = await run('hostname evil; mount -t tmpfs t /mnt; echo after');
        expect(r.stdout).toBe('after\n');
        expect(r.escapeSigns).toEqual(expect.arrayContaining([
          { kind: 'capability_use', source: 'kernel_log', syscall: 'sethostname', comm: 'hostname' },
          { kind: 'capability_use', source: 'kernel_log', syscall: 'mount', comm: 'mount' },
        ]));
      } else {
        const r = await run('echo x > /tmp/f; chown 0:0 /tmp/f; echo after', { tmpfs: true });
        expect(r.stdout).toBe('after\n');
        expect(r.escapeSigns).toContainEqual({ kind: 'capability_use', source: 'gvisor_strace', syscall: 'chown', comm: 'chown', path: '/tmp/f' });
        const own = await run('echo x > /tmp/f; chown 65534:65534 /tmp/f; echo after', { tmpfs: true });
        expect(own.escapeSigns).toEqual([]);
      }
    });

    it(`writes to read-only paths ${runtime.name === 'runsc' ? 'are escape_suspected, with the path (gVisor strace)' : 'are refused but not reported (RUNC_KNOWN_LIMITS)'}`, async () => {
      const r = await run('mkdir /home/sandbox/d; touch /home/sandbox/f; echo after');
      expect(r.stdout).toBe('after\n');
      expect(r.stderr).toMatch(/Read-only file system/);
      if (runtime.name === 'runsc') {
        expect(r.escapeSigns).toEqual(expect.arrayContaining([
          { kind: 'read_only_write', source: 'gvisor_strace', syscall: 'mkdir', comm: 'mkdir', path: '/home/sandbox/d' },
          expect.objectContaining({ kind: 'read_only_write', comm: 'touch', path: '/home/sandbox/f' }),
        ]));
      } else {
        expect(r.escapeSigns).toEqual([]);
        expect((await driver.detect()).knownLimits.join(' ')).toMatch(/read-only path is refused \(EROFS\) but leaves no trace/);
      }
    });

    it('states its known limits', async () => {
      const status = await driver.detect();
      expect(status.available).toBe(true);
      if (runtime.name === 'runsc') expect(status.knownLimits.join(' ')).toMatch(/pids: not applied/);
      else expect(status.knownLimits.join(' ')).toMatch(/escape signs/);
      // Nothing about the kernel log being unusable: this host gives it (root, /dev/kmsg, loginuid).
      expect(status.knownLimits.join(' ')).not.toMatch(/monitoring is off|not readable|cannot be given/);
    });

    it('is killed by its id past its wall clock, and nothing outlives it', async () => {
      const started = Date.now();
      const r = await run('echo started; sleep 30; echo finished', { limits: { wallClockMs: 600 } });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(r.stdout).toBe('started\n');
      expect(r.limitsExceeded).toContain('wall_clock');
      expect(await driver.state(r.id)).toBeUndefined();
      expect(await driver.list()).not.toContain(r.id);
      expect(existsSync(`/sys/fs/cgroup/pids/bulwark-test/${r.id}`)).toBe(false);
    });
  });
}
