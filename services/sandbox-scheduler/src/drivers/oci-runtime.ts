import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxInputError, SandboxRuntimeError } from '../errors.js';
import { specHash, type OciSpec } from '../oci/spec.js';
import type { Tier } from '../risk/tier.js';
import { withAuditLoginUid, type KernelLog } from '../monitor/kernel-log.js';
import { signsFromDebugLogs, STRACE_LOG_ROLL_BYTES, straceFlags } from '../monitor/gvisor-strace.js';
import { mergeSigns, signsFromExit, type EscapeSign } from '../monitor/signs.js';
import { readUsage } from './cgroup.js';
import { execRuntime, OutputCollector, spawn } from './process.js';
import type { DriverName, DriverStatus, LimitKind, RunRequest, SandboxDriver, SandboxRun, SandboxUsage } from './types.js';

export interface OciRuntimeOptions {
  readonly name: Extract<DriverName, 'runc' | 'runsc'>;
  readonly tier: Tier;
  /** The runtime binary (a path or a name in PATH). */
  readonly binary: string;
  /** The runtime's state directory (`--root`); one per scheduler. */
  readonly stateRoot: string;
  /** Where bundles (config.json per sandbox) are written. */
  readonly bundleRoot: string;
  /** Global flags after `--root` (runsc's gVisor options). */
  readonly globalFlags: readonly string[];
  /** Whether `run --keep` exists (runc): usage is then read from the cgroup before delete. */
  readonly keep: boolean;
  readonly knownLimits: readonly string[];
  /** Adjusts the spec for this runtime's known limits (stated in knownLimits). */
  readonly adapt?: (spec: OciSpec) => OciSpec;
  /** Reads what the runtime says about a finished run that the cgroup cannot tell. */
  readonly interpret?: (run: { exitCode: number; stderr: string; usage: SandboxUsage; spec: OciSpec; killedByUs: boolean }) => readonly LimitKind[];
  /** runc: the kernel log, for the seccomp kills of each sandbox (each runtime process gets its own audit login uid). */
  readonly kernelLog?: KernelLog;
  /** runsc: strace the write and ownership syscalls into a per-run debug log, for refused writes and capability use. */
  readonly strace?: boolean;
}

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const DEFAULT_MAX_OUTPUT = 1024 * 1024;

/**
 * runc and runsc share the OCI runtime command line: `<runtime> --root S [flags] run --bundle B ID`,
 * `kill ID KILL`, `delete --force ID`. This driver writes the bundle, runs it in the foreground
 * (the runtime returns the workload's exit status), kills it by id past its wall clock, reads
 * its cgroup usage, and always deletes it.
 */
export class OciRuntimeDriver implements SandboxDriver {
  readonly name: Extract<DriverName, 'runc' | 'runsc'>;
  readonly tier: Tier;
  /** Runs in progress by id: terminate waits for them, so the run's own clean-up reads the status. */
  private readonly active = new Map<string, Promise<unknown>>();
  private readonly terminated = new Set<string>();

  constructor(readonly options: OciRuntimeOptions) {
    this.name = options.name;
    this.tier = options.tier;
    mkdirSync(options.stateRoot, { recursive: true, mode: 0o700 });
    mkdirSync(options.bundleRoot, { recursive: true, mode: 0o700 });
  }

  /** `[--root S, ...flags]`: the prefix of every runtime command. */
  globals(): string[] {
    return ['--root', this.options.stateRoot, ...this.options.globalFlags];
  }

  async detect(): Promise<DriverStatus> {
    const { code, stdout, stderr } = await execRuntime(this.options.binary, ['--version'], 5000);
    const base = { driver: this.name, tier: this.tier, knownLimits: this.options.knownLimits };
    if (code !== 0) return { ...base, available: false, reason: `${this.options.binary} --version failed: ${(stderr || stdout).trim().split('\n')[0] ?? ''}` };
    return { ...base, available: true, version: stdout.trim().split('\n')[0] ?? '' };
  }

