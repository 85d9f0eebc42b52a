import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OciRuntimeDriver } from '../src/drivers/oci-runtime.js';
import { createRuncDriver } from '../src/drivers/runc.js';
import { createRunscDriver } from '../src/drivers/runsc.js';
import { cgroupDirsOf, hostProcessesOf, makeTestRootfs, skipReason, type TestRootfs } from '../src/drivers/testing.js';
import { buildSpec, limitsOf } from '../src/oci/spec.js';
import type { Tier } from '../src/risk/tier.js';
import { Scheduler, type Scheduled } from '../src/service/scheduler.js';
import { WarmPool } from '../src/warm/pool.js';

/**
 * Nothing outlives `terminate` (what incident response calls to isolate an agent): not the
 * container's processes (children that ignore SIGTERM included), not the runtime's own processes
 * (runsc's sandbox and gofer), not its state, cgroups or bundle. Checked on the host, not on the
 * client: /proc, the runtime's state, the cgroup tree.
 */
const LOW = { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false };
const PARENT = 'bulwark-test';
// Children that ignore SIGTERM, one in a subshell, then a wait: only a kill of the whole container ends it.
const STUBBORN = ['/bin/sh', '-c', 'trap "" TERM; sleep 300 & sleep 300 & (trap "" TERM; sleep 300) & echo up; wait'];
function processState(pid: number): string {
  try {
    return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '?';
  } catch {
    return 'gone';
  }
}

const reasons = [skipReason('runc'), skipReason('runsc')].filter((r) => r !== undefined);

