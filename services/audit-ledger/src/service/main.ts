#!/usr/bin/env node
/**
 * `bulwark-audit-ledger`: the audit-ledger service process, booted by @bulwark/service-host
 * (configuration, keys, the pinned root, identity svc.audit-ledger and its NATS user,
 * telemetry, bus, directory, signals, exit codes: see its README) with DATABASE_URL and the
 * SYMBIONT_LEDGER_* settings of its own.
 *
 * It rotates its own identity while it runs (`rotatesOwnKeys`): its event-signing key with it.
 * The chain says which key signs each event (a committed `keys.rotated` of svc.audit-ledger puts
 * its key in force from the next seq), every reader starts from the genesis key (version 1,
 * BULWARK_LEDGER_PUBLIC_KEY), and the ledger signs with the key in force, from its store
 * (own-keys.ts: its versions, and the pending slot while its rotation is out).
 *
 * On stop it drains: no new messages, the batch in hand is committed and acknowledged,
 * committed events are re-published, then the database is closed.
 */
import { LEDGER_PRINCIPAL, streamSpecs } from '@bulwark/bus';
import { busLimits } from '@bulwark/config';
import { parseRootPublicKey } from '@bulwark/keystore';
import { serviceMain } from '@bulwark/service-host';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { migrateLedger } from '../ledger.js';
import type { LedgerDatabase } from '../store/schema.js';
import { observeLedgerService } from './metrics.js';
import { storeOwnKeys } from './own-keys.js';
import { LedgerService } from './service.js';
import { loadLedgerSettings } from './settings.js';

serviceMain({
  name: 'audit-ledger',
  principal: LEDGER_PRINCIPAL,
  settings: ({ config, env }) => ({ ...loadLedgerSettings(env), streams: streamSpecs(busLimits(config).streams) }),
  namespace: (settings) => settings.namespace,
  // Every use of its keys reads the live identity (senders, receivers, sessions, the channel key
  // ring per version); its signing key is the chain's (own-keys.ts), not the identity's.
  rotatesOwnKeys: true,
  start: async ({ bus, config, crypto, identity, directory, settings, log, telemetry, defer, store, env }) => {
    const pin = env['BULWARK_LEDGER_PUBLIC_KEY'];
    const ownKeys = await storeOwnKeys({ crypto, origin: settings.origin, store, principal: identity.id, ...(pin === undefined ? {} : { pinned: parseRootPublicKey(pin, 'BULWARK_LEDGER_PUBLIC_KEY') }) });
    // The X25519 public key of each version its store holds at start (later ones are in its key facts).
    const versions = new Map((await store.list(identity.id)).filter((i) => i.kind === 'x25519').map((i) => [i.version, i.publicKey]));
    const db = await createDatabase<LedgerDatabase>({ ...(config.database.url === undefined ? {} : { url: config.database.url }), schema: settings.schema });
    defer(() => closeDatabase(db));
    await migrateLedger(db);
    const service = await LedgerService.start({ bus, db, crypto, identity, ownKeys, ownKeyVersions: (v) => versions.get(v), directory, settings, log });
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
