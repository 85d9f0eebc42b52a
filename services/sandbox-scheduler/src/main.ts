#!/usr/bin/env node
/**
 * `bulwark-sandbox-scheduler`: the sandbox scheduler process (root: it creates cgroups and
 * namespaces). Configuration from @bulwark/config (NATS_URL, SYMBIONT_KEY_DIR,
 * SYMBIONT_ROOT_PUBLIC_KEY, SYMBIONT_CRYPTO_PROVIDER, SYMBIONT_DEFAULT_SANDBOX_TIER as the tier
 * floor, SYMBIONT_LOG_LEVEL); identity svc.sandbox-scheduler from the wrapped file key store.
 * BULWARK_SANDBOX_ROOTFS: the root filesystem workloads run in (default: one built from
 * busybox-static at start, removed at exit). BULWARK_SANDBOX_RISK_MEDIUM / _HIGH: the risk
 * thresholds (default 0.3 / 0.6). BULWARK_SANDBOX_WARM: warm Tier 1 containers (default 2, 0 = none).
 * BULWARK_SANDBOX_ROOT: runtime state (default /run/bulwark-sandbox).
 *
 * Only tiers whose driver answers are served; a schedule for another tier is refused.
 * Exit codes: 0 after a clean stop, 1 on a failure at run time, 2 on bad configuration.
 */
import { connectBus, KvDirectory, ServicePrincipals } from '@bulwark/bus';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey } from '@bulwark/keystore';
import { createLogger } from '@bulwark/telemetry';
import { buildSpec, limitsOf } from './oci/spec.js';
import { floorTier, parseThresholds, type Tier } from './risk/tier.js';
import { DEFAULT_SANDBOX_ROOT, hostDrivers, temporaryRootfs } from './service/host.js';
import { Scheduler } from './service/scheduler.js';
import { startSandboxService, type SandboxService } from './service/service.js';
import type { OciRuntimeDriver } from './drivers/oci-runtime.js';
import { WarmPool } from './warm/pool.js';

function numberEnv(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new InputError('E_CONFIG', `sandbox-scheduler: ${name} must be a number, got ${JSON.stringify(text)}`, {});
  return n;
}

async function main(): Promise<number> {
  const { config } = loadConfig();
  const log = createLogger({ service: 'sandbox-scheduler', level: config.log.level });
  const crypto = createCryptoProvider(config.security.crypto_provider);
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) throw new InputError('E_CONFIG', 'sandbox-scheduler: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset', {});
  const thresholds = parseThresholds({ medium: numberEnv('BULWARK_SANDBOX_RISK_MEDIUM'), high: numberEnv('BULWARK_SANDBOX_RISK_HIGH') });
  const floor = floorTier(config.security.default_sandbox_tier);
  const store = await FileKeyStore.open({ dir: config.keys.dir ?? DEFAULT_KEY_DIR, wrapper: loadKek({ provider: crypto, kekFile: config.keys.kek_file }), provider: crypto });
  const identity = await loadIdentity(store, ServicePrincipals.sandbox);

  const ownRootfs = process.env['BULWARK_SANDBOX_ROOTFS'] === undefined ? temporaryRootfs() : undefined;
  const rootfs = process.env['BULWARK_SANDBOX_ROOTFS'] ?? ownRootfs?.rootfs ?? '/';
  const root = process.env['BULWARK_SANDBOX_ROOT'] ?? DEFAULT_SANDBOX_ROOT;
  const all = hostDrivers(root);
  const drivers: Partial<Record<Tier, OciRuntimeDriver>> = {};
  for (const d of [all.runc, all.runsc]) {
    const status = await d.detect();
    if (status.available) drivers[d.tier] = d;
    log.info({ ...status }, status.available ? 'sandbox driver available' : 'sandbox driver unavailable: its tier is refused');
  }
  const warmSize = numberEnv('BULWARK_SANDBOX_WARM') ?? 2;
  const pool =
    drivers[1] === undefined || warmSize <= 0
      ? undefined
      : new WarmPool({
          driver: drivers[1],
          size: warmSize,
          specFor: (id) => buildSpec({ args: ['/bin/true'], rootfs, cgroupsPath: `/bulwark/${id}` }),
          limits: limitsOf({ args: ['/bin/true'], rootfs, cgroupsPath: '/bulwark/x' }),
          idPrefix: `warm-${process.pid}`,
          onError: (e) => log.error({ err: e }, 'warm pool refill failed'),
        });
  await pool?.fill();

  const bus = await connectBus({ url: config.nats.url, name: `${ServicePrincipals.sandbox}#${process.pid}` });
  let directory: KvDirectory | undefined;
  let service: SandboxService | undefined;
  try {
    directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey: parseRootPublicKey(pinned, 'keys.root_public_key'),
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every peer will be refused'),
    });
    const scheduler = new Scheduler({ drivers, ...(pool === undefined ? {} : { pools: { 1: pool } }), rootfs, thresholds, floor });
    service = await startSandboxService({ bus, provider: crypto, identity: { id: identity.id, x25519: identity.x25519 }, directory, scheduler, logger: log });
    log.info({ instance: service.instanceId, tiers: Object.keys(drivers), floor, thresholds }, 'sandbox-scheduler: running');
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'sandbox-scheduler: stopping');
    return 0;
  } finally {
    await service?.stop().catch(() => undefined);
    await pool?.stop().catch(() => undefined);
    await directory?.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
    ownRootfs?.cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bulwark-sandbox-scheduler: ${isBulwarkError(error) || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof InputError ? 2 : 1;
  },
);
