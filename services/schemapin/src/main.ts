#!/usr/bin/env node
/**
 * `bulwark-schemapin`: the schemapin service process, booted by @bulwark/service-host
 * (configuration, keys, the pinned root, identity svc.schemapin and its NATS user, telemetry,
 * bus, directory, the ledger's key from its directory entry or BULWARK_LEDGER_PUBLIC_KEY,
 * signals, exit codes: see its README). Its own settings: SYMBIONT_POLICY_ADMINS for the tools
 * administrators; `[tofu]`: enabled = false → strict mode, automatic_key_pinning = true →
 * automatic, else interactive; BULWARK_SCHEMAPIN_SIGNING_KEY (a PKCS#8 PEM file) with
 * BULWARK_SCHEMAPIN_DOMAIN makes it sign the tools we operate. The ledger must seal control
 * batches to svc.schemapin (SYMBIONT_LEDGER_CONTROL_TO includes it).
 */
import { readFileSync } from 'node:fs';
import { ServicePrincipals } from '@bulwark/bus';
import { InputError } from '@bulwark/errors';
import { readinessWith, serviceMain } from '@bulwark/service-host';
import { startSchemaPinService } from './service.js';

serviceMain({
  name: 'schemapin',
  principal: ServicePrincipals.tools,
  // Its identity rotates on the interval while it serves: every use below reads the live identity.
  rotatesOwnKeys: true,
  settings: ({ config, env }) => {
    const keyFile = env['BULWARK_SCHEMAPIN_SIGNING_KEY'];
    const domain = env['BULWARK_SCHEMAPIN_DOMAIN'];
    if ((keyFile === undefined) !== (domain === undefined)) throw new InputError('E_CONFIG', 'schemapin: BULWARK_SCHEMAPIN_SIGNING_KEY and BULWARK_SCHEMAPIN_DOMAIN go together', {});
    const signing = keyFile === undefined ? undefined : { domain: domain!, privateKeyPem: readFileSync(keyFile, 'utf8') };
    const mode = !config.tofu.enabled ? 'strict' : config.tofu.automatic_key_pinning ? 'automatic' : 'interactive';
    return { signing, mode } as const;
  },
  start: async ({ bus, config, crypto, identity, directory, ledgerPublicKey, settings, log }) => {
    const service = await startSchemaPinService({
      bus,
      provider: crypto,
      identity,
      directory,
      ledgerPublicKey: ledgerPublicKey(),
      admins: config.policy.admins,
      mode: settings.mode,
      ...(settings.signing === undefined ? {} : { signing: settings.signing }),
      logger: log,
    });
    log.info({ instance: service.instanceId, mode: settings.mode, ...service.metrics() }, 'schemapin: running');
    return {
      // A halted ledger reader refuses every tool: the service is up but not ready.
      health: () => readinessWith(bus, () => (service.halted === undefined ? undefined : `ledger reader halted at seq ${service.halted.seq} (${service.halted.code})`)),
      stop: () => service.stop(),
    };
  },
});
