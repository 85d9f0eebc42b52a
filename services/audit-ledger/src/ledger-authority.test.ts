import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSealedEvent } from '@bulwark/events';
import { ForbiddenProducerError } from './errors.js';
import { crypto, makeEvents, openTestLedger, type LedgerFixture } from './ledger.fixture.js';

// Who may produce what (DESIGN §3a), enforced by the ledger core itself: nothing forbidden is ever sealed.
let fx: LedgerFixture;

beforeAll(async () => {
  fx = await openTestLedger('ledger_authority');
});
afterAll(async () => {
  await fx?.close();
});

describe('append and the producer table', () => {
  it('refuses, whole, a batch with an event its producer may not produce (DESIGN §3a)', async () => {
    const size = (await fx.ledger.head()).size;
    const [own] = makeEvents(1).map((e) => ({ ...e, agentId: 'agent.mallory', eventType: 'agent.started' as const }));
    const policy = { ...makeEvents(1)[0]!, agentId: 'agent.mallory', eventType: 'policy.updated' as const };
    const error = await fx.ledger.append([{ producer: 'agent.mallory', event: own }, { producer: 'agent.mallory', event: policy }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForbiddenProducerError);
    expect(error).toMatchObject({ code: 'E_EVENT_PRODUCER', context: { producer: 'agent.mallory', eventType: 'policy.updated', eventId: policy.eventId } });
    // About another agent: also refused; a service may report it.
    const aboutOther = { ...makeEvents(1)[0]!, agentId: 'agent.victim', eventType: 'data.accessed' as const };
    await expect(fx.ledger.append([{ producer: 'agent.mallory', event: aboutOther }])).rejects.toThrow('data.accessed about agent.victim may be produced only by agent.victim itself or a service (svc.*), not by agent.mallory');
    await expect(fx.ledger.append([{ producer: 'not a principal', event: own }])).rejects.toMatchObject({ code: 'E_EVENT_PRODUCER' });
    expect((await fx.ledger.head()).size).toBe(size);
  });

  it('stores the producer it was given, not one the event claims, and hashes it', async () => {
    const [event] = makeEvents(1).map((e) => ({ ...e, agentId: 'agent.honest', eventType: 'agent.started' as const, producer: 'svc.policy' }));
    const { appended } = await fx.ledger.append([{ producer: 'agent.honest', event }]);
    expect(appended[0]!.producer).toBe('agent.honest');
    const row = await fx.db.selectFrom('events').select(['producer', 'seq']).where('event_id', '=', event!.eventId).executeTakeFirstOrThrow();
    expect(row.producer).toBe('agent.honest');
    expect((await fx.ledger.events(Number(row.seq), 1))[0]!.producer).toBe('agent.honest');
    expect(checkSealedEvent(crypto, fx.ledger.verifierKey.publicKey, { ...appended[0]!, producer: 'svc.policy' })).toBe('event_hash mismatch');
  });

});
