import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SUPERVISOR_ENV, SupervisorModeError, watchSupervisor } from './supervisor-watch.js';

const scratch = mkdtempSync(join(tmpdir(), 'service-host-watch-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the supervisor watch', () => {
  it('is off unless the supervisor says so, and refuses a mode it does not know', () => {
    expect(watchSupervisor({}, new PassThrough())).toBeUndefined();
    expect(() => watchSupervisor({ [SUPERVISOR_ENV]: 'pid' }, new PassThrough())).toThrow(SupervisorModeError);
  });

  it('reports the supervisor gone when its pipe ends, not before', async () => {
    const pipe = new PassThrough();
    const watch = watchSupervisor({ [SUPERVISOR_ENV]: 'stdin' }, pipe)!;
    let gone = false;
    void watch.gone.then(() => (gone = true));
    pipe.write('anything the supervisor writes is ignored');
    await new Promise((r) => setTimeout(r, 50));
    expect(gone).toBe(false);
    pipe.end();
    await watch.gone;
    watch.dispose();
  });

  // The real thing: a supervisor process holding the child's stdin is SIGKILLed; the kernel
  // closes the pipe and the child, which only watches it, sees its supervisor gone.
  it('sees a SIGKILLed supervisor gone (the child exits within 5 s)', { timeout: 20_000 }, async () => {
    const marker = join(scratch, 'gone');
    const child = fileURLToPath(new URL('./supervisor-watch.fixture.ts', import.meta.url));
    const supervisorScript = [
      "const { spawn } = require('node:child_process');",
      `const c = spawn(process.execPath, ['--import', 'tsx', ${JSON.stringify(child)}, ${JSON.stringify(marker)}], { stdio: ['pipe', 'ignore', 'inherit'], env: { ...process.env, ${SUPERVISOR_ENV}: 'stdin' } });`,
      "process.stdout.write(String(c.pid) + '\\n');",
    ].join('\n');
    const supervisor = spawn(process.execPath, ['-e', supervisorScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    const childPid = await new Promise<number>((resolve) => supervisor.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    // Let the child start watching (tsx compiles it first).
    for (let i = 0; i < 100 && !existsSync(`${marker}.ready`); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(`${marker}.ready`)).toBe(true);
    expect(alive(childPid)).toBe(true);
    const t0 = Date.now();
    supervisor.kill('SIGKILL');
    while (alive(childPid) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    expect(alive(childPid)).toBe(false);
    expect(readFileSync(marker, 'utf8')).toBe('supervisor gone');
  });
});
