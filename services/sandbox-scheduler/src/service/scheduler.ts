import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EgressAllowlist } from '../egress/allowlist.js';
import { EGRESS_PROXY_PORT, startEgressNamespace } from '../egress/netns.js';
import { EgressProxy, type EgressAttempt } from '../egress/proxy.js';
import { SandboxUnavailableError } from '../errors.js';
import type { DriverStatus, SandboxDriver, SandboxRun } from '../drivers/types.js';
import { buildSpec, limitsOf, type SandboxLimits, type SpecInput } from '../oci/spec.js';
import { parseAssessment, type RiskAssessment } from '../risk/assessment.js';
import { chooseTier, type RiskThresholds, type Tier, type TierDecision, type TierRequest } from '../risk/tier.js';
import type { WarmPool } from '../warm/pool.js';

export interface SchedulerOptions {
  /** The drivers of this host, by tier (a tier without one is refused, never downgraded). */
  readonly drivers: Partial<Record<Tier, SandboxDriver>>;
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
  /** Destinations reachable through the filtering proxy (S6.3); none (the default) = no network at all. */
  readonly egress?: EgressAllowlist;
  /** Every connection attempt through the proxy, as it happens. */
  readonly onEgress?: (attempt: EgressAttempt) => void;
  readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export interface Scheduled {
  readonly assessment: RiskAssessment;
  readonly decision: TierDecision;
  readonly run: SandboxRun;
  /** Every connection attempt the egress proxy saw, allowed or not (only with an allowlist). */
  readonly egress?: readonly EgressAttempt[];
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

  driverFor(tier: Tier): SandboxDriver {
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
    const egress = request.egress !== undefined && request.egress.rules.length > 0 ? request.egress : undefined;
    if (egress !== undefined && decision.tier !== 1) {
      throw new SandboxUnavailableError('E_SANDBOX_EGRESS', `sandbox: an egress allowlist is available in Tier 1 only; this workload needs Tier ${decision.tier}, where gVisor's own network stack cannot reach the proxy on the namespace loopback`, { tier: decision.tier });
    }
    const driver = this.driverFor(decision.tier);
    const pool = request.limits === undefined && request.tmpfs === undefined && egress === undefined ? this.options.pools?.[decision.tier] : undefined;
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
    if (egress !== undefined) return this.withEgress(id, egress, request, (networkNamespacePath) => this.cold(id, driver, request, decision, agentId, networkNamespacePath), assessment, decision);
    return { assessment, decision, run: await this.cold(id, driver, request, decision, agentId) };
  }

  /** A proxy on a Unix socket, a loopback-only namespace forwarding to it, the run, then both gone. */
  private async withEgress(id: string, egress: EgressAllowlist, request: ScheduleRequest, run: (netns: string) => Promise<SandboxRun>, assessment: RiskAssessment, decision: TierDecision): Promise<Scheduled> {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-egress-'));
    const proxy = new EgressProxy(id, egress, request.onEgress);
    try {
      await proxy.listen(join(dir, 'proxy.sock'));
      const ns = await startEgressNamespace(join(dir, 'proxy.sock'));
      try {
        return { assessment, decision, run: await run(ns.path), egress: proxy.attempts };
      } finally {
        await ns.stop();
      }
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private async cold(id: string, driver: SandboxDriver, request: ScheduleRequest, decision: TierDecision, agentId: string | undefined, networkNamespacePath?: string): Promise<SandboxRun> {
    const proxyEnv = networkNamespacePath === undefined ? [] : ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'].map((k) => `${k}=http://127.0.0.1:${EGRESS_PROXY_PORT}`);
    const input: SpecInput = {
      args: request.args,
      rootfs: this.options.rootfs,
      cgroupsPath: `/${this.options.cgroupParent ?? 'bulwark'}/${id}`,
      ...(request.limits === undefined ? {} : { limits: request.limits }),
      ...(request.tmpfs === undefined ? {} : { tmpfs: request.tmpfs }),
      ...(networkNamespacePath === undefined ? {} : { networkNamespacePath, env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/tmp', 'TERM=dumb', ...proxyEnv] }),
    };
    const spec = buildSpec(input);
    this.running.set(id, agentId === undefined ? { tier: decision.tier } : { tier: decision.tier, agentId });
    try {
      return await driver.run({ id, spec, limits: limitsOf(input), ...(request.onOutput === undefined ? {} : { onOutput: request.onOutput }) });
    } finally {
      this.running.delete(id);
    }
  }

  /** Sandboxes running now (cold runs this scheduler started). */
  ps(): { id: string; tier: Tier; agentId?: string }[] {
    return [...this.running].map(([id, r]) => ({ id, ...r }));
  }

  /** Deletes what schedulers killed before they could clean up left behind (called at start). */
  async reapOrphans(): Promise<string[]> {
    const all = await Promise.all(Object.values(this.options.drivers).map(async (d) => (await d.reapOrphans?.()) ?? []));
    return all.flat();
  }

  /** Kills every sandbox this scheduler runs: a scheduler that stops leaves none behind it. */
  async terminateAll(): Promise<string[]> {
    const ids = [...this.running];
    await Promise.all(ids.map(([id, r]) => this.driverFor(r.tier).terminate(id)));
    return ids.map(([id]) => id);
  }

  /** Kills a sandbox by id, or every sandbox of an agent (incident response isolating it). Returns the ids killed. */
  async terminate(target: { sandboxId?: string; agentId?: string }): Promise<string[]> {
    const ids = [...this.running].filter(([id, r]) => id === target.sandboxId || (target.agentId !== undefined && r.agentId === target.agentId));
    await Promise.all(ids.map(([id, r]) => this.driverFor(r.tier).terminate(id)));
    return ids.map(([id]) => id);
  }
}
