import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostDrivers, Scheduler, type Scheduled } from '@bulwark/sandbox-scheduler';
import { run } from '../main.js';
import type { CommandIO } from '../io.js';
import { makeTestRootfs, skipReason } from '../../../../services/sandbox-scheduler/src/drivers/testing.js';

async function bulwark(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env, cwd: process.cwd() };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

const LOW = '{"data_sensitivity":0.2,"code_trust_level":0.9,"network_access":false,"filesystem_access":false,"external_apis":false}';

describe('bulwark sandbox', () => {
  it('assess prints the score and the tier, raised by the gvisor floor by default', async () => {
    expect((await bulwark(['sandbox', 'assess', LOW])).stdout).toBe('risk 0.110 (low) -> Tier 2 (raised from Tier 1 by the default tier gvisor)\n');
    const docker = await bulwark(['sandbox', 'assess', LOW, '--json'], { SYMBIONT_DEFAULT_SANDBOX_TIER: 'docker' });
    expect(JSON.parse(docker.stdout)).toMatchObject({ decision: { level: 'low', tier: 1 } });
  });
  it('assess refuses bad input in one line with exit 2', async () => {
    const r = await bulwark(['sandbox', 'assess', '{"data_sensitivity":1.5}']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/data_sensitivity must be a number from 0 to 1, got 1.5/);
    expect((await bulwark(['sandbox', 'assess', 'nope'])).stderr).toMatch(/is not JSON/);
  });
  it('run refuses an unknown tier and a bad --allow entry', async () => {
    expect((await bulwark(['sandbox', 'run', '--tier', '3', '--', 'true'])).stderr).toMatch(/tier must be auto, 1 or 2/);
    const bad = await bulwark(['sandbox', 'run', '--allow', 'nowhere', '--', 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/"nowhere" is not host:port/);
  });
  it.skipIf(skipReason('runc') !== undefined)('run executes in Tier 1 when asked with a low-risk assessment and the docker floor, returning the exit code', async () => {
    const r = await bulwark(['sandbox', 'run', '--assessment', LOW, '--json', '--', 'sh', '-c', 'echo hi; exit 3'], { SYMBIONT_DEFAULT_SANDBOX_TIER: 'docker' });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: { tier: 1 }, run: { driver: 'runc', stdout: 'hi\n', exitCode: 3 } });
  });
  it.skipIf(skipReason('runc') !== undefined || skipReason('runsc') !== undefined)('ps lists the sandboxes running under a scheduler\'s root, by runtime, and none once terminated', async () => {
    const fs = makeTestRootfs();
    const root = join(fs.dir, 'state');
    const drivers = hostDrivers(root);
    const scheduler = new Scheduler({ drivers: { 1: drivers.runc, 2: drivers.runsc }, rootfs: fs.rootfs, floor: 1, cgroupParent: 'bulwark-test' });
    const low = JSON.parse(LOW) as unknown;
    const runs: Promise<Scheduled>[] = [];
    try {
      for (const tier of [1, 2] as const) {
        let up!: () => void;
        const ready = new Promise<void>((r) => (up = r));
        runs.push(scheduler.schedule({ assessment: low, tier, args: ['/bin/sh', '-c', 'echo up; sleep 60'], onOutput: () => up() }));
        await ready;
      }
      const ids = scheduler.ps().map((r) => ({ id: r.id, driver: r.tier === 1 ? 'runc' : 'runsc' }));
      const listed = await bulwark(['sandbox', 'ps', '--root', root, '--json']);
      expect(new Set(JSON.parse(listed.stdout) as unknown[])).toEqual(new Set(ids));
      expect((await bulwark(['sandbox', 'ps', '--root', root])).stdout).toBe(ids.map((r) => `${r.id}  ${r.driver}\n`).join(''));
      // Another scheduler's root lists none of them.
      expect((await bulwark(['sandbox', 'ps', '--root', join(fs.dir, 'other')])).stdout).toBe('no sandboxes running\n');
      await scheduler.terminateAll();
      await Promise.all(runs);
      expect((await bulwark(['sandbox', 'ps', '--root', root])).stdout).toBe('no sandboxes running\n');
    } finally {
      await scheduler.terminateAll();
      await Promise.allSettled(runs);
      fs.cleanup();
    }
  });
});
