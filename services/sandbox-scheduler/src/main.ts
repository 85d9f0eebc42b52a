#!/usr/bin/env node
/**
 * `bulwark-sandbox-scheduler`: the sandbox scheduler process (root: it creates cgroups and
 * namespaces), booted by @bulwark/service-host (configuration, keys, the pinned root, identity
 * svc.sandbox-scheduler and its NATS user, telemetry, bus, directory, signals, exit codes: see
 * its README). Its own settings: SYMBIONT_DEFAULT_SANDBOX_TIER as the tier floor;
 * BULWARK_SANDBOX_ROOTFS: the root filesystem workloads run in (default: one built from
 * busybox-static at start, removed at exit). BULWARK_SANDBOX_RISK_MEDIUM / _HIGH: the risk
 * thresholds (default 0.3 / 0.6). BULWARK_SANDBOX_WARM: warm Tier 1 containers (default 2, 0 = none).
 * BULWARK_SANDBOX_ROOT: runtime state (default /run/bulwark-sandbox).
 *
 * Only tiers whose driver answers are served; a schedule for another tier is refused. Without
 * runc or runsc, or without a root filesystem, it still runs, serving no tier ("no driver"),
 * and says so in its log and its /health report.
 */
import { ServicePrincipals } from '@bulwark/bus';
import { InputError } from '@bulwark/errors';
import { readinessWith, serviceMain } from '@bulwark/service-host';
import { buildSpec, limitsOf } from './oci/spec.js';
import { floorTier, parseThresholds, type Tier } from './risk/tier.js';
import { DEFAULT_SANDBOX_ROOT, hostDrivers, temporaryRootfs } from './service/host.js';
import { Scheduler } from './service/scheduler.js';
import { startSandboxService } from './service/service.js';
import type { OciRuntimeDriver } from './drivers/oci-runtime.js';
import { WarmPool } from './warm/pool.js';

function numberEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new InputError('E_CONFIG', `sandbox-scheduler: ${name} must be a number, got ${JSON.stringify(text)}`, {});
  return n;
}

serviceMain({
  name: 'sandbox-scheduler',
  principal: ServicePrincipals.sandbox,
  // Its identity rotates on the interval while it runs: every use below reads the live identity.
  rotatesOwnKeys: true,
  settings: ({ config, env }) => ({
    thresholds: parseThresholds({ medium: numberEnv(env, 'BULWARK_SANDBOX_RISK_MEDIUM'), high: numberEnv(env, 'BULWARK_SANDBOX_RISK_HIGH') }),
    floor: floorTier(config.security.default_sandbox_tier),
    warmSize: numberEnv(env, 'BULWARK_SANDBOX_WARM') ?? 2,
    rootfs: env['BULWARK_SANDBOX_ROOTFS'],
    root: env['BULWARK_SANDBOX_ROOT'] ?? DEFAULT_SANDBOX_ROOT,
  }),
  start: async ({ bus, crypto, identity, directory, ledgerPublicKey, settings, log, defer, onKeysRotated }) => {
    const { thresholds, floor } = settings;
    // The root filesystem: the operator's, else one built from busybox-static; without either no tier can run a workload.
    let rootfs = settings.rootfs;
    let noRootfs: string | undefined;
    if (rootfs === undefined) {
      try {
        const own = temporaryRootfs();
        defer(() => own.cleanup());
        rootfs = own.rootfs;
      } catch (error) {
        noRootfs = error instanceof Error ? error.message : String(error);
        log.warn({ reason: noRootfs }, 'sandbox: no root filesystem (set BULWARK_SANDBOX_ROOTFS or install busybox-static): every tier is refused');
      }
    }
    const all = hostDrivers(settings.root);
    const drivers: Partial<Record<Tier, OciRuntimeDriver>> = {};
    for (const d of [all.runc, all.runsc]) {
      const status = await d.detect();
      if (status.available && rootfs !== undefined) drivers[d.tier] = d;
      log.info({ ...status }, status.available ? 'sandbox driver available' : 'sandbox driver unavailable: its tier is refused');
    }
    const tiers = Object.keys(drivers).map(Number);
    if (tiers.length === 0) log.warn({ noRootfs }, 'sandbox-scheduler: no driver: every schedule is refused (install runc or runsc; see the README)');
    const tier1 = drivers[1];
    const pool =
      tier1 === undefined || rootfs === undefined || settings.warmSize <= 0
        ? undefined
        : new WarmPool({
            driver: tier1,
            size: settings.warmSize,
            specFor: (id) => buildSpec({ args: ['/bin/true'], rootfs: rootfs, cgroupsPath: `/bulwark/${id}` }),
            limits: limitsOf({ args: ['/bin/true'], rootfs, cgroupsPath: '/bulwark/x' }),
            idPrefix: `warm-${process.pid}`,
            onError: (e) => log.error({ err: e }, 'warm pool refill failed'),
          });
    if (pool !== undefined) defer(() => pool.stop());
    await pool?.fill();
    const scheduler = new Scheduler({ drivers, ...(pool === undefined ? {} : { pools: { 1: pool } }), rootfs: rootfs ?? '/', thresholds, floor });
    const service = await startSandboxService({ bus, provider: crypto, identity, directory, ledgerPublicKey: ledgerPublicKey(), scheduler, logger: log });
    onKeysRotated(() => service.keysRotated());
    log.info({ instance: service.instanceId, tiers, floor, thresholds }, 'sandbox-scheduler: running');
    return {
      // Serving no tier is a state the operator sees (`bulwark status`), not a failure: assessments and refusals still answer.
      health: async () => ({ ...(await readinessWith(bus, () => undefined)), tiers, ...(tiers.length === 0 ? { driver: 'none', note: 'no driver: every schedule is refused' } : {}) }),
      stop: () => service.stop(),
    };
  },
});
