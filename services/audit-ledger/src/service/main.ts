#!/usr/bin/env node
/**
 * `bulwark-audit-ledger`: the audit-ledger service process. Configuration comes from
 * @bulwark/config (NATS_URL, DATABASE_URL, SYMBIONT_KEY_DIR, SYMBIONT_ROOT_PUBLIC_KEY,
 * SYMBIONT_CRYPTO_PROVIDER, SYMBIONT_LOG_LEVEL, ...) plus the SYMBIONT_LEDGER_* settings;
 * the ledger's identity (svc.audit-ledger: Ed25519 + X25519) and NATS credentials from the wrapped file key
 * store that `bulwark init` writes (KEK from SYMBIONT_KEK or SYMBIONT_KEK_FILE); peers'
 * keys from the signed directory in NATS KV, checked against the pinned root key.
 *
 * Runs until SIGTERM or SIGINT, then drains: no new messages, the batch in hand is
 * committed and acknowledged, committed events are re-published, connections closed.
 * Exit codes: 0 after a clean drain, 1 on a failure at run time, 2 on bad configuration.
 */
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, streamSpecs } from '@bulwark/bus';
import { busLimits, loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey } from '@bulwark/keystore';
import { busCredentialsFor } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { createLogger, startServiceTelemetry, type ServiceTelemetry } from '@bulwark/telemetry';
import { migrateLedger } from '../ledger.js';
import type { LedgerDatabase } from '../store/schema.js';
import { observeLedgerService } from './metrics.js';
import { LedgerService } from './service.js';
import { loadLedgerSettings } from './settings.js';

async function main(): Promise<number> {
  const { config } = loadConfig();
  const settings = { ...loadLedgerSettings(), streams: streamSpecs(busLimits(config).streams) };
  const log = createLogger({ service: 'audit-ledger', level: config.log.level });
  const crypto = createCryptoProvider(config.security.crypto_provider);

  const pinned = config.keys.root_public_key;
  if (pinned === undefined) {
    throw new InputError('E_CONFIG', 'audit-ledger: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset: without the pinned root no directory entry can be trusted', {});
  }
  const rootPublicKey = parseRootPublicKey(pinned, 'keys.root_public_key');
  const store = await FileKeyStore.open({ dir: config.keys.dir ?? DEFAULT_KEY_DIR, wrapper: loadKek({ provider: crypto, kekFile: config.keys.kek_file }), provider: crypto });
  const identity = await loadIdentity(store, LEDGER_PRINCIPAL);

  // Telemetry first: the bus's command spans and counters report to its global providers.
  const telemetry: ServiceTelemetry = await startServiceTelemetry({ service: 'audit-ledger' });
  const db = await createDatabase<LedgerDatabase>({ ...(config.database.url === undefined ? {} : { url: config.database.url }), schema: settings.schema }).catch(async (e: unknown) => {
    await telemetry.close();
    throw e;
  });
  // Its own NATS user (DESIGN §3a) when `bulwark init` made one; anonymous otherwise (a dev server without authentication).
  const credentials = await busCredentialsFor(store, LEDGER_PRINCIPAL);
  const bus = await connectBus({
    url: config.nats.url,
    name: `${LEDGER_PRINCIPAL}#${process.pid}`,
    ...(settings.namespace === undefined ? {} : { namespace: settings.namespace }),
    ...credentials,
  }).catch(async (e: unknown) => {
    await closeDatabase(db).catch(() => undefined);
    await telemetry.close();
    throw e;
  });
  let service: LedgerService | undefined;
  let directory: KvDirectory | undefined;
  try {
    await migrateLedger(db);
    directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey,
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every sender will be refused'),
    });
    service = await LedgerService.start({ bus, db, crypto, identity, directory, settings, log });
    const running = service;
    observeLedgerService(telemetry.meter, bus, running);
    telemetry.setHealth(async () => ({ ...(await running.readiness()), size: (await running.ledger.head()).size }));
    log.info({ metrics: telemetry.metricsUrl, otlp: telemetry.otlp }, 'audit-ledger: telemetry');
    const ready = await service.readiness();
    log.info({ origin: settings.origin, schema: settings.schema, instance: service.instanceId, ready }, 'audit-ledger: running');

    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'audit-ledger: draining');
    const stopping = service;
    service = undefined;
    await stopping.stop();
    log.info({ ...stopping.metrics() }, 'audit-ledger: stopped');
    return 0;
  } finally {
    await service?.stop().catch(() => undefined);
    await directory?.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
    await closeDatabase(db).catch(() => undefined);
    await telemetry.close().catch(() => undefined);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // One line, what and why (the structured fields are in the error's context).
    process.stderr.write(`bulwark-audit-ledger: ${isBulwarkError(error) || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof InputError ? 2 : 1;
  },
);
