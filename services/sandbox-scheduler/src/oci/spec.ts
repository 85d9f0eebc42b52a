import { createHash } from 'node:crypto';
import { SandboxInputError } from '../errors.js';
import type { Tier } from '../risk/tier.js';
import { defaultSeccompProfile, type SeccompProfile } from './seccomp.js';

/** Limits the runtime enforces (S1.3). */
export interface SandboxLimits {
  readonly memoryBytes: number;
  /** CPU cores (0.5 = half a core: a 50 ms quota per 100 ms period). */
  readonly cpus: number;
  readonly pids: number;
  /** Wall-clock limit; the scheduler kills the container by id past it. */
  readonly wallClockMs: number;
}

/** S1.3: 512 MB, 0.5 CPU; 64 processes and 60 s of wall clock are ours (the seed names none). */
export const TIER1_LIMITS: SandboxLimits = { memoryBytes: 512 * 1024 * 1024, cpus: 0.5, pids: 64, wallClockMs: 60_000 };

/** The non-root user a workload runs as unless asked otherwise (nobody:nogroup). */
export const SANDBOX_USER = { uid: 65534, gid: 65534 } as const;

/** S1.3: every capability dropped but these two. */
export const TIER1_CAPABILITIES = ['CAP_SETUID', 'CAP_SETGID'] as const;

export interface SpecInput {
  /** argv of the workload; args[0] is resolved in the rootfs's PATH. */
  readonly args: readonly string[];
  /** Absolute path of the root filesystem (mounted read-only). */
  readonly rootfs: string;
  readonly limits?: Partial<SandboxLimits>;
  readonly env?: readonly string[];
  readonly cwd?: string;
  readonly user?: { readonly uid: number; readonly gid: number };
  /** noexec, nosuid, nodev tmpfs mounts, only where asked (a read-only root has no other writable place). */
  readonly tmpfs?: readonly { readonly path: string; readonly sizeBytes: number }[];
  /** Extra bind mounts (e.g. the egress proxy's socket); always nosuid, nodev, noexec. */
  readonly binds?: readonly { readonly source: string; readonly destination: string; readonly readonly: boolean }[];
  /** cgroup path, relative to the cgroup roots (`bulwark/<id>`). */
  readonly cgroupsPath: string;
  readonly hostname?: string;
  readonly seccomp?: SeccompProfile;
  /**
   * Join this network namespace (the egress forwarder's: loopback only) instead of a new empty one.
   * Either way the sandbox has no interface but lo.
   */
  readonly networkNamespacePath?: string;
}

/** A subset of the OCI runtime spec (1.0.2) that we write: the fields we set, typed. */
export interface OciSpec {
  readonly ociVersion: '1.0.2';
  readonly process: Record<string, unknown>;
  readonly root: { readonly path: string; readonly readonly: boolean };
  readonly hostname: string;
  readonly mounts: readonly Record<string, unknown>[];
  readonly linux: Record<string, unknown>;
}

const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/tmp', 'TERM=dumb'];

/**
 * The one OCI spec builder (S1.3). Every Tier 1 hardening is here, in one place an auditor can read:
 * - memory limit with swap equal to it (no swap beyond the limit), a CPU quota, a pids limit;
 * - a network namespace of its own with nothing but loopback (network none);
 * - read-only root; /dev, /dev/shm, /proc, /sys mounted nosuid (and noexec, nodev where they can be);
 * - no_new_privileges (a setuid binary gains nothing);
 * - all capabilities dropped but CAP_SETUID/CAP_SETGID, in every set, none ambient;
 * - the default seccomp profile (deploy/seccomp/default.json);
 * - a non-root user; kernel files masked or read-only as runc's own default spec does.
 * Tier 2 runs the same spec under runsc, with gVisor's options as runtime flags (drivers/runsc.ts).
 */
export function buildSpec(input: SpecInput): OciSpec {
  if (input.args.length === 0) throw new SandboxInputError('E_SANDBOX_SPEC', 'sandbox: the workload has no command', {});
  if (!input.rootfs.startsWith('/')) throw new SandboxInputError('E_SANDBOX_SPEC', `sandbox: rootfs must be an absolute path, got ${input.rootfs}`, {});
  const limits = validateLimits({ ...TIER1_LIMITS, ...input.limits });
  const user = input.user ?? SANDBOX_USER;
  const caps = [...TIER1_CAPABILITIES];
  const period = 100_000;
  const mounts: Record<string, unknown>[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
  for (const t of input.tmpfs ?? []) {
    if (!t.path.startsWith('/') || !Number.isSafeInteger(t.sizeBytes) || t.sizeBytes <= 0) {
      throw new SandboxInputError('E_SANDBOX_SPEC', `sandbox: a tmpfs needs an absolute path and a positive size, got ${t.path} ${t.sizeBytes}`, {});
    }
    mounts.push({ destination: t.path, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${t.sizeBytes}`] });
  }
  for (const b of input.binds ?? []) {
    mounts.push({ destination: b.destination, type: 'bind', source: b.source, options: ['rbind', 'nosuid', 'nodev', 'noexec', b.readonly ? 'ro' : 'rw'] });
  }
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, additionalGids: [] },
      args: [...input.args],
      env: [...(input.env ?? DEFAULT_ENV)],
      cwd: input.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }, { type: 'RLIMIT_CORE', hard: 0, soft: 0 }],
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: true },
    hostname: input.hostname ?? 'sandbox',
    mounts,
    linux: {
      cgroupsPath: input.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: limits.memoryBytes, swap: limits.memoryBytes },
        cpu: { quota: Math.round(limits.cpus * period), period },
        pids: { limit: limits.pids },
      },
      namespaces: [{ type: 'pid' }, input.networkNamespacePath === undefined ? { type: 'network' } : { type: 'network', path: input.networkNamespacePath }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      seccomp: input.seccomp ?? defaultSeccompProfile(),
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

export function validateLimits(limits: SandboxLimits): SandboxLimits {
  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new SandboxInputError('E_SANDBOX_SPEC', `sandbox: ${what}`, { limits });
  };
  check(Number.isSafeInteger(limits.memoryBytes) && limits.memoryBytes >= 4 * 1024 * 1024, `memory limit must be an integer of at least 4 MiB, got ${limits.memoryBytes}`);
  check(Number.isFinite(limits.cpus) && limits.cpus >= 0.01 && limits.cpus <= 64, `cpu limit must be from 0.01 to 64 cores, got ${limits.cpus}`);
  check(Number.isSafeInteger(limits.pids) && limits.pids >= 1, `pids limit must be a positive integer, got ${limits.pids}`);
  check(Number.isSafeInteger(limits.wallClockMs) && limits.wallClockMs >= 1, `wall-clock limit must be a positive integer of ms, got ${limits.wallClockMs}`);
  return limits;
}

/** The limits a spec carries (for recording and for the driver's wall clock). */
export function limitsOf(input: SpecInput): SandboxLimits {
  return validateLimits({ ...TIER1_LIMITS, ...input.limits });
}

/** SHA-256 of the spec's canonical JSON (keys sorted): recorded with each run. */
export function specHash(spec: OciSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The tier a spec is run in decides the driver, not the spec: both tiers get every Tier 1 hardening. */
export type TieredSpec = { readonly tier: Tier; readonly spec: OciSpec };
