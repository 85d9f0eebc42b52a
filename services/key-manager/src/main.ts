#!/usr/bin/env node
/**
 * `bulwark-key-manager`: the key manager process (issue 12), booted by @bulwark/service-host
 * (configuration, the pinned root, identity svc.key-manager and its NATS user, telemetry, bus,
 * directory, the ledger's key, signals, exit codes: see its README). Its key store
 * (SYMBIONT_KEY_DIR, under SYMBIONT_KEK or SYMBIONT_KEK_FILE, or SYMBIONT_KEY_STORE_TYPE=hsm with
 * SYMBIONT_HSM_CONFIG_PATH: src/store/open-store.ts) is its OWN, holding the root key and the NATS
 * operator/account keys; the root in it must be the pinned one. Administrators from
 * SYMBIONT_KEY_ADMINS (comma-separated principal ids), else the policy administrators;
 * certificates valid security.key_rotation_interval_days. The ledger must seal control batches
 * to svc.key-manager (SYMBIONT_LEDGER_CONTROL_TO includes it).
 *
 * Fail secure: a wrong KEK, a corrupted key file, a missing root or a root that is not the pinned
 * one stops the start with one line (exit 2 for configuration, 1 otherwise); nothing is written.
 */
import { ServicePrincipals } from '@bulwark/bus';
import { InputError } from '@bulwark/errors';
import { isPrincipalId } from '@bulwark/keystore';
import { keyRotationCheckMs, keyRotationIntervalMs, serviceMain } from '@bulwark/service-host';
import { parseChannelsSetting } from './channels/config.js';
import { NatsRevoker } from './nats/revoker.js';
import { startKeyManager } from './service/service.js';
import { openKeyManagerStore, type KeyManagerStore } from './store/open-store.js';

let custody: KeyManagerStore | undefined;

serviceMain({
  name: 'key-manager',
  principal: ServicePrincipals.keys,
  settings: ({ config, env }) => {
    const adminsText = env['SYMBIONT_KEY_ADMINS'];
    const admins = adminsText === undefined ? config.policy.admins : adminsText.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const a of admins) if (!isPrincipalId(a)) throw new InputError('E_CONFIG', `key-manager: SYMBIONT_KEY_ADMINS: ${JSON.stringify(a)} is not a principal id`, {});
    return { admins, channels: parseChannelsSetting(env['SYMBIONT_KEY_CHANNELS']) };
  },
  // Custody check before anything connects: the root opens (file KEK or HSM token) and is the pinned one.
  openStore: async ({ config, crypto, env }) => {
    custody = await openKeyManagerStore(config, crypto, env);
    return custody.store;
  },
  start: async ({ bus, config, crypto, identity, directory, store, ledgerPublicKey, authenticated, settings, log, defer, env, ownCredentialsChanged }) => {
    const ledgerKey = ledgerPublicKey();
    // NATS revocations only where the bus authenticates (the store then holds the operator's keys).
    const revoker = authenticated ? await NatsRevoker.open({ store, provider: crypto, url: config.nats.url }) : undefined;
    if (revoker !== undefined) defer(() => revoker.close());
    const root = custody!.root;
    defer(() => custody?.close());
    const service = await startKeyManager({
      bus,
      provider: crypto,
      // The host's identity object itself: the key manager's own rotation switches it in place.
      identity,
      directory,
      store,
      root,
      ledgerPublicKey: ledgerKey,
      admins: settings.admins,
      channels: settings.channels,
      validityDays: config.security.key_rotation_interval_days,
      rotationIntervalMs: keyRotationIntervalMs(config.security.key_rotation_interval_days, env),
      selfRotationCheckMs: keyRotationCheckMs(keyRotationIntervalMs(config.security.key_rotation_interval_days, env), env),
      ...(revoker === undefined ? {} : { revoker }),
      // Its own rotation moves its NATS user where the bus authenticates; the host's renewal follows it.
      busAuthenticated: authenticated,
      onOwnCredentials: ownCredentialsChanged,
      logger: log,
    });
    log.info({ instance: service.instanceId, principals: service.projection.book.principals().length }, 'key-manager: running');
    // It answers bulwark.keys.renew for the others; its own JWT it signs itself.
    return { stop: () => service.stop(), renewOwnCredentials: (natsUser) => service.renewOwn(natsUser) };
  },
});
