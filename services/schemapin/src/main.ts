#!/usr/bin/env node
/**
 * `bulwark-schemapin`: the schemapin service process. Configuration from @bulwark/config
 * (NATS_URL, SYMBIONT_KEY_DIR, SYMBIONT_ROOT_PUBLIC_KEY, SYMBIONT_CRYPTO_PROVIDER,
 * SYMBIONT_POLICY_ADMINS for the tools administrators, SYMBIONT_LOG_LEVEL; `[tofu]`: enabled =
 * false → strict mode, automatic_key_pinning = true → automatic, else interactive); the
 * identity svc.schemapin from the wrapped file key store; the ledger's key from the directory
 * unless BULWARK_LEDGER_PUBLIC_KEY names it. BULWARK_SCHEMAPIN_SIGNING_KEY (a PKCS#8 PEM file)
 * with BULWARK_SCHEMAPIN_DOMAIN makes it sign the tools we operate.
 * Exit codes: 0 after a clean stop, 1 on a failure at run time, 2 on bad configuration.
 */
import { readFileSync } from 'node:fs';
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, ServicePrincipals } from '@bulwark/bus';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey } from '@bulwark/keystore';
import { createLogger } from '@bulwark/telemetry';
import { startSchemaPinService, type SchemaPinService } from './service.js';

async function main(): Promise<number> {
  const { config } = loadConfig();
  const log = createLogger({ service: 'schemapin', level: config.log.level });
  const crypto = createCryptoProvider(config.security.crypto_provider);
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) throw new InputError('E_CONFIG', 'schemapin: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset: without the pinned root no directory entry can be trusted', {});
  const rootPublicKey = parseRootPublicKey(pinned, 'keys.root_public_key');
  const keyFile = process.env['BULWARK_SCHEMAPIN_SIGNING_KEY'];
  const signingDomain = process.env['BULWARK_SCHEMAPIN_DOMAIN'];
  if ((keyFile === undefined) !== (signingDomain === undefined)) throw new InputError('E_CONFIG', 'schemapin: BULWARK_SCHEMAPIN_SIGNING_KEY and BULWARK_SCHEMAPIN_DOMAIN go together', {});
  const signing = keyFile === undefined ? undefined : { domain: signingDomain!, privateKeyPem: readFileSync(keyFile, 'utf8') };
  const mode = !config.tofu.enabled ? 'strict' : config.tofu.automatic_key_pinning ? 'automatic' : 'interactive';
  const store = await FileKeyStore.open({ dir: config.keys.dir ?? DEFAULT_KEY_DIR, wrapper: loadKek({ provider: crypto, kekFile: config.keys.kek_file }), provider: crypto });
  const identity = await loadIdentity(store, ServicePrincipals.tools);
  const bus = await connectBus({ url: config.nats.url, name: `${ServicePrincipals.tools}#${process.pid}` });
  let directory: KvDirectory | undefined;
  let service: SchemaPinService | undefined;
  try {
    directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey,
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every peer will be refused'),
    });
    const ledgerKeyText = process.env['BULWARK_LEDGER_PUBLIC_KEY'];
    const ledgerPublicKey = ledgerKeyText === undefined ? directory.lookup(LEDGER_PRINCIPAL)?.ed25519PublicKey : parseRootPublicKey(ledgerKeyText, 'BULWARK_LEDGER_PUBLIC_KEY');
    if (ledgerPublicKey === undefined) throw new InputError('E_CONFIG', `schemapin: no directory entry for ${LEDGER_PRINCIPAL} and no BULWARK_LEDGER_PUBLIC_KEY: ledger events cannot be verified`, {});
    service = await startSchemaPinService({
      bus,
      provider: crypto,
      identity: { id: identity.id, x25519: identity.x25519 },
      directory,
      ledgerPublicKey,
      admins: config.policy.admins,
      mode,
      ...(signing === undefined ? {} : { signing }),
      logger: log,
    });
    log.info({ instance: service.instanceId, mode, ...service.metrics() }, 'schemapin: running');
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'schemapin: stopping');
    await service.stop();
    return 0;
  } finally {
    await service?.stop().catch(() => undefined);
    await directory?.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bulwark-schemapin: ${isBulwarkError(error) || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof InputError ? 2 : 1;
  },
);
