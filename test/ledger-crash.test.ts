// The audit-ledger service as a real child process (services/audit-ledger/dist/service/main.js,
// built by `npm test`'s build step), against the real NATS and PostgreSQL, SIGKILLed at random
// moments during a steady ingest, 20 times. Afterwards every produced event is in the ledger
// exactly once, the chain verifies, and BULWARK_LEDGER holds every seq exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import {
  ServicePrincipals,
  LEDGER_BATCH_SUBJECT,
  LEDGER_PRINCIPAL,
  RejectionReporter,
  connectBus,
  createEventPublisher,
  ensureStreams,
  publishDirectoryEntry,
  removeDirectoryBucket,
  removeNamespaceStreams,
  startStreamConsumer,
  type Bus,
  type EventSubject,
  type RunningConsumer,
} from '@bulwark/bus';
import { decodeEventBatch, encodeEvent, encodeEventBatch, eventSubject, newEvent, newEventId, type AuditEvent, type EventType } from '@bulwark/events';
import { FileKeyStore, SoftwareKek, ensureIdentity } from '@bulwark/keystore';
import { closeDatabase, createDatabase, sql, type Kysely } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';
import { verifierKey, verifyLedger, type LedgerDatabase } from '@bulwark/audit-ledger';

const MAIN = fileURLToPath(new URL('../services/audit-ledger/dist/service/main.js', import.meta.url));
const KILLS = Number(process.env['LEDGER_CRASH_KILLS'] ?? 20);
const ORIGIN = 'bulwark.test/crash';
const provider = createCryptoProvider('node');
// Types the producer (svc.policy) may produce (DESIGN §3a): anything else is refused and recorded as a violation.
const TYPES: readonly EventType[] = ['policy.decision', 'tools.invoked', 'agent.started', 'data.accessed', 'message.routed'];

const nsId = `crash${provider.randomBytes(4).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '')}`;
const namespace = { streamPrefix: `T_${nsId}_`, subjectPrefix: `t.${nsId}.` };
const schema = withTestSchema('ledger_crash');
const keyDir = mkdtempSync(join(tmpdir(), 'ledger-crash-keys-'));
const workDir = mkdtempSync(join(tmpdir(), 'ledger-crash-cwd-'));
const kek = provider.randomBytes(32);

let bus: Bus;
let db: Kysely<LedgerDatabase>;
let ledgerPublicKey: Uint8Array;
// Every signed entry of this test's own directory also goes to the KV directory, for the ledger process.
const world = testWorld({ provider });
const directory = world.directory;
const producer = world.add(ServicePrincipals.policy);
const reader = world.add(ServicePrincipals.incident);

function childEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    NATS_URL: natsUrl(),
    DATABASE_URL: databaseUrl(),
    SYMBIONT_KEY_DIR: keyDir,
    SYMBIONT_KEK: Buffer.from(kek).toString('base64'),
    SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(world.root.publicKey).toString('hex'),
    SYMBIONT_LOG_LEVEL: 'info',
    SYMBIONT_LEDGER_ORIGIN: ORIGIN,
    SYMBIONT_LEDGER_SCHEMA: schema.name,
    SYMBIONT_LEDGER_NAMESPACE: nsId,
    // Messages in flight when the process dies come back after this.
    SYMBIONT_LEDGER_ACK_WAIT_MS: '2000',
    SYMBIONT_LEDGER_CHECKPOINT_EVENTS: '700',
    SYMBIONT_LEDGER_CHECKPOINT_MS: '1500',
  };
}

/** Every child started, so that a failing test leaves none running. */
const children = new Set<ChildProcess>();