  /** Writes `<bundleRoot>/<id>/config.json` (and `owner`: this process's pid) and returns the bundle directory. */
  writeBundle(id: string, spec: OciSpec): string {
    if (!ID.test(id)) throw new SandboxInputError('E_SANDBOX_ID', `sandbox: id ${JSON.stringify(id)} is not a valid container id`, {});
    const dir = join(this.options.bundleRoot, id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
    writeFileSync(join(dir, OWNER_FILE), String(process.pid));
    return dir;
  }

  /**
   * Deletes the containers whose scheduler died without cleaning up (killed with SIGKILL: its warm
   * containers stay created, a cold run goes on with nobody to enforce its wall clock). Several
   * schedulers may share a state root, so only a container whose `owner` pid is gone is touched.
   */
  async reapOrphans(): Promise<string[]> {
    const reaped: string[] = [];
    for (const id of await this.list()) {
      let owner: number;
      try {
        owner = Number(readFileSync(join(this.options.bundleRoot, id, OWNER_FILE), 'utf8'));
      } catch {
        continue;
      }
      if (!Number.isSafeInteger(owner) || owner <= 0 || owner === process.pid || isAlive(owner)) continue;
      await this.remove(id);
      reaped.push(id);
    }
    return reaped;
  }

  removeBundle(id: string): void {
    rmSync(join(this.options.bundleRoot, id), { recursive: true, force: true });
  }

  run(request: RunRequest): Promise<SandboxRun> {
    const running = this.runOnce(request);
    this.active.set(request.id, running.catch(() => undefined));
    return running.finally(() => {
      this.active.delete(request.id);
      this.terminated.delete(request.id);
    });
  }

  private async runOnce(request: RunRequest): Promise<SandboxRun> {
    const spec = this.options.adapt?.(request.spec) ?? request.spec;
    const started = performance.now();
    const bundle = this.writeBundle(request.id, spec);
    const logDir = join(bundle, 'log');
    const monitorFlags = this.options.strace === true ? straceFlags(logDir) : [];
    const args = [...this.globals(), ...monitorFlags, 'run', ...(this.options.keep ? ['--keep'] : []), '--bundle', bundle, request.id];
    const auid = this.options.kernelLog?.tag();
    const command = auid === undefined ? { binary: this.options.binary, args } : withAuditLoginUid(auid, this.options.binary, args);
    const output = new OutputCollector(request.maxOutputBytes ?? DEFAULT_MAX_OUTPUT, request.onOutput);
    let wallClockHit = false;
    let exitCode: number;
    let usage: SandboxUsage = {};
    const signs: EscapeSign[] = [];
    try {
      exitCode = await new Promise<number>((resolve, reject) => {
        const child = spawn(command.binary, command.args, { stdio: ['ignore', 'pipe', 'pipe'] });
        output.attach(child);
        const timer = setTimeout(() => {
          wallClockHit = true;
          void this.kill(request.id);
        }, request.limits.wallClockMs);
        const roll = this.options.strace === true ? setInterval(() => signs.push(...signsFromDebugLogs(logDir, STRACE_LOG_ROLL_BYTES)), 1000) : undefined;
        child.once('close', () => clearInterval(roll));
        child.once('error', (e) => {
          clearInterval(roll);
          clearTimeout(timer);
          reject(new SandboxRuntimeError('E_SANDBOX_RUNTIME', `sandbox ${request.id}: cannot start ${this.options.binary}: ${e.message}`, { id: request.id }));
        });
        child.once('close', (code, signal) => {
          clearTimeout(timer);
          resolve(code ?? 128 + signalNumber(signal));
        });
      });
      if (this.options.keep) usage = readUsage(String(spec.linux['cgroupsPath']));
      if (this.options.strace === true) signs.push(...signsFromDebugLogs(logDir));
    } finally {
      await this.remove(request.id);
      // After the delete: the kernel's audit thread has printed the kills of the container's processes.
      if (auid !== undefined) signs.push(...(this.options.kernelLog?.take(auid) ?? []));
    }
    const stderr = output.text('stderr');
    const limitsExceeded = new Set<LimitKind>(this.options.interpret?.({ exitCode, stderr, usage, spec, killedByUs: wallClockHit || this.terminated.has(request.id) }) ?? []);
    if ((usage.oomKills ?? 0) > 0) limitsExceeded.add('memory');
    if ((usage.pidsRefused ?? 0) > 0) limitsExceeded.add('pids');
    if (wallClockHit) limitsExceeded.add('wall_clock');
    return {
      id: request.id,
      driver: this.name,
      tier: this.tier,
      exitCode,
      stdout: output.text('stdout'),
      stderr,
      truncated: output.truncated,
      specHash: specHash(spec),
      runtimeFlags: [this.options.binary, ...this.globals(), ...monitorFlags.map((f) => (f.startsWith('--debug-log=') ? '--debug-log=<bundle>/log/' : f)), 'run', ...(this.options.keep ? ['--keep'] : [])],
      limits: request.limits,
      limitsExceeded: [...limitsExceeded],
      usage,
      escapeSigns: mergeSigns([...signs, ...signsFromExit(exitCode, usage.pidsRefused)]),
      ...(output.firstOutputAt === undefined ? {} : { firstOutputMs: output.firstOutputAt - started }),
      durationMs: performance.now() - started,
      warm: false,
    };
  }

  /** SIGKILL to every process of the container, by id. */
  async kill(id: string): Promise<void> {
    await execRuntime(this.options.binary, [...this.globals(), 'kill', ...(this.name === 'runc' ? ['--all'] : []), id, 'KILL']);
  }

  /** `delete --force` (kills what is left) and the bundle; an unknown id is not an error. */
  async remove(id: string): Promise<void> {
    const r = await execRuntime(this.options.binary, [...this.globals(), 'delete', '--force', id]);
    this.removeBundle(id);
    if (r.code !== 0 && !/does not exist|not exist|cannot find|not found/i.test(r.stderr)) {
      throw new SandboxRuntimeError('E_SANDBOX_RUNTIME', `sandbox ${id}: ${this.options.binary} delete failed: ${r.stderr.trim().split('\n')[0] ?? ''}`, { id });
    }
  }

  /**
   * Kills a sandbox by id. A run in progress is waited for (at most 10 s), so that it collects
   * the status and deletes the container itself; then the container is deleted in any case.
   */
  async terminate(id: string): Promise<void> {
    const running = this.active.get(id);
    if (running !== undefined) this.terminated.add(id);
    await this.kill(id);
    if (running !== undefined) await Promise.race([running, new Promise((r) => setTimeout(r, 10_000))]);
    await this.remove(id);
  }

  async list(): Promise<readonly string[]> {
    const r = await execRuntime(this.options.binary, [...this.globals(), 'list', '--format', 'json']);
    if (r.code !== 0) return [];
    const parsed = JSON.parse(r.stdout || 'null') as { id: string }[] | null;
    return (parsed ?? []).map((c) => c.id);
  }

  /** The state the runtime reports for an id, or undefined when it has none. */
  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    const r = await execRuntime(this.options.binary, [...this.globals(), 'state', id]);
    if (r.code !== 0) return undefined;
    return JSON.parse(r.stdout) as { status: string; pid: number };
  }
}

const OWNER_FILE = 'owner';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const SIGNALS: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGSEGV: 11, SIGABRT: 6, SIGHUP: 1 };
function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : (SIGNALS[signal] ?? 1);
}
