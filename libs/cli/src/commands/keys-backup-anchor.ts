/**
 * The backup's hash anchored in the ledger (issue 12, "Backup and recovery"): `bulwark keys
 * backup` records the SHA-256 of the manifest it made (`backupHash`) as a `keys.exported` event of
 * svc.key-manager (the producer of every `keys.*` event; the backup runs where its store is, with
 * its identity and NATS user), sealed to the ledger like any event. `bulwark keys restore
 * --check-anchor` refuses, before writing anything, a backup whose hash no such event in the ledger
 * database records: a manifest made elsewhere, or never declared, is not restored silently.
 * `bulwark audit verify` on that database is what makes the anchor itself trustworthy.
 */
import { createEventPublisher, Events, LEDGER_PRINCIPAL, ServicePrincipals } from '@bulwark/bus';
import { SealedSender } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';
import { encodeEvent, newEvent } from '@bulwark/events';
import { openSession } from '../home/session.js';
import type { CommandIO } from '../io.js';
import { loadCliConfig, openLedgerDatabase, type DatabaseFlags } from './audit-source.js';

/** What the anchor event records (its `details`). */
export interface BackupAnchor {
  readonly kind: 'key_store_backup';
  readonly backup_id: string;
  readonly sha256: string;
  readonly threshold: number;
  readonly holders: readonly string[];
  readonly files: number;
}

/** Publishes the anchor as svc.key-manager; resolves once the events stream holds it (the ledger appends it from there). */
export async function anchorBackup(io: CommandIO, configFile: string | undefined, anchor: BackupAnchor): Promise<{ eventId: string }> {
  const session = await openSession({ env: io.env, cwd: io.cwd, principal: ServicePrincipals.keys, name: 'bulwark-keys-backup', ...(configFile === undefined ? {} : { configFile }) }).catch((cause: unknown) => {
    throw new InputError('E_BACKUP_ANCHOR', `keys backup: cannot connect as ${ServicePrincipals.keys} to anchor the backup in the ledger (${cause instanceof Error ? cause.message : String(cause)}); pass --no-anchor for an offline backup`, {}, { cause });
  });
  try {
    const events = createEventPublisher(session.bus, new SealedSender({ provider: session.provider, self: session.identity, directory: session.directory, recipientId: LEDGER_PRINCIPAL }));
    const event = newEvent({ agentId: ServicePrincipals.keys, eventType: 'keys.exported', details: { ...anchor, holders: [...anchor.holders] } });
    await events.publish({ subject: Events.keys.exported, eventId: event.eventId, payload: encodeEvent(event) });
    return { eventId: event.eventId };
  } finally {
    await session.close();
  }
}

/** The ledger row that anchors `sha256`, from svc.key-manager; undefined when there is none. */
export async function findAnchor(io: CommandIO, flags: DatabaseFlags, sha256: string): Promise<{ seq: number; where: string } | undefined> {
  const ledger = await openLedgerDatabase(io, flags, () => loadCliConfig(io));
  try {
    const rows = await ledger.db.selectFrom('events').select(['seq', 'details']).where('event_type', '=', 'keys.exported').where('producer', '=', ServicePrincipals.keys).orderBy('seq').execute();
    for (const row of rows) {
      const details = JSON.parse(row.details) as Partial<BackupAnchor>;
      if (details.kind === 'key_store_backup' && details.sha256 === sha256) return { seq: Number(row.seq), where: ledger.where };
    }
    return undefined;
  } finally {
    await ledger.close();
  }
}