function spawnLedger(stdio: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const child = spawn(process.execPath, [MAIN], { cwd: workDir, env: childEnv(), stdio: ['ignore', stdio, stdio] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function countProduced(): Promise<number> {
  const rows = await sql<{ n: string }>`select count(*)::text as n from events where agent_id <> ${LEDGER_PRINCIPAL}`.execute(db);
  return Number(rows.rows[0]!.n);
}

/** Starts the service; resolves with the child once it logged that it runs. */
function startLedger(): Promise<ChildProcess> {
  const child = spawnLedger('pipe');
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('audit-ledger: running')) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`ledger exited (${code ?? signal}) before running: ${stderr.slice(-2000)}${out.slice(-1000)}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('audit-ledger service under SIGKILL', () => {
  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx turbo run build)`);
    bus = await connectBus({ url: natsUrl(), name: 'crash-test', namespace });
    await ensureStreams(bus);
    const store = await FileKeyStore.open({ dir: keyDir, wrapper: new SoftwareKek(provider, kek, 'test'), provider });
    const { identity } = await ensureIdentity(store, provider, LEDGER_PRINCIPAL);
    ledgerPublicKey = identity.ed25519.publicKey;
    const ledger = world.admit({ id: LEDGER_PRINCIPAL, x25519PublicKey: identity.x25519.publicKey, ed25519PublicKey: identity.ed25519.publicKey });
    for (const signed of [ledger, producer.signed, reader.signed]) await publishDirectoryEntry(bus, signed);
    db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await closeDatabase(db).catch(() => undefined);
    await schema.drop().catch(() => undefined);
    await removeDirectoryBucket(bus).catch(() => undefined);
    await removeNamespaceStreams(bus).catch(() => undefined);
    await bus.close();
    rmSync(keyDir, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing across ${KILLS} SIGKILLs during a steady ingest`, { timeout: 150_000 }, async () => {
    const events = createEventPublisher(bus, new SealedSender({ provider, self: producer, directory, recipientId: LEDGER_PRINCIPAL }));
    const produced: AuditEvent[] = [];
    let producing = true;
    let publishErrors = 0;
    const produce = (async () => {
      let round = 0;
      while (producing) {
        round += 1;
        const count = 1 + (round % 10);
        const batch = Array.from({ length: count }, (_, i) => newEvent({ agentId: `agent.p${round % 7}`, eventType: TYPES[(round + i) % TYPES.length]!, details: { round, i } }));
        // Every 9th message also carries an event an earlier message carried: the ledger must dedupe it by id.
        const again = round % 9 === 0 && produced.length > 0 ? [produced[Math.floor(Math.random() * produced.length)]!] : [];
        try {
          if (count === 1) {
            await events.publish({ subject: eventSubject(batch[0]!.eventType) as EventSubject, eventId: batch[0]!.eventId, payload: encodeEvent(batch[0]!) });
          } else {
            await events.publish({ subject: eventSubject(batch[0]!.eventType) as EventSubject, eventId: newEventId(), payload: encodeEventBatch([...batch, ...again]) });
          }
          produced.push(...batch);
        } catch {
          publishErrors += 1; // not acknowledged: not counted as produced (its ids are never reused)
        }
        await sleep(40);
      }
    })();

    // Kill moments: every 4th victim is killed at a random moment after it reported running (so
    // kills land in the middle of consuming and committing); the others at a random moment from
    // spawn on, which also hits start-up (connect, migrate, consumer set-up) and keeps the test short.
    let killedRunning = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      if (kill % 4 === 0) {
        const child = await startLedger();
        // Kill it once it is committing (a loaded machine can take longer than the random
        // moment below to commit its first batch), so that kills land mid-ingest.
        const before = await countProduced();
        const committing = Date.now() + 10_000;
        while ((await countProduced()) === before && Date.now() < committing) await sleep(20);
        await sleep(Math.floor(Math.random() * 400));
        child.kill('SIGKILL');
        await exited(child);
        killedRunning += 1;
      } else {
        const child = spawnLedger();
        await sleep(150 + Math.floor(Math.random() * 1600));
        child.kill('SIGKILL');
        await exited(child);
      }
    }
    const committedBeforeLastRun = await countProduced();
    producing = false;
    await produce;

    // A last, clean run drains the backlog (including the messages the last victims left unacknowledged).
    const last = await startLedger();
    const deadline = Date.now() + 45_000;
    while ((await countProduced()) < produced.length && Date.now() < deadline) await sleep(200);
    await sleep(2500); // redeliveries of already-committed messages arrive and must change nothing
    last.kill('SIGTERM');
    expect(await exited(last)).toBe(0);

    const stored = await sql<{ event_id: string; event_type: string; agent_id: string; position: string }>`select event_id, event_type, agent_id, seq::text as position from events order by seq`.execute(db);
    const ids = stored.rows.filter((r) => r.agent_id !== LEDGER_PRINCIPAL).map((r) => r.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    const storedIds = new Set(ids);
    const missing = produced.filter((e) => !storedIds.has(e.eventId)).map((e) => e.eventId);
    expect(missing).toEqual([]);
    expect(ids.length).toBe(produced.length);
    expect(stored.rows.map((r) => Number(r.position))).toEqual(stored.rows.map((_, i) => i));
    expect(publishErrors).toBeLessThan(produced.length / 10);
    // The kills did interrupt a working ledger, not only start-ups.
    expect(killedRunning).toBe(Math.ceil(KILLS / 4));
    expect(committedBeforeLastRun).toBeGreaterThan(0);

    const report = await verifyLedger(db, { crypto: provider, origin: ORIGIN, logKey: verifierKey(provider, ORIGIN, ledgerPublicKey) });
    expect(report).toMatchObject({ ok: true, size: stored.rows.length });
    expect(stored.rows.some((r) => r.event_type === 'audit.checkpoint')).toBe(true);
    // BULWARK_LEDGER: every seq exactly once, in AuditEventBatch messages of consecutive seqs named by their range.
    const state = await db.selectFrom('publish_state').select('published').executeTakeFirstOrThrow();
    expect(Number(state.published)).toBe(stored.rows.length);
    const seen = new Map<number, number>();
    const consumers: RunningConsumer[] = [];
    const silent = new RejectionReporter({ reporter: 'test', publish: async () => undefined });
    for (let i = 0; i < 8; i++) {
      consumers.push(
        await startStreamConsumer(
          bus,
          new SealedReceiver({ provider, self: reader, directory, staleAfterMs: 3_600_000 }),
          { stream: 'ledger', durable: 'crash-reader', filterSubject: LEDGER_BATCH_SUBJECT },
          async (d) => {
            expect(d.subject).toBe(LEDGER_BATCH_SUBJECT);
            const batch = decodeEventBatch(d.plaintext);
            const seqs = batch.map((e) => ('seq' in e ? e.seq : -1));
            expect(seqs.every((seq, i) => seq >= 0 && (i === 0 || seq === seqs[i - 1]! + 1))).toBe(true);
            expect(d.msgId).toBe(`${seqs[0]}-${seqs[seqs.length - 1]}`);
            for (const seq of seqs) seen.set(seq, (seen.get(seq) ?? 0) + 1);
          },
          silent,
        ),
      );
    }
    const until = Date.now() + 30_000;
    while (seen.size < stored.rows.length && Date.now() < until) await sleep(100);
    await sleep(300);
    await Promise.all(consumers.map((c) => c.stop()));
    expect(seen.size).toBe(stored.rows.length);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });
});
