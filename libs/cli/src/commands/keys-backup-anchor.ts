/**
 * The backup's hash anchored in the ledger (issue 12, "Backup and recovery"): `bulwark keys
 * backup` records the SHA-256 of the manifest it made (`backupHash`) as a `keys.exported` event of
 * svc.key-manager (the producer of every `keys.*` event; the backup runs where its store is, with
 * its identity and NATS user), sealed to the ledger like any event. `bulwark keys restore` refuses
 * by default, before writing anything, a backup whose hash no such event in the ledger database
 * records, whose ledger does not verify under the verifier key the backup holds, or whose ledger
 * cannot be opened at all: a manifest made elsewhere, or never declared, is not restored silently
 * (only `--no-anchor-check` skips the check, and says so).
 */
import { createEventPublisher, Events, LEDGER_PRINCIPAL, ServicePrincipals } from '@bulwark/bus';
import { SealedSender } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';
import { encodeEvent, newEvent } from '@bulwark/events';
import type { FileKeyStore } from '@bulwark/keystore';
import { openSession } from '../home/session.js';
import type { CommandIO } from '../io.js';
import { verifyLedger } from '@bulwark/audit-ledger';
import type { BulwarkConfig } from '@bulwark/config';
import { ledgerLocation, openLedgerDatabase, resolveLedgerKey, type DatabaseFlags } from './audit-source.js';

/** What the anchor event records (its `details`). */
export interface BackupAnchor {
  readonly kind: 'key_store_backup';
  readonly backup_id: string;
  readonly sha256: string;
  readonly threshold: number;
  readonly holders: readonly string[];
  readonly files: number;
}

/** Publishes the anchor as svc.key-manager (its identity and NATS user from `store`, the key manager's, open); resolves once the events stream holds it (the ledger appends it from there). */
export async function anchorBackup(io: CommandIO, configFile: string | undefined, anchor: BackupAnchor, store: FileKeyStore): Promise<{ eventId: string }> {
  const session = await openSession({ env: io.env, cwd: io.cwd, principal: ServicePrincipals.keys, name: 'bulwark-keys-backup', store, ...(configFile === undefined ? {} : { configFile }) }).catch((cause: unknown) => {
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

/**
 * The ledger row that anchors `sha256`, from svc.key-manager; undefined when there is none. The
 * ledger is verified first (chain, signatures, producers, checkpoints) with `verifierKey` (the
 * `audit-ledger.vkey` the backup holds): a row in a ledger that does not verify anchors nothing.
 */
export async function findAnchor(io: CommandIO, flags: DatabaseFlags, config: () => BulwarkConfig, backup: { backupId: string; verifierKeyText: string; sha256: string }): Promise<{ seq: number; where: string } | undefined> {
  const { verifierKeyText, sha256 } = backup;
  const key = resolveLedgerKey(io, { publicKey: verifierKeyText }, config);
  // A ledger that cannot be opened is a refusal, never a skipped check (fail secure).
  const ledger = await openLedgerDatabase(io, flags, config).catch((cause: unknown) => {
    const { where } = ledgerLocation(io, flags, config);
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new InputError('E_BACKUP_ANCHOR_UNREACHABLE', `restore: cannot check backup ${backup.backupId}'s anchor: the ledger database (${where}) cannot be opened (${why}); nothing restored. Point at the ledger with --database / --schema (or $DATABASE_URL, $SYMBIONT_LEDGER_SCHEMA), or pass --no-anchor-check to restore without the check`, { where }, { cause });
  });
  try {
    const verified = await verifyLedger(ledger.db, key);
    if (!verified.ok) throw new InputError('E_BACKUP_ANCHOR_UNVERIFIED', `restore: the ledger in ${ledger.where} does not verify (${verified.message}): its anchors cannot be trusted; nothing restored`, {});
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
