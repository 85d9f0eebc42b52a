#!/usr/bin/env node
/**
 * `bulwark-policy`: the policy service process, booted by @bulwark/service-host (configuration,
 * keys, the pinned root, identity svc.policy and its NATS user, telemetry, bus, directory, the
 * ledger's key from its directory entry or BULWARK_LEDGER_PUBLIC_KEY, signals, exit codes: see
 * its README). Its own settings: SYMBIONT_AUDIT_ENABLED, SYMBIONT_POLICY_DECISION_LOG_MASK,
 * SYMBIONT_POLICY_ADMINS, SYMBIONT_POLICY_ENFORCEMENT, SYMBIONT_POLICY_MAX_LEDGER_LAG_MS,
 * SYMBIONT_BUS_* stream limits; BULWARK_DECISION_MASK_KEY (hex or base64, 32 bytes) turns
 * masking into a keyed hash.
 *
 * On stop it stops answering, publishes the queued decision events and closes.
 */
import { ServicePrincipals, streamSpecs } from '@bulwark/bus';
import { busLimits } from '@bulwark/config';
import { parseRootPublicKey } from '@bulwark/keystore';
import { readinessWith, serviceMain } from '@bulwark/service-host';
import { observePolicyService } from './metrics.js';
import { startPolicyService } from './service.js';

serviceMain({
  name: 'policy',
  principal: ServicePrincipals.policy,
  // Its identity rotates on the interval while it serves: every use below reads the live identity.
  rotatesOwnKeys: true,
  settings: ({ env }) => {
    const maskKeyText = env['BULWARK_DECISION_MASK_KEY'];
    return { maskKey: maskKeyText === undefined ? undefined : parseRootPublicKey(maskKeyText, 'BULWARK_DECISION_MASK_KEY') };
  },
  start: async ({ bus, crypto, identity, directory, ledgerPublicKey, config, settings, log, telemetry }) => {
    const service = await startPolicyService({
      bus,
      provider: crypto,
      identity,
      directory,
      ledgerPublicKey: ledgerPublicKey(),
      admins: config.policy.admins,
      audit: {
        enabled: config.security.audit_enabled,
        maskedFields: config.policy.decision_log_mask,
        mode: config.security.policy_enforcement_mode,
        maxLedgerLagMs: config.policy.max_ledger_lag_ms,
        ...(settings.maskKey === undefined ? {} : { maskKey: settings.maskKey }),
      },
      streams: streamSpecs(busLimits(config).streams),
      logger: log,
      onDecision: observePolicyService(telemetry.meter),
    });
    log.info({ instance: service.instanceId, setVersion: service.current().version, policies: service.current().policies.length }, 'policy: running');
    return {
      // /health: the bus's readiness and the service's own (the ledger reader, the audit path).
      health: () => readinessWith(bus, () => service.notReady()),
      stop: async () => {
        await service.stop();
        log.info({ ...service.metrics() }, 'policy: metrics at stop');
      },
    };
  },
});
