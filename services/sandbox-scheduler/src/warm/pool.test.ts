import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuncDriver } from '../drivers/runc.js';
import { createRunscDriver } from '../drivers/runsc.js';
import { makeTestRootfs, skipReason, type TestRootfs } from '../drivers/testing.js';
import { buildSpec, limitsOf } from '../oci/spec.js';
import { shellQuote, WarmPool } from './pool.js';

describe('shellQuote', () => {
  it('quotes every argument so the launcher runs exactly that argv', () => {
    expect(shellQuote(['echo', "it's", '$HOME', 'a b'])).toBe(`'echo' 'it'\\''s' '$HOME' 'a b'`);
  });
});

it('refuses a runsc driver: Tier 2 runs cold (its create cannot pass the status fd)', () => {
  const driver = createRunscDriver({ stateRoot: join(tmpdir(), 'bulwark-sandbox-unused', 'state'), bundleRoot: join(tmpdir(), 'bulwark-sandbox-unused', 'bundles') });
  expect(() => new WarmPool({ driver, specFor: () => { throw new Error('unused'); }, limits: { memoryBytes: 1 << 26, cpus: 0.5, pids: 8, wallClockMs: 1000 } })).toThrow(/only runc containers can be kept warm/);
});

for (const runtime of [{ name: 'runc', make: createRuncDriver }] as const) {
  const reason = skipReason(runtime.name);
  describe.skipIf(reason !== undefined)(`warm pool under ${runtime.name}${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
    let fs: TestRootfs;
    let pool: WarmPool;
    beforeAll(async () => {
      fs = makeTestRootfs();
      const driver = runtime.make({ stateRoot: join(fs.dir, 'state'), bundleRoot: join(fs.dir, 'bundles') });
      const input = (id: string) => ({ args: ['/bin/true'], rootfs: fs.rootfs, cgroupsPath: `/bulwark-test/${id}`, limits: { wallClockMs: 10_000, memoryBytes: 64 << 20 } });
      pool = new WarmPool({ driver, size: 2, specFor: (id) => buildSpec(input(id)), limits: limitsOf(input('x')), idPrefix: `wp-${runtime.name}-${process.pid}` });
      await pool.fill();
    });
    afterAll(async () => {
      await pool?.stop();
      fs?.cleanup();
    });

    it('runs a workload in a pre-created container with its argv, output and exit code, and refills', async () => {
      expect(pool.available).toBe(2);
      const r = await pool.run(['/bin/sh', '-c', 'echo "$0 $1"; id -u; exit 5', "it's", '$HOME']);
      expect(r?.warm).toBe(true);
      expect(r?.stdout).toBe("it's $HOME\n65534\n");
      expect(r?.exitCode).toBe(5);
      await pool.fill();
      expect(pool.available).toBe(2);
    });

    it('keeps the hardening: read-only root and the memory limit', async () => {
      const r = await pool.run(['/bin/sh', '-c', 'echo x > /home/sandbox/f || echo REFUSED']);
      expect(r?.stdout).toContain('REFUSED');
      const m = await pool.run(['/bin/sh', '-c', 'dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo SURVIVED']);
      expect(m?.stdout).not.toContain('SURVIVED');
      expect(m?.limitsExceeded).toContain('memory');
    });

    it('kills a warm sandbox by its id past its wall clock, and deletes it', async () => {
      const driver = runtime.make({ stateRoot: join(fs.dir, 'state2'), bundleRoot: join(fs.dir, 'bundles2') });
      const input = { args: ['/bin/true'], rootfs: fs.rootfs, cgroupsPath: '/bulwark-test/x', limits: { wallClockMs: 500 } };
      const short = new WarmPool({ driver, size: 1, specFor: (id) => buildSpec({ ...input, cgroupsPath: `/bulwark-test/${id}` }), limits: limitsOf(input), idPrefix: `wp-short-${process.pid}` });
      try {
        await short.fill();
        const started = Date.now();
        const r = await short.run(['/bin/sh', '-c', 'echo up; sleep 30']);
        expect(Date.now() - started).toBeLessThan(5000);
        expect(r?.stdout).toBe('up\n');
        expect(r?.exitCode).toBe(137);
        expect(r?.limitsExceeded).toContain('wall_clock');
        expect(await driver.list()).not.toContain(r?.id);
        expect(await driver.state(r?.id ?? '')).toBeUndefined();
      } finally {
        await short.stop();
      }
    });

    it('reports a warm container\'s escape signs from the kernel log (its audit login uid is set at create), and none for a benign one', async () => {
      const r = await pool.run(['/bin/sh', '-c', 'unshare -U true; hostname evil; echo after']);
      expect(r?.stdout).toBe('after\n');
      expect(r?.escapeSigns).toEqual(expect.arrayContaining([
        { kind: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', comm: 'unshare' },
        { kind: 'capability_use', source: 'kernel_log', syscall: 'sethostname', comm: 'hostname' },
      ]));
      await pool.fill();
      expect((await pool.run(['/bin/sh', '-c', 'echo fine']))?.escapeSigns).toEqual([]);
    });

    it('does not let the workload forge its exit status on fd 3', async () => {
      const r = await pool.run(['/bin/sh', '-c', 'echo 0 >&3; exit 9']);
      expect(r?.exitCode).toBe(9);
    });
  });
}
