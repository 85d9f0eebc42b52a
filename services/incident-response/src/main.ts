#!/usr/bin/env node
/**
 * `bulwark-incident-response`: the incident response process. Configuration from @bulwark/config
 * (NATS_URL, SYMBIONT_KEY_DIR, SYMBIONT_ROOT_PUBLIC_KEY, SYMBIONT_CRYPTO_PROVIDER, SYMBIONT_BUS_*
 * stream limits, SYMBIONT_LOG_LEVEL) and, for this service:
 * - BULWARK_INCIDENT_ANALYSTS: enrolled analysts, comma-separated principal ids (they receive the
 *   SOC stream and may call bulwark.incident.*);
 * - BULWARK_INCIDENT_RULES: extra rule files, comma-separated, loaded after the shipped rules;
 * - BULWARK_INCIDENT_WEBHOOK_URL and BULWARK_INCIDENT_WEBHOOK_SECRET (hex or base64): the Critical notification;
 * - BULWARK_LEDGER_PUBLIC_KEY: the ledger's event key, if not its directory entry's.
 * The ledger must re-publish its full batches to svc.incident-response (SYMBIONT_LEDGER_REPUBLISH_TO,
 * the default) and svc.incident-response must be a policy administrator (SYMBIONT_POLICY_ADMINS).
 * SIGHUP reloads the rule files; a file that fails to load leaves the previous rules in force.
 * Exit codes: 0 after a clean stop, 1 on a failure at run time, 2 on bad configuration.
 */
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, ServicePrincipals, streamSpecs } from '@bulwark/bus';
import { busLimits, loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { InputError, isBulwarkError } from '@bulwark/errors';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey } from '@bulwark/keystore';
import { busCredentialsFor } from '@bulwark/nats-auth';
import { createLogger } from '@bulwark/telemetry';
import { RuleBook } from './rules/book.js';
import { DEFAULT_RULES_FILE, readRuleSources } from './rules/files.js';
import { startIncidentService, type IncidentService } from './service/service.js';

const list = (name: string) =>
  (process.env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

async function main(): Promise<number> {
  const { config } = loadConfig();
  const log = createLogger({ service: 'incident-response', level: config.log.level });
  const crypto = createCryptoProvider(config.security.crypto_provider);
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) throw new InputError('E_CONFIG', 'incident-response: keys.root_public_key (SYMBIONT_ROOT_PUBLIC_KEY) is unset', {});
  const rootPublicKey = parseRootPublicKey(pinned, 'keys.root_public_key');
  const ruleFiles = [DEFAULT_RULES_FILE, ...list('BULWARK_INCIDENT_RULES')];
  const book = new RuleBook(await readRuleSources(ruleFiles), log);
  const webhookUrl = process.env['BULWARK_INCIDENT_WEBHOOK_URL'];
  const webhookSecret = process.env['BULWARK_INCIDENT_WEBHOOK_SECRET'];
  if (webhookUrl !== undefined && webhookSecret === undefined) throw new InputError('E_CONFIG', 'BULWARK_INCIDENT_WEBHOOK_URL is set without BULWARK_INCIDENT_WEBHOOK_SECRET', {});
  const store = await FileKeyStore.open({ dir: config.keys.dir ?? DEFAULT_KEY_DIR, wrapper: loadKek({ provider: crypto, kekFile: config.keys.kek_file }), provider: crypto });
  const identity = await loadIdentity(store, ServicePrincipals.incident);
  const bus = await connectBus({ url: config.nats.url, name: `${ServicePrincipals.incident}#${process.pid}`, ...(await busCredentialsFor(store, ServicePrincipals.incident)) });
  let directory: KvDirectory | undefined;
  let service: IncidentService | undefined;
  try {
    directory = await KvDirectory.open(bus, {
      provider: crypto,
      rootPublicKey,
      onRejected: (r) => log.warn({ key: r.key, reason: r.reason, detail: r.detail }, 'directory entry rejected'),
      onFailed: (error) => log.error({ err: error }, 'directory watch ended: every peer will be refused'),
    });
    const ledgerKeyText = process.env['BULWARK_LEDGER_PUBLIC_KEY'];
    const ledgerPublicKey = ledgerKeyText === undefined ? directory.lookup(LEDGER_PRINCIPAL)?.ed25519PublicKey : parseRootPublicKey(ledgerKeyText, 'BULWARK_LEDGER_PUBLIC_KEY');
    if (ledgerPublicKey === undefined) throw new InputError('E_CONFIG', `incident-response: no directory entry for ${LEDGER_PRINCIPAL} and no BULWARK_LEDGER_PUBLIC_KEY`, {});
    service = await startIncidentService({
      bus,
      provider: crypto,
      identity: { id: identity.id, x25519: identity.x25519 },
      directory,
      ledgerPublicKey,
      rules: book.rules,
      analysts: list('BULWARK_INCIDENT_ANALYSTS'),
      ...(webhookUrl === undefined ? {} : { webhook: { url: webhookUrl, secret: parseRootPublicKey(webhookSecret!, 'BULWARK_INCIDENT_WEBHOOK_SECRET') } }),
      streams: streamSpecs(busLimits(config).streams),
      ...(process.env['SYMBIONT_LEDGER_CHANNEL'] ? { ledgerChannel: process.env['SYMBIONT_LEDGER_CHANNEL'] } : {}),
      ...(process.env['BULWARK_INCIDENT_CHANNEL'] ? { socChannel: process.env['BULWARK_INCIDENT_CHANNEL'] } : {}),
      logger: log,
    });
    const running = service;
    process.on('SIGHUP', () => {
      void readRuleSources(ruleFiles).then((sources) => {
        const result = book.replace(sources);
        if (result.ok) {
          running.state.engine.replaceRules(book.rules);
          log.info({ rules: result.rules }, 'rules reloaded');
        }
      });
    });
    log.info({ rules: book.rules.length, incidents: service.state.all().length }, 'incident-response: running');
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'incident-response: stopping');
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
    process.stderr.write(`bulwark-incident-response: ${isBulwarkError(error) || error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof InputError ? 2 : 1;
  },
);
