import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BulwarkError } from '@bulwark/errors';
import { SUPERVISOR_ENV, SUPERVISOR_STDIN } from '@bulwark/service-host';
import { lastLine } from './log-files.js';
import type { ServiceSpec } from './services.js';

export interface SupervisedService {
  readonly spec: ServiceSpec;
  readonly entry: string;
  readonly env: NodeJS.ProcessEnv;
}

export interface SupervisorOptions {
  readonly services: readonly SupervisedService[];
  readonly logsDir: string;
  /** One line for the operator (restarts, exits). */
  readonly say: (line: string) => void;
  /** Called whenever a pid or a restart count changes. */
  readonly onChange: () => void;
  /** Restart backoff: first delay, doubled per consecutive crash up to the maximum. */
  readonly backoffMs?: { readonly first: number; readonly max: number };
  /** How long a stopped service may drain before it is killed (default 10 s). */
  readonly stopTimeoutMs?: number;
}

interface Slot {
  readonly service: SupervisedService;
  readonly logFile: string;
  child: ChildProcess | undefined;
  exit: Promise<void> | undefined;
  restarts: number;
  consecutiveCrashes: number;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
}

/** A service that exited before `up` saw it ready: `up` stops everything and says why. */
export class ServiceStartError extends BulwarkError {}

/**
 * Runs each service as its own process (its own process group, so a terminal's Ctrl-C reaches
 * only `bulwark up`, which stops the services in order), output appended to
 * `<logs>/<service>.log`, its stdin a pipe this process holds (the service stops itself when it
 * closes: `bulwark up` killed leaves nothing running). Before `markStarted()`, an exit is fatal (`failed` resolves with a
 * `ServiceStartError` naming the service and the last line it wrote); after, a crashed
 * service is restarted with backoff and the operator is told.
 */
export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #slots: Slot[];
  #started = false;
  #stopping = false;
  #fail: ((error: ServiceStartError) => void) | undefined;
  /** Rejects when a service exits before start-up completed. */
  readonly failed: Promise<never>;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#slots = options.services.map((service) => ({
      service,
      logFile: join(options.logsDir, `${service.spec.name}.log`),
      child: undefined,
      exit: undefined,
      restarts: 0,
      consecutiveCrashes: 0,
      startedAt: 0,
      timer: undefined,
    }));
    this.failed = new Promise<never>((_, reject) => {
      this.#fail = reject;
    });
    this.failed.catch(() => undefined);
    // If this process ends by an exception, leave nothing behind.
    process.once('exit', () => this.#killAll('SIGKILL'));
  }

  /** Starts the named services (default: every one not started yet). */
  start(names?: readonly string[]): void {
    for (const slot of this.#slots) {
      if (slot.child === undefined && (names === undefined || names.includes(slot.service.spec.name))) this.#spawn(slot);
    }
  }

  /** From now on a crash means restart, not failure. */
  markStarted(): void {
    this.#started = true;
  }

  pids(): { name: string; pid: number | undefined; restarts: number }[] {
    return this.#slots.map((s) => ({ name: s.service.spec.name, pid: s.child?.exitCode === null ? s.child.pid : undefined, restarts: s.restarts }));
  }

  logFile(name: string): string | undefined {
    return this.#slots.find((s) => s.service.spec.name === name)?.logFile;
  }

  #spawn(slot: Slot): void {
    const fd = openSync(slot.logFile, 'a', 0o600);
    // stdin is a pipe only this process holds: when it dies, however, the service reads EOF and stops itself.
    const child = spawn(process.execPath, [slot.service.entry], { env: { ...slot.service.env, [SUPERVISOR_ENV]: SUPERVISOR_STDIN }, stdio: ['pipe', fd, fd], detached: true });
    closeSync(fd);
    child.stdin?.on('error', () => undefined);
    slot.child = child;
    slot.startedAt = Date.now();
    child.once('error', () => undefined);
    slot.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        child.stdin?.destroy();
        resolve();
        this.#onExit(slot, code, signal);
      }),
    );
    this.#o.onChange();
  }

  #onExit(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    this.#o.onChange();
    if (this.#stopping) return;
    const name = slot.service.spec.name;
    const why = `${code === null ? `signal ${signal}` : `code ${code}`}: ${lastLine(slot.logFile) ?? 'no output'}`;
    if (!this.#started) {
      this.#fail?.(new ServiceStartError('E_SERVICE_START', `${name} exited at start (${why}); log ${slot.logFile}`, { service: name, logFile: slot.logFile }));
      return;
    }
    const { first, max } = this.#o.backoffMs ?? { first: 500, max: 30_000 };
    // A service that ran a minute before crashing starts its backoff over.
    if (Date.now() - slot.startedAt > 60_000) slot.consecutiveCrashes = 0;
    const delay = Math.min(max, first * 2 ** slot.consecutiveCrashes);
    slot.consecutiveCrashes++;
    slot.restarts++;
    this.#o.say(`bulwark up: ${name} exited (${why}); restarting in ${(delay / 1000).toFixed(1)} s (restart ${slot.restarts})`);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (!this.#stopping) this.#spawn(slot);
    }, delay);
  }

  /** SIGTERM to every service, in reverse order of the list; SIGKILL after the timeout. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const slot of this.#slots) if (slot.timer !== undefined) clearTimeout(slot.timer);
    for (const slot of [...this.#slots].reverse()) {
      const child = slot.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        this.#o.say(`bulwark up: ${slot.service.spec.name} did not stop within ${(this.#o.stopTimeoutMs ?? 10_000) / 1000} s; killed`);
        child.kill('SIGKILL');
      }, this.#o.stopTimeoutMs ?? 10_000);
      await slot.exit;
      clearTimeout(timer);
    }
  }

  #killAll(signal: NodeJS.Signals): void {
    for (const slot of this.#slots) {
      if (slot.child !== undefined && slot.child.exitCode === null && slot.child.signalCode === null) slot.child.kill(signal);
    }
  }
}
