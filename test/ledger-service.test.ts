// The audit-ledger service in this process against the real NATS and PostgreSQL: what it
// accepts from BULWARK_EVENTS (single events, batches, the bus's JSON rejection reports, and
// undecodable messages, which it records), its checkpoints (announced as events, without a
// loop), re-publication to BULWARK_LEDGER, and the audit commands over Noise sessions.
// Under the configuration `bulwark init` writes (DESIGN §3a): one private nats-server for the
// file; the ledger, the producer (svc.policy) and the auditor (an admin analyst) each connect
// with their own NATS user; identities from init's key store, the directory from KV.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SealedSender, type Directory } from '@bulwark/envelope';
import type { Identity } from '@bulwark/keystore';
import {
  CommandClient,
  Commands,
  Events,
  LEDGER_PRINCIPAL,
  RejectionReporter,
  ServicePrincipals,
  createEventPublisher,
  createRejectionReporter,
  type Bus,
} from '@bulwark/bus';
import type { CryptoProvider } from '@bulwark/crypto';
import { encodeEvent, encodeEventBatch, newEvent, newEventId, type AuditEvent } from '@bulwark/events';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import {
  DEFAULT_SETTINGS,
  LedgerService,
  migrateLedger,
  openCheckpoint,
  payloadKind,
  verifyConsistency,
  verifyInclusion,
  type CheckpointReply,
  type ConsistencyReply,
  type InclusionReply,
  type LedgerDatabase,
  type LedgerSettings,
  type QueryReply,
  type VerifyReply,
  verifyLedger,
} from '@bulwark/audit-ledger';
import { startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const ORIGIN = 'bulwark.test/service';
const AUDITOR = 'analyst.auditor';
let b: PrivateBulwark;
let provider: CryptoProvider;
let directory: Directory;
let ledgerId: Identity;
let producer: Identity;
let analyst: Identity;

beforeAll(async () => {
  b = await startPrivateBulwark();
  // The audit commands are an administrator's (DESIGN §3a): the auditor is enrolled as one.
  await b.addPrincipal(AUDITOR, { admin: true });
  provider = b.provider;
  directory = await b.directory();
  ledgerId = await b.identity(LEDGER_PRINCIPAL);
  producer = await b.identity(ServicePrincipals.policy);
  analyst = await b.identity(AUDITOR);
}, 60_000);
afterAll(async () => b?.stop());

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const json = <T>(b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as T;
const body = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A ledger service (its own user) on fresh streams of the private deployment and its own schema, and the producer's bus; `stop` removes the schema. */
async function startLedger(name: string, schema: ReturnType<typeof withTestSchema>, settings: Partial<LedgerSettings>, signerScript?: URL) {
  await b.resetStreams();
  const bus = await b.connect(LEDGER_PRINCIPAL, name);
  const producerBus = await b.connect(ServicePrincipals.policy, `${name}-producer`);
  const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  await migrateLedger(db);
  const service = await LedgerService.start({
    bus,
    db,
    crypto: provider,
    identity: ledgerId,
    directory,
    settings: { ...DEFAULT_SETTINGS, origin: ORIGIN, schema: schema.name, namespace: b.namespace, ...settings },
    ...(signerScript === undefined ? {} : { signerScript }),
  });
  const stop = async () => {
    await service.stop();
    await closeDatabase(db);
    await schema.drop();
    await producerBus.close();
    await bus.close();
  };
  return { producerBus, db, service, stop };
}

describe('audit-ledger service', () => {
  const schema = withTestSchema('ledger_svc');
  let bus: Bus;
  let db: Kysely<LedgerDatabase>;
  let service: LedgerService;
  let stop: () => Promise<void>;
  let client: CommandClient;
  const silent = new RejectionReporter({ reporter: 'test', publish: async () => undefined });

  const size = async () => (await service.ledger.head()).size;
  const call = async <T>(subject: (typeof Commands.audit)[keyof typeof Commands.audit], request: unknown) => json<T>(await client.request(subject, body(request), { timeoutMs: 10_000 }));

  beforeAll(async () => {
    ({ producerBus: bus, db, service, stop } = await startLedger('ledger-service-test', schema, { checkpointEvents: 20, checkpointMs: 300, inFlight: 16, batchMaxEvents: 50 }));
    client = new CommandClient(await b.connect(AUDITOR), { sessions: { provider, self: analyst, directory }, rejections: silent });
  });

  afterAll(async () => {
    await stop();
  });

  it('tells a single AuditEvent from a batch and from JSON by their first bytes', () => {
    const e = newEvent({ agentId: 'agent.a', eventType: 'policy.decision', details: {} });
    expect(payloadKind(encodeEvent(e))).toBe('event');
    expect(payloadKind(encodeEventBatch([e]))).toBe('batch');
    expect(payloadKind(encodeEventBatch([e, e]))).toBe('batch');
    expect(payloadKind(new TextEncoder().encode('{"a":1}'))).toBe('json');
  });

  it('appends single events, batches and rejection reports exactly once, and records an undecodable message', async () => {
    const events = createEventPublisher(bus, new SealedSender({ provider, self: producer, directory, recipientId: LEDGER_PRINCIPAL }));
    const single = newEvent({ agentId: 'agent.alpha', eventType: 'tools.invoked', details: { tool: 'grep' } });
    // On the producer's own subjects (its NATS user may publish no other): the ledger tells the payload by its bytes.
    const batch: AuditEvent[] = Array.from({ length: 30 }, (_, i) => newEvent({ agentId: i % 2 === 0 ? 'agent.alpha' : 'agent.beta', eventType: 'policy.decision', details: { i } }));
    await events.publish({ subject: Events.policy.decision, eventId: single.eventId, payload: encodeEvent(single) });
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch(batch) });
    // The same events again in another message: deduplicated by event id, not by message id.
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch([...batch.slice(0, 5), single]) });
    const reporter = createRejectionReporter(events, { reporter: ServicePrincipals.policy });
    reporter.report({ reason: 'E_MAC', sender: 'agent.mallory', subject: 'bulwark.policy.evaluate' });
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: new TextEncoder().encode('not an event') });

    await until(async () => (await db.selectFrom('events').select('event_id').where('event_type', 'in', ['bus.rejected', 'security.violation']).execute()).length === 2, 'the report and the violation');
    const rows = await db.selectFrom('events').selectAll().orderBy('seq').execute();
    const ids = rows.map((r) => r.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of [single, ...batch]) expect(ids).toContain(e.eventId);
    const rejected = rows.find((r) => r.event_type === 'bus.rejected')!;
    expect(rejected.agent_id).toBe(ServicePrincipals.policy);
    // The producer of a JSON report too is the authenticated sender of its frame (DESIGN §3a).
    expect(rejected.producer).toBe(ServicePrincipals.policy);
    expect(rows.find((r) => r.event_id === single.eventId)!.producer).toBe(ServicePrincipals.policy);
    expect(JSON.parse(rejected.details)).toMatchObject({ kind: 'bus.rejected', reason: 'E_MAC', claimed_sender: 'agent.mallory' });
    const violation = rows.find((r) => r.event_type === 'security.violation')!;
    expect(violation.agent_id).toBe(LEDGER_PRINCIPAL);
    expect(violation.producer).toBe(LEDGER_PRINCIPAL);
    expect(JSON.parse(violation.details)).toMatchObject({ kind: 'ledger.undecodable', sender: ServicePrincipals.policy, subject: Events.policy.decision });
    expect(service.metrics()).toMatchObject({ undecodable: 1 });
    expect(service.metrics().duplicates).toBeGreaterThanOrEqual(6);
  });

  it('signs checkpoints by count and by time, announces each as an event, and stops when only announcements arrive', async () => {
    await until(async () => (await db.selectFrom('events').select('seq').where('event_type', '=', 'audit.checkpoint').execute()).length >= 1, 'a checkpoint event');
    // Quiet: once the announcements are in, no new checkpoint may appear (an announcement is not growth).
    let settled = await size();
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      await sleep(700);
      const now = await size();
      if (now === settled) break;
      settled = now;
    }
    const checkpoints = (await db.selectFrom('checkpoints').select('tree_size').execute()).length;
    await sleep(1000);
    expect(await size()).toBe(settled);
    expect((await db.selectFrom('checkpoints').select('tree_size').execute()).length).toBe(checkpoints);
    const announced = await db.selectFrom('events').select('details').where('event_type', '=', 'audit.checkpoint').orderBy('seq').execute();
    const note = (JSON.parse(announced[0]!.details) as { note: string }).note;
    expect(openCheckpoint(provider, note, { origin: ORIGIN, logKey: service.ledger.verifierKey }).checkpoint.size).toBeGreaterThan(0);
  });

  it('re-publishes every committed event to BULWARK_LEDGER and marks how far', async () => {
    const head = await size();
    await until(async () => service.metrics().published >= head, 're-publication');
    expect(await service.publishCommitted()).toBeGreaterThanOrEqual(head);
    expect(Number((await db.selectFrom('publish_state').select('published').executeTakeFirstOrThrow()).published)).toBeGreaterThanOrEqual(head);
  });

  it('answers query by agent, type, time and seq, paginated, with inclusion proofs to a signed checkpoint', async () => {
    const first = await call<QueryReply>(Commands.audit.query, { agentId: 'agent.alpha', eventType: 'policy.decision', limit: 6, withProof: true });
    expect(first.events).toHaveLength(6);
    expect(first.events.every((e) => e.agentId === 'agent.alpha' && e.eventType === 'policy.decision')).toBe(true);
    const cp = openCheckpoint(provider, first.checkpoint!.note, { origin: ORIGIN, logKey: service.ledger.verifierKey }).checkpoint;
    for (const e of first.events) {
      expect(e.proof).not.toBeNull();
      const leaf = provider.sha256([Uint8Array.of(0), hex(e.eventHash)]);
      verifyInclusion(provider, e.seq, cp.size, leaf, e.proof!.map(hex), cp.rootHash);
    }
    const second = await call<QueryReply>(Commands.audit.query, { agentId: 'agent.alpha', eventType: 'policy.decision', limit: 20, cursor: first.nextCursor });
    expect(second.events.length).toBe(9);
    expect(second.events.length + first.events.length).toBe(15);
    expect(second.events[0]!.seq).toBeGreaterThan(first.events[5]!.seq);
    expect(second.nextCursor).toBeUndefined();
    const bySeq = await call<QueryReply>(Commands.audit.query, { fromSeq: 2, toSeq: 4 });
    expect(bySeq.events.map((e) => e.seq)).toEqual([2, 3, 4]);
    const now = Date.now();
    expect((await call<QueryReply>(Commands.audit.query, { fromTime: now + 3_600_000 })).events).toEqual([]);
    expect((await call<QueryReply>(Commands.audit.query, { toTime: now + 1 })).events.length).toBeGreaterThan(0);
    await expect(client.request(Commands.audit.query, body({ limit: 0 }))).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST' });
  });

  it('serves inclusion and consistency proofs, the latest checkpoint, and verify (whole and a range)', async () => {
    // Two checkpoints of different sizes for the consistency proof: the appends above may all have
    // landed in one batch (one checkpoint), so grow the log past the next count boundary first.
    const before = await size();
    const events = createEventPublisher(bus, new SealedSender({ provider, self: producer, directory, recipientId: LEDGER_PRINCIPAL }));
    const more: AuditEvent[] = Array.from({ length: 25 }, (_, i) => newEvent({ agentId: 'agent.gamma', eventType: 'policy.decision', details: { i } }));
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch(more) });
    await until(async () => (await db.selectFrom('checkpoints').select('tree_size').where('tree_size', '>=', BigInt(before + more.length)).execute()).length > 0, 'a checkpoint after the new events');
    const latest = await call<CheckpointReply>(Commands.audit.checkpoint, {});
    const cp = openCheckpoint(provider, latest.note, { origin: ORIGIN, logKey: service.ledger.verifierKey }).checkpoint;
    const proof = await call<InclusionReply>(Commands.audit.proofInclusion, { seq: 1, treeSize: cp.size });
    verifyInclusion(provider, 1, cp.size, hex(proof.leafHash), proof.proof.map(hex), cp.rootHash);
    const earlier = (await db.selectFrom('checkpoints').select('tree_size').orderBy('tree_size').executeTakeFirstOrThrow()).tree_size;
    const first = (await service.ledger.checkpointAt(Number(earlier)))!;
    expect(first.size).toBeLessThan(cp.size);
    {
      const c = await call<ConsistencyReply>(Commands.audit.proofConsistency, { size1: first.size, size2: cp.size });
      verifyConsistency(provider, first.size, cp.size, c.proof.map(hex), first.rootHash, cp.rootHash);
    }
    await expect(client.request(Commands.audit.proofConsistency, body({ size1: 0 }))).rejects.toMatchObject({ code: 'E_AUDIT_REQUEST' });
    expect(await call<VerifyReply>(Commands.audit.verify, {})).toMatchObject({ ok: true, scope: 'whole', size: await size() });
    expect(await call<VerifyReply>(Commands.audit.verify, { fromSeq: 3, toSeq: 12 })).toMatchObject({ ok: true, scope: 'range', verified: 10 });
    // A tampered row is named by both.
    await db.updateTable('events').set({ agent_id: 'agent.forged' }).where('seq', '=', 7n).execute();
    expect(await call<VerifyReply>(Commands.audit.verify, { fromSeq: 3, toSeq: 12 })).toMatchObject({ ok: false, seq: 7, problem: 'event_hash mismatch' });
    expect(await call<VerifyReply>(Commands.audit.verify, {})).toMatchObject({ ok: false, seq: 7 });
  });

  it('reports readiness: NATS, streams and the database', async () => {
    expect(await service.readiness()).toMatchObject({ ready: true, natsConnected: true, missingStreams: [], database: true });
  });
});

