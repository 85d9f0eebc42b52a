import type { Kysely, Transaction } from 'kysely';
import { LedgerError } from '../errors.js';
import type { NodeId } from '../merkle/compact-range.js';
import { bytes, nodeKey, toNumber } from './rows.js';
import type { LedgerDatabase } from './schema.js';

/**
 * Reads stored Merkle nodes for proofs (`resolvePlan`), in the order asked; a node that is not
 * stored is a LedgerError E_LEDGER (a tree the ledger wrote has every node a proof needs).
 */
export function treeNodeReader(db: Kysely<LedgerDatabase> | Transaction<LedgerDatabase>): (ids: readonly NodeId[]) => Promise<Uint8Array[]> {
  return async (ids) => {
    const rows = await db
      .selectFrom('tree_nodes')
      .select(['level', 'idx', 'hash'])
      .where((eb) => eb.or(ids.map((id) => eb.and([eb('level', '=', id.level), eb('idx', '=', BigInt(id.index))]))))
      .execute();
    const found = new Map(rows.map((r) => [nodeKey({ level: r.level, index: toNumber(r.idx, 'tree_nodes.idx') }), bytes(r.hash)]));
    return ids.map((id) => {
      const hash = found.get(nodeKey(id));
      if (hash === undefined) throw new LedgerError('E_LEDGER', `tree node level ${id.level} index ${id.index} is missing from tree_nodes`, { ...id });
      return hash;
    });
  };
}
