import { randomUUID } from 'node:crypto';
import { SandboxUnavailableError } from '../errors.js';
import type { OciRuntimeDriver } from '../drivers/oci-runtime.js';
import type { DriverStatus, SandboxRun } from '../drivers/types.js';
import { buildSpec, limitsOf, type SandboxLimits, type SpecInput } from '../oci/spec.js';
import { parseAssessment, type RiskAssessment } from '../risk/assessment.js';
import { chooseTier, type RiskThresholds, type Tier, type TierDecision, type TierRequest } from '../risk/tier.js';
import type { WarmPool } from '../warm/pool.js';

export interface SchedulerOptions {
  /** The drivers of this host, by tier (a tier without one is refused, never downgraded). */
  readonly drivers: Partial<Record<Tier, OciRuntimeDriver>>;
  /** Warm pools by tier; used when a workload asks for the pool's limits. */
  readonly pools?: Partial<Record<Tier, WarmPool>>;
  /** Absolute path of the root filesystem workloads run in. */
  readonly rootfs: string;
  readonly thresholds?: RiskThresholds;
  /** `SYMBIONT_DEFAULT_SANDBOX_TIER` as a floor. */
  readonly floor?: Tier;
  /** cgroup parent of every sandbox (default `bulwark`). */
  readonly cgroupParent?: string;
}

export interface ScheduleRequest {
  /** Checked with parseAssessment: the caller's value is never trusted as typed. */
  readonly assessment: unknown;
  readonly tier?: TierRequest;
  readonly args: readonly string[];
  readonly limits?: Partial<SandboxLimits>;
  readonly tmpfs?: SpecInput['tmpfs'];
  readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export interface Scheduled {
  readonly assessment: RiskAssessment;
  readonly decision: TierDecision;
  readonly run: SandboxRun;
}

/**
 * The scheduler's core, without the bus: assess (S1.1), choose the tier (S1.2, floor and request
 * only raise it), build the one hardened spec, run it on that tier's driver (warm when the pool
 * has a container with the same limits), and return what happened.
 */
export class Scheduler {
  private readonly running = new Map<string, { tier: Tier; agentId?: string }>();

  constructor(private readonly options: SchedulerOptions) {}

  assess(input: unknown, request: TierRequest = 'auto'): { assessment: RiskAssessment; decision: TierDecision } {
    const assessment = parseAssessment(input);
    const decision = chooseTier(assessment, {
      ...(this.options.thresholds === undefined ? {} : { thresholds: this.options.thresholds }),
      ...(this.options.floor === undefined ? {} : { floor: this.options.floor }),
      request,
    });
    return { assessment, decision };
  }

  driverFor(tier: Tier): OciRuntimeDriver {
    const driver = this.options.drivers[tier];
    if (driver === undefined) {
      throw new SandboxUnavailableError('E_SANDBOX_NO_DRIVER', `sandbox: no driver on this host provides Tier ${tier}; the workload is not run in a weaker tier`, { tier });
    }
    return driver;
  }

  async detect(): Promise<DriverStatus[]> {
    return Promise.all(Object.values(this.options.drivers).map((d) => d.detect()));
  }

  async schedule(request: ScheduleRequest, agentId?: string): Promise<Scheduled> {
    const { assessment, decision } = this.assess(request.assessment, request.tier);
    const driver = this.driverFor(decision.tier);
    const pool = request.limits === undefined && request.tmpfs === undefined ? this.options.pools?.[decision.tier] : undefined;
    if (pool !== undefined && pool.available > 0) {
      let warmId: string | undefined;
      try {
        const warm = await pool.run(request.args, {
          ...(request.onOutput === undefined ? {} : { onOutput: request.onOutput }),
          onId: (id) => {
            warmId = id;
            this.running.set(id, agentId === undefined ? { tier: decision.tier } : { tier: decision.tier, agentId });
          },
        });
        if (warm !== undefined) return { assessment, decision, run: warm };
      } finally {
        if (warmId !== undefined) this.running.delete(warmId);
      }
    }
    const id = `sbx-${randomUUID()}`;
    const input: SpecInput = {
      args: request.args,
      rootfs: this.options.rootfs,
      cgroupsPath: `/${this.options.cgroupParent ?? 'bulwark'}/${id}`,
      ...(request.limits === undefined ? {} : { limits: request.limits }),
      ...(request.tmpfs === undefined ? {} : { tmpfs: request.tmpfs }),
    };
    const spec = buildSpec(input);
    this.running.set(id, agentId === undefined ? { tier: decision.tier } : { tier: decision.tier, agentId });
    try {
      const run = await driver.run({ id, spec, limits: limitsOf(input), ...(request.onOutput === undefined ? {} : { onOutput: request.onOutput }) });
      return { assessment, decision, run };
    } finally {
      this.running.delete(id);
    }
  }

  /** Sandboxes running now (cold runs this scheduler started). */
  ps(): { id: string; tier: Tier; agentId?: string }[] {
    return [...this.running].map(([id, r]) => ({ id, ...r }));
  }

  /** Kills a sandbox by id, or every sandbox of an agent (incident response isolating it). Returns the ids killed. */
  async terminate(target: { sandboxId?: string; agentId?: string }): Promise<string[]> {
    const ids = [...this.running].filter(([id, r]) => id === target.sandboxId || (target.agentId !== undefined && r.agentId === target.agentId));
    await Promise.all(ids.map(([id, r]) => this.driverFor(r.tier).terminate(id)));
    return ids.map(([id]) => id);
  }
}
