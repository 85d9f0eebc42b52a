// Producer-bound events (DESIGN §3a) at the audit-ledger service, against the real NATS and
// PostgreSQL: an enrolled agent seals events straight to the ledger on BULWARK_EVENTS, as an
// attacker holding an agent's keys can. The ledger stores the envelope-authenticated sender as
// each event's producer (whatever the message claims), refuses an event its producer may not
// produce (a policy change, an event about another agent), records instead one
// security.violation naming the real producer, and bounds how many a flood records.
import { create, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedSender, type LocalIdentity } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import {
  CommandClient,
  Commands,
  LEDGER_PRINCIPAL,
  RejectionReporter,
  ServicePrincipals,
  connectBus,
  createEventPublisher,
  ensureStreams,
  removeNamespaceStreams,
  uniqueNamespace,
  type Bus,
  type EventPublisher,
  type EventSubject,
} from '@bulwark/bus';
import { computeEventHash, encodeEvent, encodeEventBatch, eventSubject, newEvent, newEventId, toEventMessage, type AuditEvent } from '@bulwark/events';
import { AuditEventSchema } from '@bulwark/proto';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, signerKey, verifyLedger, type LedgerDatabase, type QueryReply, type VerifyReply } from '@bulwark/audit-ledger';
import { hashedFieldsOfRow } from '../../services/audit-ledger/src/store/rows.js';

