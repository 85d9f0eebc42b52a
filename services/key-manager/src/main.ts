#!/usr/bin/env node
/**
 * `bulwark-key-manager`: the key manager process (issue 12). Configuration from @bulwark/config
 * (NATS_URL, SYMBIONT_KEY_DIR: the key manager's OWN store, holding the root key and the NATS
 * operator/account keys; SYMBIONT_KEK or SYMBIONT_KEK_FILE, or SYMBIONT_KEY_STORE_TYPE=hsm with
 * SYMBIONT_HSM_CONFIG_PATH (src/store/open-store.ts); SYMBIONT_ROOT_PUBLIC_KEY, which must
 * be the stored root's; security.key_rotation_interval_days). Administrators from
 * SYMBIONT_KEY_ADMINS (comma-separated principal ids), else the policy administrators.
 * BULWARK_LEDGER_PUBLIC_KEY as for the policy service. The ledger must seal control batches to
 * svc.key-manager (SYMBIONT_LEDGER_CONTROL_TO includes it).
 *
 * Fail secure: a wrong KEK, a corrupted key file, a missing root or a root that is not the pinned
 * one stops the start with one line (exit 2 for configuration, 1 otherwise); nothing is written.
 */
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, ServicePrincipals } from '@bulwark/bus';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { isPrincipalId, loadIdentity, parseRootPublicKey } from '@bulwark/keystore';
import { busCredentialsFor } from '@bulwark/nats-auth';
import { createLogger } from '@bulwark/telemetry';
import { NatsRevoker } from './nats/revoker.js';
import { startKeyManager, type KeyManager } from './service/service.js';
import { openKeyManagerStore } from './store/open-store.js';

async function main(): Promise<number> {
  const { config } = loadConfig();
  const log = createLogger({ service: 'key-manager', level: config.log.level });
  const crypto = createCryptoProvider(config.security.crypto_provider);
  // Custody check before anything connects: the root opens (file KEK or HSM token) and is the pinned one.
  const custody = await openKeyManagerStore(config, crypto);
  const { store, rootPublicKey } = custody;
  const identity = await loadIdentity(store, ServicePrincipals.keys);
  const adminsText = process.env['SYMBIONT_KEY_ADMINS'];
  const admins = adminsText === undefined ? config.policy.admins : adminsText.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const a of admins) if (!isPrincipalId(a)) throw new InputError('E_CONFIG', `key-manager: SYMBIONT_KEY_ADMINS: ${JSON.stringify(a)} is not a principal id`, {});

  const creds = await busCredentialsFor(store, ServicePrincipals.keys);
  const bus = await connectBus({ url: config.nats.url, name: `${ServicePrincipals.keys}#${process.pid}`, ...creds });
  let directory: KvDirectory | undefined;
  let revoker: NatsRevoker | undefined;
  let service: KeyManager | undefined;
  try {
    directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey,
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every peer will be refused'),
    });
    const ledgerKeyText = process.env['BULWARK_LEDGER_PUBLIC_KEY'];
    const ledgerPublicKey = ledgerKeyText === undefined ? directory.lookup(LEDGER_PRINCIPAL)?.ed25519PublicKey : parseRootPublicKey(ledgerKeyText, 'BULWARK_LEDGER_PUBLIC_KEY');
    if (ledgerPublicKey === undefined) throw new InputError('E_CONFIG', `key-manager: no directory entry for ${LEDGER_PRINCIPAL} and no BULWARK_LEDGER_PUBLIC_KEY`, {});
    // NATS revocations only where the bus authenticates (the store then holds the operator's keys).
    if (creds.credentials !== undefined) revoker = await NatsRevoker.open({ store, provider: crypto, url: config.nats.url });
    service = await startKeyManager({
      bus,
      provider: crypto,
      identity: { id: identity.id, version: identity.version, x25519: identity.x25519, ed25519: identity.ed25519 },
      directory,
      store,
      root: custody.root,
      ledgerPublicKey,
      admins,
      validityDays: config.security.key_rotation_interval_days,
      ...(revoker === undefined ? {} : { revoker }),
      logger: log,
    });
    log.info({ instance: service.instanceId, principals: service.projection.book.principals().length }, 'key-manager: running');
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'key-manager: stopping');
    return 0;
  } finally {
    await service?.stop().catch(() => undefined);
    await revoker?.close().catch(() => undefined);
    await directory?.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
    custody.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bulwark-key-manager: ${isBulwarkError(error) || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof InputError ? 2 : 1;
  },
);