describe('audit-ledger service, signing worker crash', () => {
  const schema = withTestSchema('ledger_sig');
  const faults = mkdtempSync(join(tmpdir(), 'ledger-signer-faults-'));
  let bus: Bus;
  let db: Kysely<LedgerDatabase>;
  let service: LedgerService;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    // Read by the substitute worker when it starts (workers copy the environment).
    process.env['LEDGER_SIGNER_FAULT_DIR'] = faults;
    ({ producerBus: bus, db, service, stop } = await startLedger('ledger-signer-test', schema, { checkpointEvents: 0, checkpointMs: 0, signerWorkers: 1 }, new URL('../services/audit-ledger/src/signer/faulty-worker.fixture.ts', import.meta.url)));
  });

  afterAll(async () => {
    await stop();
    rmSync(faults, { recursive: true, force: true });
  });

  it('stores nothing and acknowledges nothing from a batch whose signing worker died, then appends it once on redelivery with a new worker', async () => {
    const events = createEventPublisher(bus, new SealedSender({ provider, self: producer, directory, recipientId: LEDGER_PRINCIPAL }));
    const batch = Array.from({ length: 40 }, (_, i) => newEvent({ agentId: 'agent.gamma', eventType: 'tools.invoked', details: { i } }));
    // The worker that takes the first signing request exits in the middle of it.
    writeFileSync(join(faults, 'crash'), '');
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch(batch.slice(0, 25)) });
    await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch(batch.slice(25)) });

    await until(async () => (await service.ledger.head()).size >= batch.length, 'the batch to be appended after the crash', 20_000);
    expect(service.metrics().signerFailures).toBeGreaterThanOrEqual(1);
    const rows = await db.selectFrom('events').select(['event_id', 'seq']).orderBy('seq').execute();
    expect(rows.map((r) => r.event_id).sort()).toEqual(batch.map((e) => e.eventId).sort());
    expect(rows.map((r) => Number(r.seq))).toEqual(batch.map((_, i) => i));
    // Every stored row carries a signature that verifies: none was written without one.
    expect(await verifyLedger(db, { crypto: provider, origin: ORIGIN, logKey: service.ledger.verifierKey })).toMatchObject({ ok: true, size: batch.length });
  });
});