const provider = createCryptoProvider('node');
const ORIGIN = 'bulwark.test/authority';
const world = testWorld({ provider });
const directory = world.directory;
const ledgerId = world.add(LEDGER_PRINCIPAL);
const policy: LocalIdentity = world.add(ServicePrincipals.policy);
const mallory: LocalIdentity = world.add('agent.mallory');
const flooder: LocalIdentity = world.add('agent.flooder');
const analyst: LocalIdentity = world.add('analyst.auditor');
world.add(ServicePrincipals.incident);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = <T>(b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as T;
const body = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A flood budget small enough to test: 3 at once, the next after 10 minutes. */
const BUDGET = { burst: 3, refillMs: 600_000 };

describe('audit-ledger service: producer-bound events', () => {
  const namespace = uniqueNamespace('ledgerauth');
  const schema = withTestSchema('ledger_auth');
  let bus: Bus;
  let db: Kysely<LedgerDatabase>;
  let service: LedgerService;
  let client: CommandClient;
  const publisherOf = (self: LocalIdentity): EventPublisher => createEventPublisher(bus, new SealedSender({ provider, self, directory, recipientId: LEDGER_PRINCIPAL }));
  // A fresh message id each time: JetStream's dedupe window would drop a second message with the same one.
  const send = (from: EventPublisher, events: AuditEvent[], payload = events.length === 1 ? encodeEvent(events[0]!) : encodeEventBatch(events)) =>
    from.publish({ subject: eventSubject(events[0]!.eventType) as EventSubject, eventId: newEventId(), payload });
  const rowOf = (eventId: string) => db.selectFrom('events').selectAll().where('event_id', '=', eventId).executeTakeFirst();
  const violationsAbout = async (claimedId: string) =>
    (await db.selectFrom('events').selectAll().where('event_type', '=', 'security.violation').execute()).filter((r) => (JSON.parse(r.details) as { claimed_event_id?: string }).claimed_event_id === claimedId);

  beforeAll(async () => {
    bus = await connectBus({ url: natsUrl(), name: 'ledger-authority-test', namespace });
    await ensureStreams(bus);
    db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
    await migrateLedger(db);
    service = await LedgerService.start({
      bus,
      db,
      crypto: provider,
      identity: ledgerId,
      directory,
      settings: { ...DEFAULT_SETTINGS, origin: ORIGIN, schema: schema.name, namespace, checkpointEvents: 0, checkpointMs: 0, inFlight: 16, batchMaxEvents: 50 },
      violationBudget: BUDGET,
    });
    client = new CommandClient(bus, { sessions: { provider, self: analyst, directory }, rejections: new RejectionReporter({ reporter: 'test', publish: async () => undefined }) });
  });

  afterAll(async () => {
    await service?.stop();
    await closeDatabase(db);
    await schema.drop();
    await removeNamespaceStreams(bus);
    await bus.close();
  });

  it('does not append a policy.updated sealed by an agent, and records a security.violation naming the agent', async () => {
    const forged = newEvent({ agentId: mallory.id, eventType: 'policy.updated', details: { name: 'p', version: 2, text: 'policy p { allow: read(*) }', by: 'analyst.root' } });
    await send(publisherOf(mallory), [forged]);
    await until(async () => (await violationsAbout(forged.eventId)).length === 1, 'the violation');
    expect(await rowOf(forged.eventId)).toBeUndefined();
    const [violation] = await violationsAbout(forged.eventId);
    expect(violation).toMatchObject({ producer: LEDGER_PRINCIPAL, agent_id: mallory.id });
    expect(JSON.parse(violation!.details)).toEqual({
      kind: 'ledger.forbidden_producer',
      producer: mallory.id,
      claimed_event_type: 'policy.updated',
      claimed_agent_id: mallory.id,
      claimed_event_id: forged.eventId,
      subject: 'bulwark.evt.policy.updated',
      reason: `policy.updated may be produced only by svc.policy, not by ${mallory.id}`,
      refused_events: 1,
      msg_id: expect.any(String),
      stream_seq: expect.any(Number),
    });
    // The same event from the policy service is appended (the rule, not the event, was wrong).
    await send(publisherOf(policy), [forged]);
    await until(async () => (await rowOf(forged.eventId)) !== undefined, 'the policy service event');
    expect((await rowOf(forged.eventId))!.producer).toBe(ServicePrincipals.policy);
    expect(service.metrics().forbidden).toBeGreaterThanOrEqual(1);
  });

  it('does not append an agent event about another agent, nor anything else of its message', async () => {
    const own = newEvent({ agentId: mallory.id, eventType: 'agent.started', details: { n: 1 } });
    const aboutOther = newEvent({ agentId: 'agent.victim', eventType: 'data.accessed', details: { resource: 'patient/7' } });
    await send(publisherOf(mallory), [own, aboutOther]);
    await until(async () => (await violationsAbout(aboutOther.eventId)).length === 1, 'the violation');
    // The whole message is refused: its allowed event too (fail secure).
    expect(await rowOf(own.eventId)).toBeUndefined();
    expect(await rowOf(aboutOther.eventId)).toBeUndefined();
    const [violation] = await violationsAbout(aboutOther.eventId);
    expect(violation!.agent_id).toBe(mallory.id);
    expect(JSON.parse(violation!.details)).toMatchObject({
      producer: mallory.id,
      claimed_event_type: 'data.accessed',
      claimed_agent_id: 'agent.victim',
      refused_events: 2,
      reason: `data.accessed about agent.victim may be produced only by agent.victim itself or a service (svc.*), not by ${mallory.id}`,
    });
    // Its own activity alone is appended, with the agent as producer.
    await send(publisherOf(mallory), [own]);
    await until(async () => (await rowOf(own.eventId)) !== undefined, 'the agent event');
    expect((await rowOf(own.eventId))!.producer).toBe(mallory.id);
  });

  it('ignores a producer field written by the sender: the stored producer is the authenticated one', async () => {
    // AuditEvent.producer (field 10) set by the sender to the policy service.
    const claimOf = (event: AuditEvent) => toBinary(AuditEventSchema, create(AuditEventSchema, { ...toEventMessage(event), producer: ServicePrincipals.policy }));
    const own = newEvent({ agentId: mallory.id, eventType: 'tools.invoked', details: { tool: 'grep' } });
    expect(claimOf(own)).not.toEqual(encodeEvent(own));
    await send(publisherOf(mallory), [own], claimOf(own));
    await until(async () => (await rowOf(own.eventId)) !== undefined, 'the event');
    expect((await rowOf(own.eventId))!.producer).toBe(mallory.id);
    // A policy event claiming the policy service as its producer is still the agent's: refused.
    const forged = newEvent({ agentId: ServicePrincipals.policy, eventType: 'policy.registered', details: { name: 'q', version: 1, text: 'policy q { allow: read(*) }' } });
    await send(publisherOf(mallory), [forged], claimOf(forged));
    await until(async () => (await violationsAbout(forged.eventId)).length === 1, 'the violation');
    expect(await rowOf(forged.eventId)).toBeUndefined();
    expect(JSON.parse((await violationsAbout(forged.eventId))[0]!.details)).toMatchObject({ producer: mallory.id, claimed_agent_id: ServicePrincipals.policy });
  });

  it('records at most its budget of violations for a flood of forbidden messages', async () => {
    const from = publisherOf(flooder);
    const flood = Array.from({ length: 40 }, (_, i) => newEvent({ agentId: flooder.id, eventType: 'keys.revoked', details: { i } }));
    for (const event of flood) await send(from, [event]);
    await until(async () => service.metrics().violationsSuppressed >= flood.length - BUDGET.burst, 'the flood to be handled');
    const recorded = (await db.selectFrom('events').selectAll().where('event_type', '=', 'security.violation').where('agent_id', '=', flooder.id).execute()).length;
    expect(recorded).toBe(BUDGET.burst);
    for (const event of flood) expect(await rowOf(event.eventId)).toBeUndefined();
  });

  it('serves producer and the hashed details text in query replies, filters by several types, and verifies', async () => {
    const reply = json<QueryReply>(await client.request(Commands.audit.query, body({ eventTypes: ['security.violation', 'agent.started', 'tools.invoked'], limit: 1000 }), { timeoutMs: 10_000 }));
    const types = new Set(reply.events.map((e) => e.eventType));
    expect(types).toEqual(new Set(['security.violation', 'agent.started', 'tools.invoked']));
    for (const e of reply.events) {
      const row = (await db.selectFrom('events').select(['producer', 'details']).where('seq', '=', BigInt(e.seq)).executeTakeFirstOrThrow())!;
      expect(e.producer).toBe(row.producer);
      expect(e.detailsJcs).toBe(row.details);
    }
    expect(reply.events.filter((e) => e.eventType === 'security.violation').every((e) => e.producer === LEDGER_PRINCIPAL)).toBe(true);
    // eventType still works, and is combined with eventTypes.
    const one = json<QueryReply>(await client.request(Commands.audit.query, body({ eventType: 'tools.invoked' }), { timeoutMs: 10_000 }));
    expect(one.events.map((e) => e.eventType)).toEqual(['tools.invoked']);
    await expect(client.request(Commands.audit.query, body({ eventTypes: ['policy.nope'] }))).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST', message: expect.stringContaining('"policy.nope" is not a known event type') });
    await expect(client.request(Commands.audit.query, body({ eventTypes: Array.from({ length: 65 }, () => 'agent.started') }))).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST' });
    await expect(client.request(Commands.audit.query, body({ eventTypes: [] }))).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST' });
    expect(await verifyLedger(db, { crypto: provider, origin: ORIGIN, logKey: service.ledger.verifierKey })).toMatchObject({ ok: true });
  });

  it('has verify (whole and by range) name an event its producer may not produce, even one signed with the ledger key', async () => {
    // The agent's own event rewritten into a policy change, re-hashed and re-signed with the real key.
    const target = (await db.selectFrom('events').selectAll().where('producer', '=', mallory.id).orderBy('seq').executeTakeFirstOrThrow())!;
    const seq = Number(target.seq);
    const forged = { ...target, event_type: 'policy.updated' };
    const eventHash = computeEventHash(provider, hashedFieldsOfRow(forged));
    const signature = provider.ed25519.sign(signerKey(provider, ORIGIN, ledgerId.ed25519.secretKey).secretKey, eventHash);
    await db.updateTable('events').set({ event_type: 'policy.updated', event_hash: eventHash, signature }).where('seq', '=', target.seq).execute();
    const range = json<VerifyReply>(await client.request(Commands.audit.verify, body({ fromSeq: seq, toSeq: seq }), { timeoutMs: 10_000 }));
    expect(range).toMatchObject({ ok: false, seq, problem: 'forbidden producer', message: `seq ${seq}: forbidden producer: policy.updated may be produced only by svc.policy, not by ${mallory.id}` });
    expect(await verifyLedger(db, { crypto: provider, origin: ORIGIN, logKey: service.ledger.verifierKey })).toMatchObject({ ok: false, seq, problem: 'forbidden producer' });
  });
});
