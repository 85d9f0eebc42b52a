// The `bulwark` CLI as an operator runs it, for the tests that start a whole system (start,
// start-kill, start-errors, recover): one way to run a command, to spawn `bulwark up` (or
// `npm start`) in its own process group, and to wait for what it prints.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = join(ROOT, 'libs/cli/bin/bulwark.js');

/** What would point a child at the machine's shared servers or at another home: these tests bring their own. */
const MACHINE_SETTINGS = ['NATS_URL', 'DATABASE_URL', 'SYMBIONT_KEK', 'SYMBIONT_KEK_FILE', 'SYMBIONT_HOME', 'SYMBIONT_KEY_DIR', 'SYMBIONT_ROOT_PUBLIC_KEY', 'OTEL_EXPORTER_OTLP_ENDPOINT'];

/** This process's environment without MACHINE_SETTINGS, plus `extra`. */
export function isolatedEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of MACHINE_SETTINGS) delete env[name];
  return { ...env, ...extra };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `bulwark <args>` to its end (killed after `timeoutMs`); never rejects: the exit code says. */
export function runBulwark(args: readonly string[], options: { readonly cwd?: string; readonly env: NodeJS.ProcessEnv; readonly timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd ?? ROOT, env: options.env, timeout: options.timeoutMs ?? 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

export interface Spawned {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr interleaved. */
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `command args` in its own process group (as a terminal runs it: a signal to `-pid` reaches all it started). */
export function spawnGroup(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
}

/**
 * `bulwark up --dir <home>`. Under the whole suite two cores are shared by many tests: up's own
 * wait for readiness is given room (150 s; the tests print the time it took).
 */
export function spawnUp(home: string, env: NodeJS.ProcessEnv, extraArgs: readonly string[] = []): Spawned {
  return spawnGroup(process.execPath, [CLI, 'up', '--dir', home, ...extraArgs, '--ready-timeout', '150'], env);
}

/** Resolves once `text` is in its output; throws with the output if it exits or `budgetMs` passes first. */
export async function untilPrinted(spawned: Spawned, text: string, budgetMs = 170_000): Promise<void> {
  const deadline = Date.now() + budgetMs;
  while (!spawned.output().includes(text)) {
    if (Date.now() > deadline || spawned.child.exitCode !== null) throw new Error(`never printed ${JSON.stringify(text)}: ${spawned.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a process was started with (`/proc/<pid>/environ`). */
export function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((e) => e.includes('='));
  return Object.fromEntries(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}
