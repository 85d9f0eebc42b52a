#!/usr/bin/env node
/**
 * `bulwark-incident-response`: the incident response process, booted by @bulwark/service-host
 * (configuration, keys, the pinned root, identity svc.incident-response and its NATS user,
 * telemetry, bus, directory, the ledger's key from its directory entry or
 * BULWARK_LEDGER_PUBLIC_KEY, signals, exit codes: see its README). Its own settings:
 * - BULWARK_INCIDENT_CHANNEL: the SOC stream's channel (`bulwark up`: soc.incidents): each finding
 *   published once under its current epoch; its analyst subscribers may call bulwark.incident.*;
 * - SYMBIONT_LEDGER_CHANNEL: the ledger's full stream's channel, read as a subscriber;
 * - BULWARK_INCIDENT_ANALYSTS: analysts, comma-separated principal ids, who may call
 *   bulwark.incident.* (and, without a SOC channel, receive the stream sealed to each);
 * - BULWARK_INCIDENT_RULES: extra rule files, comma-separated, loaded after the shipped rules;
 * - BULWARK_INCIDENT_WEBHOOK_URL and BULWARK_INCIDENT_WEBHOOK_SECRET (hex or base64): the Critical notification;
 * - SYMBIONT_BUS_* stream limits.
 * The ledger must re-publish its full batches to svc.incident-response (SYMBIONT_LEDGER_REPUBLISH_TO,
 * the default) and svc.incident-response must be a policy administrator (SYMBIONT_POLICY_ADMINS).
 * SIGHUP reloads the rule files; a file that fails to load leaves the previous rules in force.
 */
import { ServicePrincipals, streamSpecs } from '@bulwark/bus';
import { busLimits } from '@bulwark/config';
import { InputError } from '@bulwark/errors';
import { parseRootPublicKey } from '@bulwark/keystore';
import { readinessWith, serviceMain } from '@bulwark/service-host';
import { RuleBook } from './rules/book.js';
import { DEFAULT_RULES_FILE, readRuleSources } from './rules/files.js';
import { startIncidentService } from './service/service.js';

const list = (env: NodeJS.ProcessEnv, name: string) =>
  (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

serviceMain({
  name: 'incident-response',
  principal: ServicePrincipals.incident,
  // Its identity rotates on the interval while it runs: every use below reads the live identity
  // (its senders, sessions and channel key ring; each epoch opened with the key of its version).
  rotatesOwnKeys: true,
  settings: async ({ env, log }) => {
    const ruleFiles = [DEFAULT_RULES_FILE, ...list(env, 'BULWARK_INCIDENT_RULES')];
    const book = new RuleBook(await readRuleSources(ruleFiles), log);
    const webhookUrl = env['BULWARK_INCIDENT_WEBHOOK_URL'];
    const webhookSecret = env['BULWARK_INCIDENT_WEBHOOK_SECRET'];
    if (webhookUrl !== undefined && webhookSecret === undefined) throw new InputError('E_CONFIG', 'BULWARK_INCIDENT_WEBHOOK_URL is set without BULWARK_INCIDENT_WEBHOOK_SECRET', {});
    const webhook = webhookUrl === undefined ? undefined : { url: webhookUrl, secret: parseRootPublicKey(webhookSecret!, 'BULWARK_INCIDENT_WEBHOOK_SECRET') };
    const channel = (name: string) => (env[name] ? env[name] : undefined);
    return { ruleFiles, book, webhook, analysts: list(env, 'BULWARK_INCIDENT_ANALYSTS'), ledgerChannel: channel('SYMBIONT_LEDGER_CHANNEL'), socChannel: channel('BULWARK_INCIDENT_CHANNEL') };
  },
  start: async ({ bus, config, crypto, identity, directory, ledgerPublicKey, settings, log, defer, onKeysRotated, store }) => {
    const { book, ruleFiles } = settings;
    // The public key of each version its store holds at start (later versions are in the ledger's key facts).
    const versions = new Map((await store.list(identity.id)).filter((i) => i.kind === 'x25519').map((i) => [i.version, i.publicKey]));
    const service = await startIncidentService({
      bus,
      provider: crypto,
      identity,
      ownKeyVersions: (v) => versions.get(v),
      directory,
      ledgerPublicKey: ledgerPublicKey(),
      rules: book.rules,
      analysts: settings.analysts,
      ...(settings.webhook === undefined ? {} : { webhook: settings.webhook }),
      streams: streamSpecs(busLimits(config).streams),
      ...(settings.ledgerChannel === undefined ? {} : { ledgerChannel: settings.ledgerChannel }),
      ...(settings.socChannel === undefined ? {} : { socChannel: settings.socChannel }),
      logger: log,
    });
    onKeysRotated(() => service.keysRotated());
    const reload = (): void => {
      void readRuleSources(ruleFiles).then((sources) => {
        const result = book.replace(sources);
        if (result.ok) {
          service.state.engine.replaceRules(book.rules);
          log.info({ rules: result.rules }, 'rules reloaded');
        }
      });
    };
    process.on('SIGHUP', reload);
    defer(() => void process.off('SIGHUP', reload));
    log.info({ rules: book.rules.length, incidents: service.state.all().length }, 'incident-response: running');
    return {
      // A halted ledger reader detects nothing more: up, not ready.
      health: () => readinessWith(bus, () => {
        const halted = service.halted();
        return halted === undefined ? undefined : `ledger reader halted at seq ${halted.seq} (${halted.code})`;
      }),
      stop: () => service.stop(),
    };
  },
});
