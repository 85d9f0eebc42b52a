import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { homeAt } from '../home/home.js';
import type { RunState } from '../home/state.js';
import { commandLineOf, findLeftovers, isHomeNatsServer, isServiceProcess, stopLeftovers } from './leftovers.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-leftovers-'));
const home = homeAt(dir);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function state(services: { name: string; pid: number }[]): RunState {
  return {
    format: 'bulwark-up/v1',
    pid: 999_999_999,
    started: new Date().toISOString(),
    nats: { url: 'nats://127.0.0.1:1', managed: true },
    database: { kind: 'pglite', url: 'pglite:x' },
    admin: 'analyst.admin',
    services: services.map((s) => ({ ...s, principal: `svc.${s.name}`, metricsPort: 1, restarts: 0 })),
  };
}

describe('leftovers of a killed bulwark up', () => {
  it('recognises a service by its entry point under node, and the home nats-server by its configuration', () => {
    expect(isServiceProcess(['/usr/bin/node', '/x/services/policy/dist/main.js'], '/x/services/policy/dist/main.js')).toBe(true);
    expect(isServiceProcess(['/usr/bin/node', '/x/other.js'], '/x/services/policy/dist/main.js')).toBe(false);
    expect(isServiceProcess(['/bin/sleep', '/x/services/policy/dist/main.js'], '/x/services/policy/dist/main.js')).toBe(false);
    expect(isServiceProcess(undefined, '/x')).toBe(false);
    expect(isHomeNatsServer(['/usr/sbin/nats-server', '-c', join(home.natsDir, 'nats-server.conf')], home)).toBe(true);
    expect(isHomeNatsServer(['/usr/sbin/nats-server', '-c', '/etc/nats/other.conf'], home)).toBe(false);
    expect(isHomeNatsServer(['/usr/sbin/nats-server'], home)).toBe(false);
  });

  it('stops only the processes that are really ours, whatever pid the state names', async () => {
    const entry = join(dir, 'fake-service.mjs');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(entry, 'setInterval(() => {}, 1000);\n');
    const ours = spawn(process.execPath, [entry], { stdio: 'ignore' });
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 50 && commandLineOf(ours.pid!)?.[1] !== entry; i++) await new Promise((r) => setTimeout(r, 20));
      const found = findLeftovers(home, state([{ name: 'policy', pid: ours.pid! }, { name: 'audit-ledger', pid: stranger.pid! }]), new Map([['policy', entry], ['audit-ledger', entry]]));
      expect(found).toEqual([{ name: 'policy', pid: ours.pid! }]);
      const exited = new Promise((r) => ours.once('exit', r));
      await stopLeftovers(found, 2000);
      await exited;
      expect(stranger.exitCode).toBeNull();
    } finally {
      ours.kill('SIGKILL');
      stranger.kill('SIGKILL');
    }
  });
});
