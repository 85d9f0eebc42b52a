import type { SandboxLimits, OciSpec } from '../oci/spec.js';
import type { Tier } from '../risk/tier.js';
import type { EscapeSign } from '../monitor/signs.js';

export type DriverName = 'runc' | 'runsc' | 'docker' | 'kubernetes';

export interface DriverStatus {
  readonly driver: DriverName;
  readonly tier: Tier;
  readonly available: boolean;
  readonly version?: string;
  /** Why it is not available (binary missing, no engine, ...). */
  readonly reason?: string;
  /** What this runtime does not enforce, or enforces differently, on this host (stated, never hidden). */
  readonly knownLimits: readonly string[];
}

/** A limit the runtime reported as hit. */
export type LimitKind = 'memory' | 'pids' | 'wall_clock';

/** Usage read from the sandbox's cgroup after it exited (v1 or v2), where the runtime exposes it. */
export interface SandboxUsage {
  /** The memory limit the cgroup really had (memory.limit_in_bytes / memory.max): a runtime that did not apply it shows here. */
  readonly memoryLimitBytes?: number;
  readonly memoryPeakBytes?: number;
  /** Usage when read (memory.usage_in_bytes / memory.current). */
  readonly memoryCurrentBytes?: number;
  readonly memoryFailCount?: number;
  readonly oomKills?: number;
  readonly cpuNs?: number;
  readonly pidsCurrent?: number;
  /** The pids limit the cgroup really had (pids.max). */
  readonly pidsLimit?: number;
  /** Times a fork was refused at the pids limit. */
  readonly pidsRefused?: number;
}

export interface SandboxRun {
  readonly id: string;
  readonly driver: DriverName;
  readonly tier: Tier;
  /** The exit code of the workload; 128 + n when a signal n ended it. */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly specHash: string;
  /** The runtime's command line (global flags and the subcommand), as recorded with the run. */
  readonly runtimeFlags: readonly string[];
  readonly limits: SandboxLimits;
  readonly limitsExceeded: readonly LimitKind[];
  readonly usage: SandboxUsage;
  /** Signs of an escape attempt the runtime or kernel reported for this run (none for a benign workload). */
  readonly escapeSigns: readonly EscapeSign[];
  /** From the schedule call to the first byte of output, if any came. */
  readonly firstOutputMs?: number;
  readonly durationMs: number;
  /** Whether the container came from the warm pool. */
  readonly warm: boolean;
}

export interface RunRequest {
  readonly id: string;
  readonly spec: OciSpec;
  readonly limits: SandboxLimits;
  /** Called once with the first output chunk (for timing and streaming). */
  readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  readonly maxOutputBytes?: number;
}

/** Drivers run a spec under one tier's runtime and report what happened. */
export interface SandboxDriver {
  readonly name: DriverName;
  readonly tier: Tier;
  detect(): Promise<DriverStatus>;
  run(request: RunRequest): Promise<SandboxRun>;
  /** Kills and removes a sandbox by its id (the container, not a client process). Idempotent. */
  terminate(id: string): Promise<void>;
  /** Ids of the sandboxes this driver has running now. */
  list(): Promise<readonly string[]>;
  /** Deletes the sandboxes a dead scheduler left behind; returns their ids. */
  reapOrphans?(): Promise<readonly string[]>;
}
