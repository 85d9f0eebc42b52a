import { execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, writeFileSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SandboxRuntimeError } from '../errors.js';
import { readUsage } from '../drivers/cgroup.js';
import type { OciRuntimeDriver } from '../drivers/oci-runtime.js';
import { execRuntime, OutputCollector, spawn } from '../drivers/process.js';
import type { LimitKind, SandboxRun } from '../drivers/types.js';
import { withAuditLoginUid } from '../monitor/kernel-log.js';
import { mergeSigns, signsFromExit, type EscapeSign } from '../monitor/signs.js';
import { specHash, type OciSpec, type SandboxLimits } from '../oci/spec.js';

/**
 * The launcher a warm container is created with: the workload is not known at create time, so the
 * container's first process is the rootfs's shell, blocked in the runtime's exec fifo until
 * `start`. It then reads one shell-quoted command line from stdin (a FIFO only the pool writes),
 * runs it with stdin from /dev/null and fd 3 closed (the workload cannot forge its exit status),
 * and writes the status to fd 3, which only the pool reads.
 */
export const LAUNCHER_ARGS = ['/bin/sh', '-c', 'read -r cmd; eval "$cmd" </dev/null 3>&-; echo $? >&3'] as const;


export interface WarmPoolOptions {
  readonly driver: OciRuntimeDriver;
  /** Containers kept created-but-not-started (default 2). */
  readonly size?: number;
  /** The spec of each warm container, given its id (args are replaced by LAUNCHER_ARGS). */
  readonly specFor: (id: string) => OciSpec;
  readonly limits: SandboxLimits;
  readonly idPrefix?: string;
  readonly onError?: (error: unknown) => void;
}

interface Warm {
  readonly id: string;
  readonly spec: OciSpec;
  readonly child: ChildProcess;
  /** The FIFO the launcher reads its command line from. */
  readonly fifo: string;
  /** The audit login uid the container was created with (its seccomp kills in the kernel log). */
  readonly auid?: number;
}

/** Single-quotes each argument for the launcher's `eval` (`'` becomes `'\''`). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
}

/**
 * A small pool of created-but-not-started containers for one tier (`runc create` / `start`),
 * refilled in the background; a scheduled workload then costs one `start` instead of a full
 * `run`. Each container is used once and deleted after.
 */
export class WarmPool {
  private readonly ready: Warm[] = [];
  private creating = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private seq = 0;
  private stopped = false;
  private readonly size: number;

  constructor(private readonly options: WarmPoolOptions) {
    if (options.driver.name !== 'runc') {
      // runsc 20221219: `create` has no --preserve-fds and `wait` loses the exit status once the
      // sandbox has ended, so a warm Tier 2 container could not report how its workload exited.
      throw new SandboxRuntimeError('E_SANDBOX_WARM', `warm pool: only runc containers can be kept warm (${options.driver.name} runs cold)`, { driver: options.driver.name });
    }
    this.size = options.size ?? 2;
  }

  get available(): number {
    return this.ready.length;
  }

  /** Starts filling the pool; resolves when it is full (or a create failed). */
  async fill(): Promise<void> {
    const wanted = this.size - this.ready.length - this.creating;
    for (let i = 0; i < wanted; i++) {
      const p = this.createOne().finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
    await Promise.all([...this.inFlight]);
  }

  private async createOne(): Promise<void> {
    const { driver } = this.options;
    const id = `${this.options.idPrefix ?? `warm-${driver.name}-${process.pid}`}-${this.seq++}`;
    const base = this.options.specFor(id);
    const spec: OciSpec = { ...base, process: { ...base.process, args: [...LAUNCHER_ARGS] } };
    const adapted = driver.options.adapt?.(spec) ?? spec;
    this.creating++;
    let auid: number | undefined;
    let kept = false;
    try {
      const bundle = driver.writeBundle(id, adapted);
      // Node destroys a child's stdin pipe when the child (here `create`) exits, so the launcher's
      // stdin is a FIFO opened read-write for the container, and written later by path.
      const fifo = join(bundle, 'command.fifo');
      execFileSync('mkfifo', ['-m', '0600', fifo]);
      const fd = openSync(fifo, constants.O_RDWR);
      const args = [...driver.globals(), 'create', '--bundle', bundle, '--preserve-fds', '1', id];
      auid = driver.options.kernelLog?.tag();
      const command = auid === undefined ? { binary: driver.options.binary, args } : withAuditLoginUid(auid, driver.options.binary, args);
      const child = spawn(command.binary, command.args, { stdio: [fd, 'pipe', 'pipe', 'pipe'] });
      const createErr: Buffer[] = [];
      child.stderr?.on('data', (c: Buffer) => createErr.push(c));
      closeSync(fd);
      const code = await new Promise<number>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) {
        await driver.remove(id).catch(() => undefined);
        throw new SandboxRuntimeError('E_SANDBOX_RUNTIME', `warm pool: ${driver.name} create ${id} exited ${code}: ${Buffer.concat(createErr).toString('utf8').trim().split('\n')[0] ?? ''}`, { id });
      }
      child.stderr?.removeAllListeners('data');
      if (this.stopped) {
        await driver.remove(id);
        return;
      }
      this.ready.push({ id, spec: adapted, child, fifo, ...(auid === undefined ? {} : { auid }) });
      kept = true;
    } finally {
      this.creating--;
      if (!kept && auid !== undefined) driver.options.kernelLog?.take(auid);
    }
  }

