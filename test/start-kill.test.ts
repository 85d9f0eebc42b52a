// `bulwark up` killed with SIGKILL (no handler runs, nothing is stopped in order): every
// process it started must still be gone within 10 s. The services watch the stdin pipe only
// `up` held (@bulwark/service-host's supervisor watch) and stop themselves when it closes;
// nats-server gets the kernel's parent-death signal (setpriv --pdeathsig). The sandbox
// runtimes are made to fail here (`runc` and `runsc` earlier in PATH that exit 127): the
// scheduler must run anyway, serving no tier, and say so in its /health.
// Its own nats-server and PGlite, as start.test.ts: never the machine's shared servers.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAlive, readRunState, type RunState } from '../libs/cli/src/home/state.js';
import { homeAt } from '../libs/cli/src/home/home.js';
import { isolatedEnv, spawnUp, untilPrinted, type Spawned } from './bulwark-process.js';

const scratch = mkdtempSync(join(tmpdir(), 'bulwark-start-kill-'));
const home = join(scratch, 'home');
const fakeBin = join(scratch, 'bin');

/** `runc` and `runsc` that are not there: what a host without the sandbox runtimes answers. */
function withoutSandboxRuntimes(): string {
  mkdirSync(fakeBin, { recursive: true });
  for (const name of ['runc', 'runsc']) {
    writeFileSync(join(fakeBin, name), `#!/bin/sh\necho "${name}: not installed" >&2\nexit 127\n`);
    chmodSync(join(fakeBin, name), 0o755);
  }
  return `${fakeBin}:${process.env['PATH'] ?? ''}`;
}

const cleanEnv = (): NodeJS.ProcessEnv => isolatedEnv({ PATH: withoutSandboxRuntimes() });

const readState = (): RunState => readRunState(homeAt(home))!;

let up: Spawned | undefined;
let started: number[] = [];

afterAll(() => {
  // Whatever the test left (a failure must not leave a system running on this machine).
  for (const pid of started) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  if (up?.child.exitCode === null && up.child.signalCode === null) up.child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

describe('bulwark up, SIGKILLed', () => {
  it('leaves no process behind: each service stops itself, nats-server ends with it', { timeout: 240_000 }, async () => {
    up = spawnUp(home, cleanEnv());
    await untilPrinted(up, 'Bulwark is up', 180_000);
    const state = readState();
    expect(state.pid).toBe(up.child.pid);
    expect(state.services.map((s) => s.name)).toEqual(['audit-ledger', 'policy', 'key-manager', 'schemapin', 'sandbox-scheduler', 'incident-response']);
    const services = state.services.map((s) => s.pid!);
    started = [...services, state.nats.pid!];
    expect(started.every((pid) => typeof pid === 'number' && isAlive(pid))).toBe(true);

    // No sandbox runtime: the scheduler runs, ready, serving no tier, and its health says so.
    const sandbox = state.services.find((s) => s.name === 'sandbox-scheduler')!;
    const health = (await (await fetch(`http://127.0.0.1:${sandbox.metricsPort}/health`)).json()) as { ready: boolean; tiers: number[]; driver?: string };
    expect(health).toMatchObject({ ready: true, tiers: [], driver: 'none' });
    expect(up.output()).toMatch(/sandbox-scheduler\s+1\s+yes \(no driver: every schedule is refused\)/);
    expect(readFileSync(join(home, 'logs', 'sandbox-scheduler.log'), 'utf8')).toContain('no driver: every schedule is refused');

    const t0 = Date.now();
    process.kill(up.child.pid!, 'SIGKILL');
    await up.exited;
    while (started.some(isAlive) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    const left = state.services.filter((s) => isAlive(s.pid!)).map((s) => `${s.name} (${s.pid})`);
    if (isAlive(state.nats.pid!)) left.push(`nats-server (${state.nats.pid})`);
    expect(left, `still running 10 s after bulwark up was SIGKILLed: ${left.join(', ')}`).toEqual([]);
    console.log(`bulwark up SIGKILLed: every process it started gone ${((Date.now() - t0) / 1000).toFixed(1)} s later`);

    // They stopped themselves cleanly (a log line each), not by a signal from anyone.
    for (const s of state.services) {
      const log = readFileSync(join(home, 'logs', `${s.name}.log`), 'utf8');
      expect(log, s.name).toContain('"signal":"supervisor-gone"');
      expect(log, s.name).toContain(`${s.name}: stopped`);
    }
  });
});
