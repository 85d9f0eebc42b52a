#!/usr/bin/env node
/**
 * `bulwark-audit-ledger`: the audit-ledger service process, booted by @bulwark/service-host
 * (configuration, keys, the pinned root, identity svc.audit-ledger and its NATS user,
 * telemetry, bus, directory, signals, exit codes: see its README) with DATABASE_URL and the
 * SYMBIONT_LEDGER_* settings of its own.
 *
 * On stop it drains: no new messages, the batch in hand is committed and acknowledged,
 * committed events are re-published, then the database is closed.
 */
import { LEDGER_PRINCIPAL, streamSpecs } from '@bulwark/bus';
import { busLimits } from '@bulwark/config';
import { serviceMain } from '@bulwark/service-host';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { migrateLedger } from '../ledger.js';
import type { LedgerDatabase } from '../store/schema.js';
import { observeLedgerService } from './metrics.js';
import { LedgerService } from './service.js';
import { loadLedgerSettings } from './settings.js';

serviceMain({
  name: 'audit-ledger',
  principal: LEDGER_PRINCIPAL,
  settings: ({ config, env }) => ({ ...loadLedgerSettings(env), streams: streamSpecs(busLimits(config).streams) }),
  namespace: (settings) => settings.namespace,
  start: async ({ bus, config, crypto, identity, directory, settings, log, telemetry, defer }) => {
    const db = await createDatabase<LedgerDatabase>({ ...(config.database.url === undefined ? {} : { url: config.database.url }), schema: settings.schema });
    defer(() => closeDatabase(db));
    await migrateLedger(db);
    const service = await LedgerService.start({ bus, db, crypto, identity, directory, settings, log });
    observeLedgerService(telemetry.meter, bus, service);
    const ready = await service.readiness();
    log.info({ origin: settings.origin, schema: settings.schema, instance: service.instanceId, ready }, 'audit-ledger: running');
    return {
      health: async () => ({ ...(await service.readiness()), size: (await service.ledger.head()).size }),
      stop: async () => {
        await service.stop();
        log.info({ ...service.metrics() }, 'audit-ledger: drained');
      },
    };
  },
});
