import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSpec, limitsOf, type OciSpec, type SandboxLimits, type SpecInput } from '../oci/spec.js';
import { DockerDriver, dockerCreateOptions } from './docker.js';
import { dockerSkipReason, makeTestRootfs, startTestEngine, type TestEngine, type TestRootfs } from './testing.js';

describe('dockerCreateOptions', () => {
  it('reads every hardening off the one spec', () => {
    const o = dockerCreateOptions(buildSpec({ args: ['/bin/true'], rootfs: '/r', cgroupsPath: '/b/x', tmpfs: [{ path: '/tmp', sizeBytes: 1 << 20 }] }), { id: 'x', image: 'img', runtime: 'runsc' });
    expect(o.User).toBe('65534:65534');
    expect(o.HostConfig).toMatchObject({ NetworkMode: 'none', ReadonlyRootfs: true, CapDrop: ['ALL'], CapAdd: ['SETUID', 'SETGID'], Memory: 512 << 20, MemorySwap: 512 << 20, NanoCpus: 5e8, PidsLimit: 64, Runtime: 'runsc', Tmpfs: { '/tmp': 'nosuid,noexec,nodev,mode=1777,size=1048576' } });
    expect(o.HostConfig?.SecurityOpt?.[0]).toBe('no-new-privileges:true');
    expect(JSON.parse(o.HostConfig?.SecurityOpt?.[1]?.slice('seccomp='.length) ?? '{}')).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO' });
  });
});

const reason = dockerSkipReason();
describe.skipIf(reason !== undefined)(`docker driver against an engine of its own${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
  let fs: TestRootfs;
  let engine: TestEngine;
  let tier1: DockerDriver;
  let tier2: DockerDriver;
  let n = 0;
  const image = `bulwark-sandbox-test:${process.pid}`;

  beforeAll(async () => {
    fs = makeTestRootfs();
    engine = await startTestEngine(fs.dir);
    // The rootfs as an image: `docker import` of its tarball (no registry is reached).
    const docker = new Docker({ socketPath: engine.socket });
    const tar = Readable.from([execFileSync('tar', ['-C', fs.rootfs, '-c', '.'], { maxBuffer: 64 << 20 })]);
    const [repo, tag] = image.split(':') as [string, string];
    const progress = await docker.importImage(tar as unknown as string, { repo, tag });
    await new Promise((resolve, reject) => docker.modem.followProgress(progress, (e) => (e ? reject(e) : resolve(undefined))));
    tier1 = new DockerDriver({ socketPath: engine.socket, image, tier: 1 });
    tier2 = new DockerDriver({ socketPath: engine.socket, image, tier: 2 });
  }, 60_000);
  afterAll(async () => {
    await engine?.stop();
    fs?.cleanup();
  }, 30_000);

  const run = (driver: DockerDriver, script: string, options: { limits?: Partial<SandboxLimits>; mutate?: (s: OciSpec) => OciSpec } = {}) => {
    const id = `t-docker-${process.pid}-${n++}`;
    const input: SpecInput = { args: ['/bin/sh', '-c', script], rootfs: fs.rootfs, cgroupsPath: `/bulwark-test/${id}`, limits: { wallClockMs: 20_000, ...options.limits } };
    const spec = buildSpec(input);
    return driver.run({ id, spec: options.mutate?.(spec) ?? spec, limits: limitsOf(input) });
  };

  it('detects both tiers (runsc registered as a runtime)', async () => {
    expect(await tier1.detect()).toMatchObject({ available: true });
    expect(await tier2.detect()).toMatchObject({ available: true, version: expect.stringContaining('runsc') });
  });

  it('Tier 1: exit code and output; no network; read-only root; caps; setuid; seccomp; memory', async () => {
    const r = await run(tier1, 'echo hello; exit 6');
    expect([r.exitCode, r.stdout]).toEqual([6, 'hello\n']);
    expect((await run(tier1, 'nc -w 2 127.0.0.1 5432 </dev/null && echo CONNECTED || echo REFUSED')).stdout).toContain('REFUSED');
    const write = 'echo x > /home/sandbox/f && echo WROTE';
    expect((await run(tier1, write)).stdout).not.toContain('WROTE');
    expect((await run(tier1, write, { mutate: (s) => ({ ...s, root: { ...s.root, readonly: false } }) })).stdout).toContain('WROTE');
    expect((await run(tier1, 'grep CapBnd /proc/self/status')).stdout).toMatch(/00000000000000c0/);
    expect((await run(tier1, '/usr/local/bin/suid-id -u')).stdout.trim()).toBe('65534');
    expect((await run(tier1, '/usr/local/bin/suid-id -u', { mutate: (s) => ({ ...s, process: { ...s.process, noNewPrivileges: false } }) })).stdout.trim()).toBe('0');
    const unshare = 'unshare -U true && echo UNSHARED || echo DENIED';
    expect((await run(tier1, unshare)).stdout).toContain('DENIED');
    const bomb = await run(tier1, '(for i in $(seq 1 60); do sleep 5 & done) 2>/dev/null; set -- /proc/[0-9]*; echo RUNNING $#', { limits: { pids: 16 } });
    expect(Number(/RUNNING (\d+)/.exec(bomb.stdout)?.[1])).toBeLessThanOrEqual(16);
    const unbounded = await run(tier1, '(for i in $(seq 1 60); do sleep 5 & done) 2>/dev/null; set -- /proc/[0-9]*; echo RUNNING $#', { limits: { pids: 1000 } });
    expect(Number(/RUNNING (\d+)/.exec(unbounded.stdout)?.[1])).toBeGreaterThan(60);
    const oom = await run(tier1, 'dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo SURVIVED', { limits: { memoryBytes: 64 << 20 } });
    expect(oom.stdout).not.toContain('SURVIVED');
    expect(oom.limitsExceeded).toContain('memory');
  }, 60_000);

  it('Tier 2: runs under gVisor through the engine, without network', async () => {
    const r = await run(tier2, 'cat /proc/version; nc -w 2 127.0.0.1 5432 </dev/null && echo CONNECTED || echo REFUSED');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('REFUSED');
    expect(r.runtimeFlags).toContain('--runtime=runsc');
    // gVisor reports its own kernel version, not the host's.
    expect(r.stdout.split('\n')[0]).not.toBe(execFileSync('cat', ['/proc/version'], { encoding: 'utf8' }).trim());
  }, 60_000);

});
