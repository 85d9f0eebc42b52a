// `npm run bench -- ledger [--events N] [--batch B]`: the audit ledger end to end and its raw limits,
// as JSON lines (DESIGN §11). The ledger service runs in this process, against a private nats-server
// started with the configuration `bulwark init` writes (the ledger and the producer each with their
// own NATS user, DESIGN §3a) and the real PostgreSQL (DATABASE_URL), in its own schema, removed
// afterwards. Standard error also gives the CPU time per event of this process and of nats-server.
//
// - e2e.events / bulwark: producers publish sealed AuditEventBatch messages to BULWARK_EVENTS; the
//   ledger consumes, appends (hash, sign, Merkle, one transaction per group), acks after commit.
//   From the first publish to the last commit. The producers' AuditEventBatch payloads are encoded
//   before the clock starts (agents are separate processes; their encoding is not the ledger's
//   work); sealing each message to the ledger and publishing it happen in the window, in this process.
// - e2e.events / raw:node-crypto: Ed25519 signatures per second (the ledger signs every event);
//   raw:<provider>: the same with the crypto provider the ledger uses (createCryptoProvider()'s default).
// - e2e.events / raw:pg: rows per second of batched inserts (unnest) of the same rows into a bare table.
// - e2e.events / raw:serial-limit: the harmonic sum of raw:<provider> and raw:pg (one core signing and
//   inserting each event, nothing else); issue 10's target is e2e.events ≥ 0.55 of it.
// - e2e.events / raw:nats: JetStream-acknowledged publishes per second of the same messages, in events/s,
//   with the producer's credentials on the same server (a bare stream on the events subjects).
// - append.events: the ledger core alone (appendPrepared, batches of --batch, signing in its thread), no bus;
//   pipelined: appendPipelined with signing workers, two batches in flight (what the service runs).
// - verify.events: verifyLedger over the ledger just written; raw:node-crypto (raw:<provider>) = Ed25519 verifications/s.
import { sign, verify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedSender } from '@bulwark/envelope';
import { LEDGER_PRINCIPAL, ServicePrincipals, createEventPublisher, removeNamespaceStreams } from '@bulwark/bus';
import { encodeEventBatch, newEvent, type AuditEvent, type EventType } from '@bulwark/events';
import { loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, sql } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { AuditLedger, LedgerService, DEFAULT_SETTINGS, migrateLedger, prepareEvent, signerKey, verifyLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { startPrivateBulwark } from '../attack/private-bulwark.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`bench ledger: --${name} needs a positive integer, got '${process.argv[at + 1] ?? ''}'`);
    process.exit(2);
  }
  return value;
}

const EVENTS = option('events', 60_000);
const PER_MESSAGE = option('per-message', 250);
const BATCH = option('batch', 2000);
const IN_FLIGHT = option('in-flight', 16);
/** `--e2e-only`: stop after the end-to-end figure (for profiling it with --cpu-prof). */
const E2E_ONLY = process.argv.includes('--e2e-only');
const provider = createCryptoProvider();
// All of them types svc.policy (the producer here) may produce (DESIGN §3a).
const TYPES: readonly EventType[] = ['policy.decision', 'tools.invoked', 'agent.started', 'data.accessed', 'message.routed'];

function emit(figure: string, impl: string, value: number, unit: string, n: number): void {
  console.log(JSON.stringify({ bench: 'ledger', figure, impl, value: Math.round(value), unit, n }));
}

function makeEvents(n: number): AuditEvent[] {
  return Array.from({ length: n }, (_, i) =>
    newEvent({ agentId: `agent.bench${i % 16}`, eventType: TYPES[i % TYPES.length]!, details: { i, decision: i % 3 === 0 ? 'Deny' : 'Allow', policy: 'secure_data_access', score: i / 7 } }),
  );
}

/** User + system CPU time of a process (Linux /proc), in µs. */
function cpuTimeUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/**
 * Time this process's threads spent runnable but waiting for a core (Linux schedstat), in µs:
 * the main thread's, and the sum of the others' (signing worker, libuv and V8 helpers). What the
 * neighbours' load costs, apart from the work itself.
 */
