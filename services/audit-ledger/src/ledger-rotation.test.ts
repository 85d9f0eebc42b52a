// The ledger's own key rotates in its chain (signing-keys.ts): the key manager's keys.rotated of
// svc.audit-ledger is signed by the key it retires, everything after it by the key it names. The
// attacks: a key change the ledger does not hold, one back to a retired key, an event after the
// change signed with the retired key (a thief of it), the change row itself rewritten.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64 } from '@bulwark/crypto';
import { newEvent, type AuditEvent } from '@bulwark/events';
import { sql } from 'kysely';
import { LedgerReader } from './archive-reader.js';
import { exportLedger, verifyExport } from './export.js';
import { AuditLedger, prepareEvent, type ProducedEvent } from './ledger.js';
import { ORIGIN, crypto, makeEvents, openTestLedger, produced, type LedgerFixture } from './ledger.fixture.js';
import { openCheckpoint, signCheckpoint } from './note/checkpoint.js';
import { signerKey, verifierKey, type SignerKey } from './note/keys.js';
import type { LedgerSigningKeys } from './signing-keys.js';
import { verifyLedger } from './verify.js';
import { Witness } from './witness.js';
import { COSIGNATURE_V1_TYPE } from './note/keys.js';

let fx: LedgerFixture;
const second = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
const third = signerKey(crypto, ORIGIN, crypto.randomBytes(32));

function keysHolding(genesis: SignerKey, ...later: SignerKey[]): LedgerSigningKeys {
  const all = [genesis, ...later];
  return { genesis: genesis.publicKey, held: (publicKey) => all.find((k) => crypto.equal(k.publicKey, publicKey)) };
}

/** The key manager's fact moving the ledger to `key` at `version`. */
function rotation(version: number, key: Uint8Array): ProducedEvent {
  const details = { principal: 'svc.audit-ledger', by: 'analyst.admin', version, ed25519: toBase64(key), x25519: toBase64(crypto.randomBytes(32)), at: Date.now(), trigger: 'on_demand', natsUser: null };
  return { producer: 'svc.key-manager', event: newEvent({ agentId: 'svc.audit-ledger', eventType: 'keys.rotated', details }) as AuditEvent };
}

async function collect(gen: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of gen) out.push(line);
  return out;
}

const verifyFromGenesis = () => verifyLedger(fx.db, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) });

let ledger: AuditLedger;
let changeSeq: number;

beforeAll(async () => {
  fx = await openTestLedger('ledger_rotation', { checkpointEvery: 0 });
  ledger = new AuditLedger(fx.db, { crypto, origin: ORIGIN, signingKeys: keysHolding(fx.signer, second, third), checkpointEvery: 10 });
  await ledger.append(produced(makeEvents(7)));
  // The change mid-batch: the events before it and it under the first key, the rest under the second.
  const result = await ledger.append([...produced(makeEvents(2)), rotation(2, second.publicKey), ...produced(makeEvents(3))]);
  changeSeq = result.appended[2]!.seq;
  // And pipelined batches after it, as the service appends.
  await Promise.all([0, 1, 2].map(() => ledger.appendPipelined(produced(makeEvents(4)).map(({ event, producer }) => prepareEvent(event, producer)))));
});
afterAll(async () => {
  await ledger?.close();
  await fx?.close();
});

