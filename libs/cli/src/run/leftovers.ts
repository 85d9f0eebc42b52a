/**
 * Processes a killed `bulwark up` left behind (SIGKILL gives it no chance to stop its
 * children): the pids it wrote to `<home>/run/up.json`. The next `bulwark up` on that home
 * stops them before it starts anything, but only the ones that are really ours: a pid is
 * recycled by the system, so each one's command line must still be the service's entry point
 * under this Node, or nats-server with this home's configuration. Anything else is left alone.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sep } from 'node:path';
import { BulwarkError } from '@bulwark/errors';
import type { Home } from '../home/home.js';
import { isAlive, readRunState, type RunState } from '../home/state.js';
import { SERVICES, serviceEntryPoint } from './services.js';

/** A process's argv, or undefined when it is gone or cannot be read. */
export function commandLineOf(pid: number): readonly string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  } catch {
    // No /proc (macOS): ps gives the arguments joined by spaces, enough for paths without them.
    try {
      const text = execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      return text === '' ? undefined : text.split(' ');
    } catch {
      return undefined;
    }
  }
}

export interface Leftover {
  /** A service's name, or `nats-server`. */
  readonly name: string;
  readonly pid: number;
}

/** `node <entry>`: the process the supervisor spawns for a service. */
export function isServiceProcess(argv: readonly string[] | undefined, entry: string): boolean {
  return argv !== undefined && argv.length >= 2 && argv[1] === entry && /(^|[\\/])node(\.exe)?$|^node$/.test(argv[0]!) ;
}

/** `nats-server -c <home>/nats/…`: the server `bulwark up` starts with the home's configuration. */
export function isHomeNatsServer(argv: readonly string[] | undefined, home: Home): boolean {
  if (argv === undefined || !/(^|[\\/])nats-server$/.test(argv[0] ?? '')) return false;
  const config = argv[argv.indexOf('-c') + 1];
  return argv.includes('-c') && config !== undefined && config.startsWith(`${home.natsDir}${sep}`);
}

/**
 * The live processes of a previous run's state that are really ours: each service pid whose
 * command line is that service's entry point, and the managed nats-server of this home.
 */
export function findLeftovers(home: Home, state: RunState, entries: ReadonlyMap<string, string>, self = process.pid): Leftover[] {
  const found: Leftover[] = [];
  for (const service of state.services) {
    const entry = entries.get(service.name);
    if (service.pid === undefined || service.pid === self || entry === undefined || !isAlive(service.pid)) continue;
    if (isServiceProcess(commandLineOf(service.pid), entry)) found.push({ name: service.name, pid: service.pid });
  }
  const nats = state.nats.pid;
  if (state.nats.managed && nats !== undefined && nats !== self && isAlive(nats) && isHomeNatsServer(commandLineOf(nats), home)) found.push({ name: 'nats-server', pid: nats });
  return found;
}

/** SIGTERM to each (services first, the server last, as a stop does), SIGKILL after `graceMs`; resolves when all are gone. */
export async function stopLeftovers(leftovers: readonly Leftover[], graceMs = 10_000): Promise<void> {
  const ordered = [...leftovers.filter((l) => l.name !== 'nats-server'), ...leftovers.filter((l) => l.name === 'nats-server')];
  for (const group of [ordered.filter((l) => l.name !== 'nats-server'), ordered.filter((l) => l.name === 'nats-server')]) {
    for (const l of group) signal(l.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (group.some((l) => isAlive(l.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const l of group) if (isAlive(l.pid)) signal(l.pid, 'SIGKILL');
    const killed = Date.now() + 5000;
    while (group.some((l) => isAlive(l.pid)) && Date.now() < killed) await new Promise((r) => setTimeout(r, 50));
    const left = group.filter((l) => isAlive(l.pid));
    if (left.length > 0) throw new BulwarkError('E_LEFTOVER', `cannot stop ${left.map((l) => `${l.name} (pid ${l.pid})`).join(', ')} left by a previous bulwark up: stop them by hand`, { pids: left.map((l) => l.pid) });
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone meanwhile.
  }
}

/**
 * At start: the processes a previous `bulwark up` on this home left running (it was killed
 * before it could stop them), stopped, with one line saying which. Returns how many.
 */
export async function stopPreviousRun(home: Home, say: (line: string) => void): Promise<number> {
  const previous = readRunState(home);
  if (previous === undefined) return 0;
  const entries = new Map(SERVICES.map((spec) => [spec.name, serviceEntryPoint(spec)]));
  const leftovers = findLeftovers(home, previous, entries);
  if (leftovers.length === 0) return 0;
  say(`bulwark up: a previous run (pid ${previous.pid}) left ${leftovers.map((l) => `${l.name} (pid ${l.pid})`).join(', ')} running: stopping them`);
  await stopLeftovers(leftovers);
  return leftovers.length;
}
