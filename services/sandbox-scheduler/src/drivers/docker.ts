import { Writable } from 'node:stream';
import Docker from 'dockerode';
import { SandboxRuntimeError } from '../errors.js';
import { specHash, type OciSpec } from '../oci/spec.js';
import type { SeccompProfile } from '../oci/seccomp.js';
import type { Tier } from '../risk/tier.js';
import { adaptForRunsc, RUNSC_KNOWN_LIMITS } from './runsc.js';
import { signsFromExit } from '../monitor/signs.js';
import type { DriverStatus, LimitKind, RunRequest, SandboxDriver, SandboxRun } from './types.js';

export interface DockerDriverOptions {
  /** The engine's socket (default /var/run/docker.sock). */
  readonly socketPath?: string;
  /** The image workloads run in (imported from a rootfs tarball: no registry is reached). */
  readonly image: string;
  readonly tier: Tier;
  /** For Tier 2: the name runsc is registered under in the engine's `runtimes` (default runsc). */
  readonly runscRuntime?: string;
}

interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
  noNewPrivileges: boolean;
  capabilities: { bounding: string[] };
}
interface Resources {
  memory?: { limit: number; swap: number };
  cpu?: { quota: number; period: number };
  pids?: { limit: number };
}

/**
 * The Docker Engine form of the one spec (never a second list of hardenings): the engine's
 * create options are read off the OCI spec the builder made, field for field.
 */
export function dockerCreateOptions(spec: OciSpec, options: { id: string; image: string; runtime?: string }): Docker.ContainerCreateOptions {
  const proc = spec.process as unknown as ProcessSpec;
  const resources = spec.linux['resources'] as Resources;
  const seccomp = spec.linux['seccomp'] as SeccompProfile | undefined;
  const tmpfs: Record<string, string> = {};
  for (const m of spec.mounts) {
    const dest = String(m['destination']);
    if (m['type'] === 'tmpfs' && !dest.startsWith('/dev')) tmpfs[dest] = (m['options'] as string[]).join(',');
  }
  const security = [...(proc.noNewPrivileges ? ['no-new-privileges:true'] : []), ...(seccomp === undefined ? [] : [`seccomp=${JSON.stringify(seccomp)}`])];
  return {
    name: options.id,
    Image: options.image,
    Cmd: proc.args,
    Env: proc.env,
    WorkingDir: proc.cwd,
    User: `${proc.user.uid}:${proc.user.gid}`,
    Hostname: spec.hostname,
    Labels: { 'bulwark.sandbox': options.id },
    Tty: false,
    AttachStdout: true,
    AttachStderr: true,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: spec.root.readonly,
      CapDrop: ['ALL'],
      CapAdd: proc.capabilities.bounding.map((c) => c.replace(/^CAP_/, '')),
      SecurityOpt: security,
      ...(resources.memory === undefined ? {} : { Memory: resources.memory.limit, MemorySwap: resources.memory.swap }),
      ...(resources.cpu === undefined ? {} : { NanoCpus: Math.round((resources.cpu.quota / resources.cpu.period) * 1e9) }),
      ...(resources.pids === undefined ? {} : { PidsLimit: resources.pids.limit }),
      Tmpfs: tmpfs,
      IpcMode: 'private',
      ...(options.runtime === undefined ? {} : { Runtime: options.runtime }),
    },
  };
}