function runQueueWaitUs(): { main: number; others: number } {
  const waited = { main: 0, others: 0 };
  for (const task of readdirSync('/proc/self/task')) {
    try {
      const us = Number(readFileSync(`/proc/self/task/${task}/schedstat`, 'utf8').split(' ')[1]) / 1000;
      if (Number(task) === process.pid) waited.main += us;
      else waited.others += us;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return waited;
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

// --- a private deployment (`bulwark init`, nats-server with the configuration it wrote): ---
// --- the ledger and the producer (svc.policy) each connect with their own NATS user -------
const b = await startPrivateBulwark();
const directory = await b.directory();
const ledgerId = await b.identity(LEDGER_PRINCIPAL);
const producerId = await b.identity(ServicePrincipals.policy);

console.error(`bench ledger: ${EVENTS} events, ${PER_MESSAGE} per message, crypto provider ${provider.name}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

// --- e2e ------------------------------------------------------------------------------------
const namespace = b.namespace;
const bus = await b.connect(LEDGER_PRINCIPAL, 'bench-ledger');
const producerBus = await b.connect(ServicePrincipals.policy, 'bench-producer');
const schema = withTestSchema('bench_ledger');
const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
let cleaned: Promise<void> | undefined;
const cleanUp = (): Promise<void> =>
  (cleaned ??= (async () => {
    await closeDatabase(db);
    await schema.drop();
    await b.stop();
  })());
try {
  await migrateLedger(db);
  const service = await LedgerService.start({
    bus,
    db,
    crypto: provider,
    identity: ledgerId,
    directory,
    settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.bench/audit', schema: schema.name, namespace, checkpointMs: 0 },
  });
  const events = makeEvents(EVENTS);
  const messages: AuditEvent[][] = [];
  for (let at = 0; at < events.length; at += PER_MESSAGE) messages.push(events.slice(at, at + PER_MESSAGE));
  const publisher = createEventPublisher(producerBus, new SealedSender({ provider, self: producerId, directory, recipientId: LEDGER_PRINCIPAL }));
  const payloads = messages.map((batch) => ({ eventId: batch[0]!.eventId, payload: encodeEventBatch(batch) }));

  const cpuBefore = process.cpuUsage();
  const natsBefore = cpuTimeUs(b.serverPid);
  const waitBefore = runQueueWaitUs();
  const started = performance.now();
  await pool(payloads, IN_FLIGHT, ({ eventId, payload }) => publisher.publish({ subject: 'bulwark.evt.policy.decision', eventId, payload }));
  const published = performance.now();
  while (service.metrics().appended < EVENTS) await new Promise((r) => setTimeout(r, 2));
  const committed = performance.now();
  const cpu = process.cpuUsage(cpuBefore);
  const natsCpu = cpuTimeUs(b.serverPid) - natsBefore;
  const waitAfter = runQueueWaitUs();
  emit('e2e.events', 'bulwark', EVENTS / ((committed - started) / 1000), 'events/s', EVENTS);
  console.error(
    `bench ledger: publishing took ${(published - started).toFixed(0)} ms, last commit at ${(committed - started).toFixed(0)} ms, ${service.metrics().transactions} transactions, ` +
      `CPU per event: this process (all threads) ${((cpu.user + cpu.system) / EVENTS).toFixed(1)} µs, nats-server ${(natsCpu / EVENTS).toFixed(1)} µs; ` +
      `waiting for a core: main thread ${((waitAfter.main - waitBefore.main) / 1000).toFixed(0)} ms, other threads ${((waitAfter.others - waitBefore.others) / 1000).toFixed(0)} ms in all; load ${loadavg()[0]!.toFixed(2)}`,
  );
  await service.stop();
  if (E2E_ONLY) {
    await cleanUp();
    process.exit(0);
  }

  // Raw Ed25519 signing (node:crypto, one KeyObject).
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const msg = randomBytes(32);
  let n = 0;
  let t = performance.now();
  while (performance.now() - t < 1000) {
    sign(null, msg, privateKey);
    n++;
  }
  emit('e2e.events', 'raw:node-crypto', n / ((performance.now() - t) / 1000), 'events/s', n);
  const providerKey = provider.ed25519.generateKeyPair();
  const providerMsg = provider.randomBytes(32);
  n = 0;
  t = performance.now();
  while (performance.now() - t < 1000) {
    provider.ed25519.sign(providerKey.secretKey, providerMsg);
    n++;
  }
  const rawSign = n / ((performance.now() - t) / 1000);
  emit('e2e.events', `raw:${provider.name}`, rawSign, 'events/s', n);

  // Raw PostgreSQL: the same row shape, unnest inserts of BATCH rows, one transaction each.
  await sql`create table raw_events (seq int8 primary key, event_id uuid unique, timestamp_ms int8, agent_id text, event_type text, details text, previous_hash bytea, event_hash bytea, signature bytea)`.execute(db);
  const hash = new Uint8Array(32);
  const sig = new Uint8Array(64);
  t = performance.now();
  for (let at = 0; at < events.length; at += BATCH) {
    const chunk = events.slice(at, at + BATCH);
    await db.transaction().execute(async (trx) => {
      await sql`insert into raw_events select * from unnest(${chunk.map((_, i) => String(at + i))}::int8[], ${chunk.map((e) => e.eventId)}::uuid[], ${chunk.map((e) => String(e.timestamp))}::int8[],
        ${chunk.map((e) => e.agentId)}::text[], ${chunk.map((e) => e.eventType)}::text[], ${chunk.map((e) => JSON.stringify(e.details))}::text[],
        ${chunk.map(() => hash)}::bytea[], ${chunk.map(() => hash)}::bytea[], ${chunk.map(() => sig)}::bytea[])`.execute(trx);
    });
  }
  const rawPg = events.length / ((performance.now() - t) / 1000);
  emit('e2e.events', 'raw:pg', rawPg, 'events/s', events.length);
  // One core signing then inserting each event, nothing else: the harmonic sum of the two.
  emit('e2e.events', 'raw:serial-limit', 1 / (1 / rawSign + 1 / rawPg), 'events/s', events.length);

  // Raw JetStream publishes of the same payloads (plaintext, no envelope), same window, on the same
  // server with the producer's credentials: the operator replaces the namespace's streams with one
  // bare stream on the events subjects (svc.policy may publish there, nothing else).
  const operator = await b.connect(OPERATOR_USER, 'bench-operator');
  await removeNamespaceStreams(operator);
  const operatorCreds = (await loadNatsCredentials(b.store, OPERATOR_USER))!;
  const operatorNc = await connect({ servers: b.url, authenticator: jwtAuthenticator(operatorCreds.jwt, operatorCreds.seed), inboxPrefix: operatorCreds.inboxPrefix });
  const jsm = await jetstreamManager(operatorNc);
  const rawStream = `${namespace.streamPrefix}RAW`;
  await jsm.streams.add({ name: rawStream, subjects: [`${namespace.subjectPrefix}bulwark.evt.>`] });
  const creds = (await loadNatsCredentials(b.store, { kind: 'principal', id: ServicePrincipals.policy }))!;
  const nc = await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix });
  const js = jetstream(nc);
  t = performance.now();
  let i = 0;
  await pool(payloads, IN_FLIGHT, ({ payload }) => js.publish(`${namespace.subjectPrefix}bulwark.evt.policy.decision`, payload, { msgID: String(i++) }));
  emit('e2e.events', 'raw:nats', events.length / ((performance.now() - t) / 1000), 'events/s', payloads.length);
  await jsm.streams.delete(rawStream);
  await nc.close();
  await operatorNc.close();

  // The core append alone.
  const core = withTestSchema('bench_core');
  const coreDb = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: core.name });
  try {
    await migrateLedger(coreDb);
    const ledger = new AuditLedger(coreDb, { crypto: provider, origin: 'bulwark.bench/core', signer: signerKey(provider, 'bulwark.bench/core', ledgerId.ed25519.secretKey), checkpointEvery: 0 });
    const fresh = makeEvents(EVENTS).map((e) => prepareEvent(e, ServicePrincipals.policy));
    t = performance.now();
    for (let at = 0; at < fresh.length; at += BATCH) await ledger.appendPrepared(fresh.slice(at, at + BATCH));
    emit('append.events', 'bulwark', fresh.length / ((performance.now() - t) / 1000), 'events/s', fresh.length);
    const pipelined = new AuditLedger(coreDb, { crypto: provider, origin: 'bulwark.bench/core', signer: signerKey(provider, 'bulwark.bench/core', ledgerId.ed25519.secretKey), checkpointEvery: 0, signingWorkers: {} });
    const more = makeEvents(EVENTS).map((e) => prepareEvent(e, ServicePrincipals.policy));
    t = performance.now();
    const inFlight: Promise<unknown>[] = [];
    for (let at = 0; at < more.length; at += BATCH) {
      inFlight.push(pipelined.appendPipelined(more.slice(at, at + BATCH)));
      if (inFlight.length >= 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
    emit('append.events', 'pipelined', more.length / ((performance.now() - t) / 1000), 'events/s', more.length);
    await pipelined.close();
  } finally {
    await closeDatabase(coreDb);
    await core.drop();
  }

  // verify over the e2e ledger, and its raw bound: Ed25519 verifications.
  t = performance.now();
  const report = await verifyLedger(db, { crypto: provider, origin: 'bulwark.bench/audit', logKey: service.ledger.verifierKey });
  if (!report.ok) throw new Error(`bench ledger: verify failed: ${report.message}`);
  emit('verify.events', 'bulwark', report.size / ((performance.now() - t) / 1000), 'events/s', report.size);
  const signature = sign(null, msg, privateKey);
  n = 0;
  t = performance.now();
  while (performance.now() - t < 1000) {
    verify(null, msg, publicKey, signature);
    n++;
  }
  emit('verify.events', 'raw:node-crypto', n / ((performance.now() - t) / 1000), 'events/s', n);
  const providerSignature = provider.ed25519.sign(providerKey.secretKey, providerMsg);
  n = 0;
  t = performance.now();
  while (performance.now() - t < 1000) {
    provider.ed25519.verify(providerKey.publicKey, providerMsg, providerSignature);
    n++;
  }
  emit('verify.events', `raw:${provider.name}`, n / ((performance.now() - t) / 1000), 'events/s', n);
  console.error(`bench ledger: load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  await cleanUp();
}