  /** Runs argv in a warm container, or returns undefined when none is ready (the caller runs cold). */
  async run(argv: readonly string[], options: { onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void; maxOutputBytes?: number; onId?: (id: string) => void } = {}): Promise<SandboxRun | undefined> {
    const warm = this.ready.shift();
    if (warm === undefined) return undefined;
    options.onId?.(warm.id);
    this.refill();
    const { driver, limits } = this.options;
    const started = performance.now();
    const output = new OutputCollector(options.maxOutputBytes ?? 1024 * 1024, options.onOutput);
    output.attach(warm.child);
    const status = collect(warm.child.stdio[3] as Readable);
    const closed = Promise.all([ended(warm.child.stdout), ended(warm.child.stderr)]);
    writeFileSync(warm.fifo, `${shellQuote(argv)}\n`);
    let wallClockHit = false;
    const timer = setTimeout(() => {
      wallClockHit = true;
      void driver.kill(warm.id);
    }, limits.wallClockMs);
    const signs: EscapeSign[] = [];
    let result: Omit<SandboxRun, 'escapeSigns'>;
    try {
      await this.start(warm.id);
      await closed;
      const reported = Number.parseInt((await status).trim(), 10);
      // No status on fd 3: the launcher itself was killed (memory limit, wall clock).
      const exitCode = Number.isInteger(reported) ? reported : 137;
      await this.waitStopped(warm.id);
      const usage = readUsage(String(warm.spec.linux['cgroupsPath']));
      const exceeded = new Set<LimitKind>(driver.options.interpret?.({ exitCode, stderr: output.text('stderr'), usage, spec: warm.spec, killedByUs: wallClockHit }) ?? []);
      if ((usage.oomKills ?? 0) > 0) exceeded.add('memory');
      if ((usage.pidsRefused ?? 0) > 0) exceeded.add('pids');
      if (wallClockHit) exceeded.add('wall_clock');
      result = {
        id: warm.id,
        driver: driver.name,
        tier: driver.tier,
        exitCode,
        stdout: output.text('stdout'),
        stderr: output.text('stderr'),
        truncated: output.truncated,
        specHash: specHash(warm.spec),
        runtimeFlags: [driver.options.binary, ...driver.globals(), 'create', '--preserve-fds', '1'],
        limits,
        limitsExceeded: [...exceeded],
        usage,
        ...(output.firstOutputAt === undefined ? {} : { firstOutputMs: output.firstOutputAt - started }),
        durationMs: performance.now() - started,
        warm: true,
      };
    } finally {
      clearTimeout(timer);
      await driver.remove(warm.id);
      if (warm.auid !== undefined) signs.push(...(driver.options.kernelLog?.take(warm.auid) ?? []));
    }
    return { ...result, escapeSigns: mergeSigns([...signs, ...signsFromExit(result.exitCode, result.usage.pidsRefused)]) };
  }

  /**
   * What `runc start` does (runc 1.x, libcontainer `exec()`): open the container's exec fifo for
   * reading, read the byte `runc init` writes once it is ready to execve, and remove the fifo (so
   * `runc state` says running). Doing it in process saves starting the runc binary, which is most
   * of a warm start. A missing fifo (another runc layout) falls back to `runc start`.
   */
  private async start(id: string): Promise<void> {
    const { driver } = this.options;
    const fifo = join(driver.options.stateRoot, id, 'exec.fifo');
    let handle: FileHandle | undefined;
    try {
      handle = await open(fifo, constants.O_RDONLY);
    } catch {
      const start = await execRuntime(driver.options.binary, [...driver.globals(), 'start', id]);
      if (start.code !== 0) throw new SandboxRuntimeError('E_SANDBOX_RUNTIME', `warm pool: ${driver.name} start ${id} failed: ${start.stderr.trim()}`, { id });
      return;
    }
    try {
      const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, null);
      if (bytesRead !== 1) throw new SandboxRuntimeError('E_SANDBOX_RUNTIME', `warm pool: ${id} did not signal readiness on its exec fifo`, { id });
    } finally {
      await handle.close();
      await unlink(fifo).catch(() => undefined);
    }
  }

  private async waitStopped(id: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const s = await this.options.driver.state(id);
      if (s === undefined || s.status === 'stopped') return;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private refill(): void {
    if (this.stopped) return;
    this.fill().catch((e: unknown) => this.options.onError?.(e));
  }

  /** Deletes every warm container; nothing created by the pool outlives this. */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.creating > 0) await new Promise((r) => setTimeout(r, 10));
    const all = this.ready.splice(0);
    await Promise.all(all.map(async (w) => {
      await this.options.driver.remove(w.id);
      if (w.auid !== undefined) this.options.driver.options.kernelLog?.take(w.auid);
    }));
  }
}

function collect(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.once('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function ended(stream: Readable | null): Promise<void> {
  if (stream === null) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', () => resolve());
  });
}