describe.skipIf(reasons.length > 0)(`terminate leaves nothing behind${reasons.length > 0 ? ` (skipped: ${reasons.join('; ')})` : ''}`, () => {
  let fs: TestRootfs;
  let drivers: Record<Tier, OciRuntimeDriver>;
  let pool: WarmPool;
  let scheduler: Scheduler;

  beforeAll(async () => {
    fs = makeTestRootfs();
    drivers = {
      1: createRuncDriver({ stateRoot: join(fs.dir, 'runc'), bundleRoot: join(fs.dir, 'bundles') }),
      2: createRunscDriver({ stateRoot: join(fs.dir, 'runsc'), bundleRoot: join(fs.dir, 'bundles') }),
    };
    const input = (id: string) => ({ args: ['/bin/true'], rootfs: fs.rootfs, cgroupsPath: `/${PARENT}/${id}` });
    pool = new WarmPool({ driver: drivers[1], size: 1, specFor: (id) => buildSpec(input(id)), limits: limitsOf(input('x')), idPrefix: `term-warm-${process.pid}` });
    scheduler = new Scheduler({ drivers, pools: { 1: pool }, rootfs: fs.rootfs, floor: 1, cgroupParent: PARENT });
  });
  afterAll(async () => {
    await scheduler?.terminateAll();
    await pool?.stop();
    fs?.cleanup();
  });

  /** Schedules STUBBORN for an agent; resolves once the workload said it is up, with its id and the pending result. */
  async function start(agentId: string, tier: Tier): Promise<{ id: string; done: Promise<Scheduled> }> {
    const known = new Set(scheduler.ps().map((r) => r.id));
    let up!: () => void;
    const ready = new Promise<void>((r) => (up = r));
    const done = scheduler.schedule({ assessment: LOW, tier, args: STUBBORN, onOutput: (_s, c) => c.toString().includes('up') && up() }, agentId);
    await Promise.race([ready, done.then(() => { throw new Error('the workload ended before it was terminated'); })]);
    const id = scheduler.ps().find((r) => !known.has(r.id))?.id;
    if (id === undefined) throw new Error('the scheduler does not list the running sandbox');
    return { id, done };
  }

  async function expectGone(id: string, tier: Tier, before: readonly { pid: number; cmdline: string }[]): Promise<void> {
    expect(hostProcessesOf(id)).toEqual([]);
    // Dead: gone, or a zombie not yet reaped by the host's init (a container's first process created
    // with `runc create` is reparented to pid 1); it runs nothing and holds no memory or files.
    for (const p of before) expect(processState(p.pid), `pid ${p.pid} of ${id} (${p.cmdline}) outlived terminate`).toMatch(/^(gone|Z)$/);
    expect(await drivers[tier].state(id)).toBeUndefined();
    expect(await drivers[tier].list()).not.toContain(id);
    expect(cgroupDirsOf(PARENT, id)).toEqual([]);
    expect(existsSync(join(fs.dir, 'bundles', id))).toBe(false);
    expect(scheduler.ps().map((r) => r.id)).not.toContain(id);
  }

  for (const tier of [1, 2] as const) {
    it(`by sandbox id, Tier ${tier} (${tier === 1 ? 'runc' : 'runsc'}): the container's processes, the runtime's, its state, cgroups and bundle are gone`, async () => {
      await pool.fill();
      const { id, done } = await start('agent.one', tier);
      const before = hostProcessesOf(id);
      // The container's shell and its three sleeps (runc), or runsc's sandbox and gofer, are there to be killed.
      expect(before.length).toBeGreaterThanOrEqual(tier === 1 ? 4 : 2);
      const started = Date.now();
      expect(await scheduler.terminate({ sandboxId: id })).toEqual([id]);
      const { run } = await done;
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(run.exitCode).toBe(137);
      expect(run.stdout).toBe('up\n');
      await expectGone(id, tier, before);
    });
  }

  it("by agent: every sandbox of the agent (warm, cold, Tier 2) is gone; another agent's keeps running", async () => {
    await pool.fill();
    const mine = [await start('agent.target', 1), await start('agent.target', 1), await start('agent.target', 2)];
    const other = await start('agent.bystander', 1);
    const before = new Map(mine.map((s) => [s.id, hostProcessesOf(s.id)]));
    const killed = await scheduler.terminate({ agentId: 'agent.target' });
    expect(new Set(killed)).toEqual(new Set(mine.map((s) => s.id)));
    const runs = await Promise.all(mine.map((s) => s.done));
    expect(runs.map((r) => r.run.warm)).toEqual([true, false, false]);
    for (const [i, s] of mine.entries()) await expectGone(s.id, i === 2 ? 2 : 1, before.get(s.id) ?? []);
    // The bystander was not touched.
    expect(hostProcessesOf(other.id).length).toBeGreaterThanOrEqual(4);
    expect((await drivers[1].state(other.id))?.status).toBe('running');
    expect(await scheduler.terminate({ sandboxId: other.id })).toEqual([other.id]);
    await other.done;
    await expectGone(other.id, 1, []);
  });

  it('terminateAll (the service stopping) leaves no sandbox of any agent or tier', async () => {
    const all = [await start('agent.x', 1), await start('agent.y', 2)];
    expect(new Set(await scheduler.terminateAll())).toEqual(new Set(all.map((s) => s.id)));
    await Promise.all(all.map((s) => s.done));
    for (const [i, s] of all.entries()) await expectGone(s.id, i === 0 ? 1 : 2, []);
  });

  it("a scheduler killed before it could clean up: the next one deletes its containers (created and running), not a live scheduler's", async () => {
    const exited = (child: ReturnType<typeof spawn>) => new Promise<void>((r) => child.once('exit', () => r()));
    const gone = spawn('true');
    await exited(gone);
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    const runc = drivers[1];
    const plant = async (id: string, owner: number, how: string[]) => {
      const bundle = runc.writeBundle(id, buildSpec({ args: ['/bin/sleep', '300'], rootfs: fs.rootfs, cgroupsPath: `/${PARENT}/${id}` }));
      writeFileSync(join(bundle, 'owner'), String(owner));
      const child = spawn('runc', [...runc.globals(), ...how, '--bundle', bundle, id], { stdio: 'ignore' });
      await exited(child);
    };
    const created = `orphan-created-${process.pid}`;
    const running = `orphan-running-${process.pid}`;
    const kept = `live-owner-${process.pid}`;
    try {
      await plant(created, gone.pid!, ['create']);
      await plant(running, gone.pid!, ['run', '-d']);
      await plant(kept, live.pid!, ['run', '-d']);
      expect((await runc.state(running))?.status).toBe('running');
      expect(hostProcessesOf(running).length).toBeGreaterThan(0);
      expect(new Set(await scheduler.reapOrphans())).toEqual(new Set([created, running]));
      await expectGone(created, 1, []);
      await expectGone(running, 1, []);
      expect((await runc.state(kept))?.status).toBe('running');
    } finally {
      live.kill();
      await runc.remove(kept);
    }
    await expectGone(kept, 1, []);
  });
});
