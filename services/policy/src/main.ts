#!/usr/bin/env node
/**
 * `bulwark-policy`: the policy service process. Configuration from @bulwark/config (NATS_URL,
 * SYMBIONT_KEY_DIR, SYMBIONT_ROOT_PUBLIC_KEY, SYMBIONT_CRYPTO_PROVIDER, SYMBIONT_AUDIT_ENABLED,
 * SYMBIONT_POLICY_DECISION_LOG_MASK, SYMBIONT_POLICY_ADMINS, SYMBIONT_POLICY_ENFORCEMENT,
 * SYMBIONT_POLICY_MAX_LEDGER_LAG_MS, SYMBIONT_BUS_* stream limits, SYMBIONT_LOG_LEVEL, ...); the
 * service's identity (svc.policy) and NATS credentials from the wrapped file key store `bulwark init` writes (KEK
 * from SYMBIONT_KEK or SYMBIONT_KEK_FILE); peers' keys from the signed directory in NATS KV,
 * checked against the pinned root. The ledger's event-signing key is its directory entry's
 * Ed25519 key, unless BULWARK_LEDGER_PUBLIC_KEY (hex or base64) names another.
 * BULWARK_DECISION_MASK_KEY (hex or base64, 32 bytes) turns masking into a keyed hash.
 *
 * Runs until SIGTERM or SIGINT, then stops answering, publishes the queued decision events
 * and closes. Exit codes: 0 after a clean stop, 1 on a failure at run time, 2 on bad configuration.
 */
import { checkReadiness, connectBus, KvDirectory, LEDGER_PRINCIPAL, ServicePrincipals, streamSpecs } from '@bulwark/bus';
import { busLimits, loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey } from '@bulwark/keystore';
import { busCredentialsFor } from '@bulwark/nats-auth';
import { createLogger, startServiceTelemetry, type ServiceTelemetry } from '@bulwark/telemetry';
import { observePolicyService } from './metrics.js';
import { startPolicyService, type PolicyService } from './service.js';

async function main(): Promise<number> {
  const { config } = loadConfig();
  const log = createLogger({ service: 'policy', level: config.log.level });
  const crypto = createCryptoProvider(config.security.crypto_provider);
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) {
    throw new InputError('E_CONFIG', 'policy: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset: without the pinned root no directory entry can be trusted', {});
  }
  const rootPublicKey = parseRootPublicKey(pinned, 'keys.root_public_key');
  const maskKeyText = process.env['BULWARK_DECISION_MASK_KEY'];
  const maskKey = maskKeyText === undefined ? undefined : parseRootPublicKey(maskKeyText, 'BULWARK_DECISION_MASK_KEY');
  const store = await FileKeyStore.open({ dir: config.keys.dir ?? DEFAULT_KEY_DIR, wrapper: loadKek({ provider: crypto, kekFile: config.keys.kek_file }), provider: crypto });
  const identity = await loadIdentity(store, ServicePrincipals.policy);

  // Telemetry first: the bus's command spans and counters report to its global providers.
  const telemetry: ServiceTelemetry = await startServiceTelemetry({ service: 'policy' });
  // Its own NATS user (DESIGN §3a) when `bulwark init` made one; anonymous otherwise (a dev server without authentication).
  const bus = await connectBus({ url: config.nats.url, name: `${ServicePrincipals.policy}#${process.pid}`, ...(await busCredentialsFor(store, ServicePrincipals.policy)) }).catch(
    async (e: unknown) => {
      await telemetry.close();
      throw e;
    },
  );
  let directory: KvDirectory | undefined;
  let service: PolicyService | undefined;
  try {
    directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey,
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every peer will be refused'),
    });
    const ledgerKeyText = process.env['BULWARK_LEDGER_PUBLIC_KEY'];
    const ledgerPublicKey =
      ledgerKeyText === undefined ? directory.lookup(LEDGER_PRINCIPAL)?.ed25519PublicKey : parseRootPublicKey(ledgerKeyText, 'BULWARK_LEDGER_PUBLIC_KEY');
    if (ledgerPublicKey === undefined) {
      throw new InputError('E_CONFIG', `policy: no directory entry for ${LEDGER_PRINCIPAL} and no BULWARK_LEDGER_PUBLIC_KEY: ledger events cannot be verified`, {});
    }
    service = await startPolicyService({
      bus,
      provider: crypto,
      identity: { id: identity.id, x25519: identity.x25519 },
      directory,
      ledgerPublicKey,
      admins: config.policy.admins,
      audit: {
        enabled: config.security.audit_enabled,
        maskedFields: config.policy.decision_log_mask,
        mode: config.security.policy_enforcement_mode,
        maxLedgerLagMs: config.policy.max_ledger_lag_ms,
        ...(maskKey === undefined ? {} : { maskKey }),
      },
      streams: streamSpecs(busLimits(config).streams),
      logger: log,
      onDecision: observePolicyService(telemetry.meter),
    });
    const running = service;
    // /health: the bus's readiness and the service's own (the ledger reader, the audit path).
    telemetry.setHealth(async () => {
      const ready = await checkReadiness(bus);
      const own = running.notReady();
      return own === undefined ? ready : { ...ready, ready: false, reason: [ready.reason, own].filter((r) => r !== '').join('; ') };
    });
    log.info({ metrics: telemetry.metricsUrl, otlp: telemetry.otlp }, 'policy: telemetry');
    log.info({ instance: service.instanceId, setVersion: service.current().version, policies: service.current().policies.length }, 'policy: running');
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'policy: stopping');
    await service.stop();
    log.info({ ...service.metrics() }, 'policy: stopped');
    return 0;
  } finally {
    await service?.stop().catch(() => undefined);
    await directory?.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
    await telemetry.close().catch(() => undefined);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bulwark-policy: ${isBulwarkError(error) || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof InputError ? 2 : 1;
  },
);
