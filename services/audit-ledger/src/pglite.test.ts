import { describe, expect, it } from 'vitest';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { ORIGIN, crypto, makeEvents, produced } from './ledger.fixture.js';
import { AuditLedger, migrateLedger } from './ledger.js';
import { verifyInclusion } from './merkle/proofs.js';
import { signerKey } from './note/keys.js';
import type { LedgerDatabase } from './store/schema.js';
import { verifyLedger } from './verify.js';

describe('embedded mode (PGlite)', () => {
  it('appends, proves and verifies the same way as on PostgreSQL', async () => {
    const db = await createDatabase<LedgerDatabase>({ url: 'pglite:memory', schema: 'audit_ledger' });
    try {
      await migrateLedger(db);
      const ledger = new AuditLedger(db, { crypto, origin: ORIGIN, signer: signerKey(crypto, ORIGIN, crypto.randomBytes(32)), checkpointEvery: 10 });
      const batch = makeEvents(25);
      expect((await ledger.append(produced(batch))).appended).toHaveLength(25);
      expect((await ledger.append(produced(batch.slice(0, 5)))).duplicates).toHaveLength(5);
      const cp = await ledger.checkpoint();
      const p = await ledger.inclusionProof(13, cp.size);
      verifyInclusion(crypto, 13, cp.size, p.leafHash, p.proof, cp.rootHash);
      expect(await verifyLedger(db, { crypto, origin: ORIGIN, logKey: ledger.verifierKey, heldCheckpoints: [cp.note] })).toMatchObject({ ok: true, size: 25 });
    } finally {
      await closeDatabase(db);
    }
  });
});