class Sink extends Writable {
  readonly chunks: Buffer[] = [];
  size = 0;
  constructor(
    private readonly max: number,
    private readonly onChunk: (c: Buffer) => void,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.onChunk(chunk);
    if (this.size < this.max) {
      this.chunks.push(chunk.subarray(0, this.max - this.size));
      this.size += Math.min(chunk.length, this.max - this.size);
    }
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Docker Engine API driver: Tier 1 with the default runtime (runc), Tier 2 with runsc registered as a runtime. */
export class DockerDriver implements SandboxDriver {
  readonly name = 'docker' as const;
  readonly tier: Tier;
  private readonly docker: Docker;

  constructor(private readonly options: DockerDriverOptions) {
    this.tier = options.tier;
    this.docker = new Docker({ socketPath: options.socketPath ?? '/var/run/docker.sock' });
  }

  private runtime(): string | undefined {
    return this.tier === 2 ? (this.options.runscRuntime ?? 'runsc') : undefined;
  }

  async detect(): Promise<DriverStatus> {
    const base = { driver: this.name, tier: this.tier, knownLimits: this.tier === 2 ? RUNSC_KNOWN_LIMITS : [] };
    try {
      const version = await this.docker.version();
      const info = (await this.docker.info()) as { Runtimes?: Record<string, unknown> };
      const runtime = this.runtime();
      if (runtime !== undefined && info.Runtimes?.[runtime] === undefined) return { ...base, available: false, reason: `the engine has no runtime named ${runtime}` };
      await this.docker.getImage(this.options.image).inspect();
      return { ...base, available: true, version: `Docker Engine ${version.Version}${runtime === undefined ? '' : ` with ${runtime}`}` };
    } catch (e) {
      return { ...base, available: false, reason: `Docker Engine at ${this.options.socketPath ?? '/var/run/docker.sock'}: ${(e as Error).message.split('\n')[0] ?? ''}` };
    }
  }

  async run(request: RunRequest): Promise<SandboxRun> {
    const spec = this.tier === 2 ? adaptForRunsc(request.spec) : request.spec;
    const runtime = this.runtime();
    const create = dockerCreateOptions(spec, { id: request.id, image: this.options.image, ...(runtime === undefined ? {} : { runtime }) });
    const started = performance.now();
    let firstOutputAt: number | undefined;
    const max = request.maxOutputBytes ?? 1024 * 1024;
    const out = new Sink(max, (c) => {
      firstOutputAt ??= performance.now();
      request.onOutput?.('stdout', c);
    });
    const err = new Sink(max, (c) => {
      firstOutputAt ??= performance.now();
      request.onOutput?.('stderr', c);
    });
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(create);
    } catch (e) {
      throw new SandboxRuntimeError('E_SANDBOX_RUNTIME', `sandbox ${request.id}: the engine refused to create it: ${(e as Error).message}`, { id: request.id });
    }
    let wallClockHit = false;
    try {
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      const ended = new Promise<void>((resolve) => stream.once('end', () => resolve()));
      this.docker.modem.demuxStream(stream, out, err);
      await container.start();
      const timer = setTimeout(() => {
        wallClockHit = true;
        void container.kill().catch(() => undefined);
      }, request.limits.wallClockMs);
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      clearTimeout(timer);
      await Promise.race([ended, new Promise((r) => setTimeout(r, 1000))]);
      const state = (await container.inspect()).State;
      const exceeded: LimitKind[] = [];
      if (state.OOMKilled || (this.tier === 2 && StatusCode === 137 && !wallClockHit)) exceeded.push('memory');
      if (wallClockHit) exceeded.push('wall_clock');
      return {
        id: request.id,
        driver: this.name,
        tier: this.tier,
        exitCode: StatusCode,
        stdout: out.text(),
        stderr: err.text(),
        truncated: out.size >= max || err.size >= max,
        specHash: specHash(spec),
        runtimeFlags: ['docker', 'create', ...(runtime === undefined ? [] : [`--runtime=${runtime}`]), `--network=${String(create.HostConfig?.NetworkMode)}`],
        limits: request.limits,
        limitsExceeded: exceeded,
        usage: {},
        // The engine's shim starts the container, not us: no audit login uid, so only the exit status tells.
        escapeSigns: signsFromExit(StatusCode, undefined),
        ...(firstOutputAt === undefined ? {} : { firstOutputMs: firstOutputAt - started }),
        durationMs: performance.now() - started,
        warm: false,
      };
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  async terminate(id: string): Promise<void> {
    await this.docker.getContainer(id).remove({ force: true }).catch((e: { statusCode?: number }) => {
      if (e.statusCode !== 404) throw e;
    });
  }

  async list(): Promise<readonly string[]> {
    const all = await this.docker.listContainers({ filters: { label: ['bulwark.sandbox'] } });
    return all.map((c) => c.Labels['bulwark.sandbox'] ?? c.Id);
  }
}