describe('the ledger rotates its own key in its chain', () => {
  it('signs up to the change with the first key, after it with the new one, and checkpoints with the key in force', async () => {
    const events = await ledger.events(0, 1000);
    expect(events).toHaveLength(25);
    for (const e of events) {
      const key = e.seq <= changeSeq ? fx.signer.publicKey : second.publicKey;
      expect(crypto.ed25519.verify(key, e.eventHash, e.signature), `seq ${e.seq}`).toBe(true);
    }
    expect(ledger.verifierKey.publicKey).toEqual(second.publicKey);
    expect(await ledger.keyInForce()).toMatchObject({ version: 2, fromSeq: changeSeq + 1 });
    expect((await ledger.keyAt(changeSeq)).publicKey).toEqual(fx.signer.publicKey);
    // Checkpoints of size 13 and 21 (both above the change at 9) were signed by the second key only.
    const at13 = await ledger.checkpointAt(13);
    expect(openCheckpoint(crypto, at13!.note, { origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, second.publicKey) }).checkpoint.size).toBe(13);
    expect(() => openCheckpoint(crypto, at13!.note, { origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) })).toThrow(/no signature from a known key/);
  });

  it('verifies from the first key alone: the database, a whole export, and an export from after the change with the new key', async () => {
    expect(await verifyFromGenesis()).toMatchObject({ ok: true, size: 25, checkpointsChecked: 2 });
    const lines = await collect(exportLedger(ledger));
    expect(await verifyExport(lines, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) })).toMatchObject({ ok: true, events: 25 });
    const tail = await collect(exportLedger(ledger, { fromSeq: changeSeq + 2 }));
    expect(await verifyExport(tail, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, second.publicKey) })).toMatchObject({ ok: true, events: 25 - changeSeq - 2 });
    // The read side the CLI uses: checkpoints opened under the key in force at their size, from the first key.
    const reader = new LedgerReader(fx.db, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) });
    expect(await reader.inclusionProof(changeSeq + 1)).toMatchObject({ seq: changeSeq + 1, treeSize: 25 });
    expect(await reader.consistencyProof(13)).toMatchObject({ size1: 13, size2: 25 });
    // The first key cannot start there: the export names the key in force at its start.
    expect(await verifyExport(tail, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) })).toMatchObject({ ok: false, problem: 'malformed' });
  });

  it('a witness follows the change: the event sealed by the key it trusts and proven in the new checkpoint; a forged or unproven change is refused', async () => {
    const genesisKey = verifierKey(crypto, ORIGIN, fx.signer.publicKey);
    const witness = new Witness({ crypto, key: signerKey(crypto, 'bulwark.test/w', crypto.randomBytes(32), COSIGNATURE_V1_TYPE), origin: ORIGIN, logKey: genesisKey });
    // The tree before the change, signed by the first key (a checkpoint of a size at or below the change).
    const early = signCheckpoint(crypto, { origin: ORIGIN, size: changeSeq, rootHash: await ledger.rootAt(changeSeq), extensions: [] }, [fx.signer]);
    witness.cosign(early, []);
    const later = (await ledger.checkpointAt(21))!;
    const proof = await ledger.consistencyProof(changeSeq, 21);
    const [change] = await ledger.events(changeSeq, 1);
    const inclusion = (await ledger.inclusionProof(changeSeq, 21)).proof;
    // Without the change the witness cannot open it; with a wrong inclusion proof, or a change not sealed by the trusted key, neither.
    expect(() => witness.cosign(later.note, proof)).toThrow(/witness refuses to cosign/);
    expect(() => witness.cosign(later.note, proof, [{ event: change!, inclusion: inclusion.slice(1) }])).toThrow(/not in the checkpoint's tree/);
    const stranger = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
    const resealed = { ...change!, signature: crypto.ed25519.sign(stranger.secretKey, change!.eventHash) };
    expect(() => witness.cosign(later.note, proof, [{ event: resealed, inclusion }])).toThrow(/signature invalid under the log key it would retire/);
    const cosigned = witness.cosign(later.note, proof, [{ event: change!, inclusion }]);
    expect(cosigned.checkpoint.size).toBe(21);
    expect(witness.logKey.publicKey).toEqual(second.publicKey);
  });

  it('a restarted ledger signs on with the key its stored chain names; one that does not hold it signs nothing', async () => {
    const restarted = new AuditLedger(fx.db, { crypto, origin: ORIGIN, signingKeys: keysHolding(fx.signer, second), checkpointEvery: 10 });
    const more = await restarted.append(produced(makeEvents(2)));
    expect(crypto.ed25519.verify(second.publicKey, more.appended[0]!.eventHash, more.appended[0]!.signature)).toBe(true);
    await restarted.close();
    const without = new AuditLedger(fx.db, { crypto, origin: ORIGIN, signingKeys: keysHolding(fx.signer), checkpointEvery: 10 });
    const before = (await ledger.head()).size;
    await expect(without.append(produced(makeEvents(1)))).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringContaining('(version 2) is not held by this process') });
    expect((await ledger.head()).size).toBe(before);
    await without.close();
    expect(await verifyFromGenesis()).toMatchObject({ ok: true });
  });

  it('refuses, whole, a batch holding a change to a key it does not hold, back to a retired key, or not above the version in force', async () => {
    const before = (await ledger.head()).size;
    const stranger = crypto.ed25519.generateKeyPair().publicKey;
    await expect(ledger.append([...produced(makeEvents(1)), rotation(3, stranger)])).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringContaining('this ledger does not hold') });
    await expect(ledger.append([rotation(3, fx.signer.publicKey)])).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringContaining('returns to a key the ledger used before') });
    await expect(ledger.append([rotation(2, third.publicKey)])).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringContaining('not above version 2') });
    expect((await ledger.head()).size).toBe(before);
    // A well-formed change to a held key goes through, and the chain still verifies from the first key.
    await ledger.append([rotation(3, third.publicKey), ...produced(makeEvents(1))]);
    expect(ledger.verifierKey.publicKey).toEqual(third.publicKey);
    expect(await verifyFromGenesis()).toMatchObject({ ok: true });
  });

  it('names an event after the change that the retired key signed (a thief of it), and a rewritten change', async () => {
    const victim = changeSeq + 3;
    const row = await fx.db.selectFrom('events').select(['event_hash']).where('seq', '=', BigInt(victim)).executeTakeFirstOrThrow();
    const forged = crypto.ed25519.sign(fx.signer.secretKey, row.event_hash);
    await expect(
      fx.db.transaction().execute(async (trx) => {
        await trx.updateTable('events').set({ signature: forged }).where('seq', '=', BigInt(victim)).execute();
        const report = await verifyLedger(trx, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) });
        throw Object.assign(new Error('rollback'), { report });
      }),
    ).rejects.toMatchObject({ report: { ok: false, seq: victim, problem: 'signature invalid' } });
    // The change re-pointed at another key (its hash recomputed would no longer be signed): caught at the change.
    await expect(
      fx.db.transaction().execute(async (trx) => {
        await sql`update events set details = replace(details, ${toBase64(second.publicKey)}, ${toBase64(third.publicKey)}) where seq = ${changeSeq}`.execute(trx);
        const report = await verifyLedger(trx, { crypto, origin: ORIGIN, logKey: verifierKey(crypto, ORIGIN, fx.signer.publicKey) });
        throw Object.assign(new Error('rollback'), { report });
      }),
    ).rejects.toMatchObject({ report: { ok: false, seq: changeSeq, problem: 'event_hash mismatch' } });
  });
});
