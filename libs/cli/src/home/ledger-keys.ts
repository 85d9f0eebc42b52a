/**
 * Which key signed what the ledger serves over the bus, for CLI commands that check its events and
 * checkpoints themselves (demo, recover). The ledger rotates its key in its own chain (its
 * key changes, the key manager's keys.rotated of svc.audit-ledger); the CLI trusts only the
 * ledger's first key from the home and the changes it fetches, each sealed under the key before
 * it (scheduleOfChanges), never a key the reply names.
 */
import { Commands, LEDGER_PRINCIPAL } from '@bulwark/bus';
import { leafHash, openCheckpoint, verifierKey, verifyInclusion, type EventJson, type InclusionReply } from '@bulwark/audit-ledger';
import { fromHex, type CryptoProvider } from '@bulwark/crypto';
import { BulwarkError } from '@bulwark/errors';
import { LEDGER_KEY_CHANGE_TYPE, ledgerEventOfJson, scheduleOfChanges, type LedgerKeySchedule } from '@bulwark/ledger-reader';
import { callJson, type Session } from './session.js';

/** The ledger's keys from `genesis` on, as its chain's key changes name them; E_LEDGER_KEYS when one does not check. */
export async function ledgerKeySchedule(session: Session, crypto: CryptoProvider, genesis: Uint8Array): Promise<LedgerKeySchedule> {
  const changes = [];
  let cursor: string | undefined;
  do {
    const page = await callJson<{ events: unknown[]; nextCursor?: string }>(session, Commands.audit.query, { eventType: LEDGER_KEY_CHANGE_TYPE, agentId: LEDGER_PRINCIPAL, limit: 1000, ...(cursor === undefined ? {} : { cursor }) }, 10_000);
    changes.push(...page.events.map(ledgerEventOfJson));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  const schedule = scheduleOfChanges(crypto, genesis, changes);
  if (typeof schedule === 'string') throw new BulwarkError('E_LEDGER_KEYS', `the ledger's key changes do not verify from its first key: ${schedule}`, {});
  return schedule;
}

/**
 * Checks `event` as the ledger served it: its signature under the key in force at its seq, and its
 * inclusion under the signed checkpoint the ledger gives with its proof (opened under the key in
 * force at that size). Returns the checkpoint's tree size; throws E_LEDGER_PROOF naming what failed.
 */
export async function proveInLedger(session: Session, key: { crypto: CryptoProvider; logKey: { publicKey: Uint8Array }; origin: string }, event: EventJson): Promise<number> {
  const { crypto, origin } = key;
  const fail = (why: string): never => {
    throw new BulwarkError('E_LEDGER_PROOF', why, { seq: event.seq });
  };
  const proof = await callJson<InclusionReply & { checkpoint?: string | { note: string } }>(session, Commands.audit.proofInclusion, { seq: event.seq }, 10_000);
  const note = typeof proof.checkpoint === 'string' ? proof.checkpoint : proof.checkpoint?.note;
  if (note === undefined) return fail('the inclusion proof came without its signed checkpoint');
  const schedule = await ledgerKeySchedule(session, crypto, key.logKey.publicKey);
  const opened = openCheckpoint(crypto, note, { logKey: verifierKey(crypto, origin, schedule.keyFor(proof.treeSize)), origin });
  if (opened.checkpoint.size !== proof.treeSize) fail(`the proof is for size ${proof.treeSize}, the checkpoint for ${opened.checkpoint.size}`);
  const eventHash = fromHex(event.eventHash, 'eventHash');
  if (!crypto.ed25519.verify(schedule.keyFor(event.seq), eventHash, fromHex(event.signature, 'signature'))) fail(`seq ${event.seq}: the ledger's signature does not verify`);
  verifyInclusion(crypto, event.seq, proof.treeSize, leafHash(crypto, eventHash), proof.proof.map((p) => fromHex(p, 'proof')), opened.checkpoint.rootHash);
  return proof.treeSize;
}
