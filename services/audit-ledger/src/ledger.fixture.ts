/** Test support (not built): a ledger in a fresh PostgreSQL schema, and events to put in it. */
import { createCryptoProvider } from '@bulwark/crypto';
import { EVENT_TYPES, PRODUCER_RULES, newEventId, type AuditEvent } from '@bulwark/events';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { AuditLedger, migrateLedger, type LedgerDb, type ProducedEvent } from './ledger.js';
import { signerKey, type SignerKey } from './note/keys.js';
import type { LedgerDatabase } from './store/schema.js';

export const crypto = createCryptoProvider('node');
export const ORIGIN = 'bulwark.test/audit';

export interface LedgerFixture {
  readonly db: LedgerDb;
  readonly ledger: AuditLedger;
  /** The ledger's key, for tests that play a ledger gone bad. */
  readonly signer: SignerKey;
  close(): Promise<void>;
}

export async function openTestLedger(prefix: string, options: { checkpointEvery?: number } = {}): Promise<LedgerFixture> {
  const schema = withTestSchema(prefix);
  const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  const signer = signerKey(crypto, ORIGIN, crypto.randomBytes(32));
  const ledger = new AuditLedger(db, { crypto, origin: ORIGIN, signer, checkpointEvery: options.checkpointEvery ?? 50 });
  return {
    db,
    ledger,
    signer,
    close: async () => {
      await closeDatabase(db);
      await schema.drop();
    },
  };
}

let counter = 0;

/** Events of varied types, agents and details (unicode, numbers, nesting). */
export function makeEvents(n: number): AuditEvent[] {
  return Array.from({ length: n }, () => {
    counter += 1;
    return {
      eventId: newEventId(),
      timestamp: 1732579200000 + counter,
      agentId: counter % 3 === 0 ? 'svc.policy' : `agent.${(counter % 7).toString(16).padStart(8, '0')}`,
      eventType: EVENT_TYPES[counter % EVENT_TYPES.length]!,
      details: { n: counter, score: counter / 7, note: `évènement ${counter} ✓`, nested: { list: [counter, null, true, 'x'] } },
    };
  });
}

/**
 * A principal that may produce `event` (DESIGN §3a): the owning service, the agent itself
 * for its own activity, a service otherwise. What a test uses when who delivered the event
 * is not what it is about.
 */
export function rightfulProducer(event: Pick<AuditEvent, 'eventType' | 'agentId'>): string {
  const rule = PRODUCER_RULES[event.eventType];
  switch (rule.kind) {
    case 'service':
      return rule.service;
    case 'self-or-service':
    case 'any-principal':
      return event.agentId.startsWith('agent.') ? event.agentId : 'svc.policy';
    case 'any-service':
      return 'svc.policy';
  }
}

/** Events paired with their rightful producers, as `AuditLedger.append` takes them. */
export function produced(events: readonly AuditEvent[]): ProducedEvent[] {
  return events.map((event) => ({ producer: rightfulProducer(event), event }));
}
