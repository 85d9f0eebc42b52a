// The audit-ledger service as a real child process (services/audit-ledger/dist/service/main.js,
// built by `npm test`'s build step), under the configuration `bulwark init` writes: a private
// nats-server running init's configuration, the ledger with a key directory of its own keys only
// (`bulwark principal export`, its NATS user's credentials included), the producer (svc.policy) and
// the BULWARK_LEDGER reader (svc.incident-response) each with their own user. SIGKILLed at random
// moments during a steady ingest, 20 times. Afterwards every produced event is in the ledger
// exactly once, the chain verifies, and BULWARK_LEDGER holds every seq exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SealedReceiver, SealedSender, type Directory } from '@bulwark/envelope';
import {
  ServicePrincipals,
  LEDGER_BATCH_SUBJECT,
  LEDGER_PRINCIPAL,
  RejectionReporter,
  createEventPublisher,
  Events,
  startStreamConsumer,
  type Bus,
  type RunningConsumer,
} from '@bulwark/bus';
import { decodeEventBatch, encodeEvent, encodeEventBatch, newEvent, newEventId, type AuditEvent, type EventType } from '@bulwark/events';
import type { Identity } from '@bulwark/keystore';
import { closeDatabase, createDatabase, sql, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { verifierKey, verifyLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const MAIN = fileURLToPath(new URL('../services/audit-ledger/dist/service/main.js', import.meta.url));
const KILLS = Number(process.env['LEDGER_CRASH_KILLS'] ?? 20);
const ORIGIN = 'bulwark.test/crash';
// Types the producer (svc.policy) may produce (DESIGN §3a): anything else is refused and recorded as a violation.
const TYPES: readonly EventType[] = ['policy.decision', 'tools.invoked', 'agent.started', 'data.accessed', 'message.routed'];

const schema = withTestSchema('ledger_crash');
const workDir = mkdtempSync(join(tmpdir(), 'ledger-crash-cwd-'));

let b: PrivateBulwark;
/** The ledger process's key directory: its own keys and credentials only. */
let ledgerKeys: string;
let bus: Bus;
let readerBus: Bus;
let db: Kysely<LedgerDatabase>;
let directory: Directory;
let producer: Identity;
let reader: Identity;
let ledgerPublicKey: Uint8Array;

function childEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    ...b.env,
    NATS_URL: b.url,
    DATABASE_URL: databaseUrl(),
    SYMBIONT_KEY_DIR: ledgerKeys,
    SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(b.rootPublicKey).toString('hex'),
    SYMBIONT_LOG_LEVEL: 'info',
    SYMBIONT_LEDGER_ORIGIN: ORIGIN,
    SYMBIONT_LEDGER_SCHEMA: schema.name,
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
    // Root namespace, as deployed (the ledger main has no namespace of init's form); the server is this file's own.
    b = await startPrivateBulwark({ namespace: false });
    ledgerKeys = join(b.home, 'ledger-keys');
    const exported = await b.bulwark(['principal', 'export', LEDGER_PRINCIPAL, '--out', ledgerKeys]);
    if (exported.code !== 0) throw new Error(`bulwark principal export ${LEDGER_PRINCIPAL}: ${exported.stderr}`);
    ledgerPublicKey = (await b.identity(LEDGER_PRINCIPAL)).ed25519.publicKey;
    producer = await b.identity(ServicePrincipals.policy);
    reader = await b.identity(ServicePrincipals.incident);
    directory = await b.directory();
    bus = await b.connect(ServicePrincipals.policy, 'crash-producer');
    readerBus = await b.connect(ServicePrincipals.incident, 'crash-reader');
    db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  }, 60_000);

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await closeDatabase(db).catch(() => undefined);
    await schema.drop().catch(() => undefined);
    await b?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing across ${KILLS} SIGKILLs during a steady ingest`, { timeout: 150_000 }, async () => {
    const events = createEventPublisher(bus, new SealedSender({ provider: b.provider, self: producer, directory, recipientId: LEDGER_PRINCIPAL }));
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
        // All on the policy service's own subject (its NATS user may publish nothing else); the types are in the payload.
        const again = round % 9 === 0 && produced.length > 0 ? [produced[Math.floor(Math.random() * produced.length)]!] : [];
        try {
          if (count === 1) {
            await events.publish({ subject: Events.policy.decision, eventId: batch[0]!.eventId, payload: encodeEvent(batch[0]!) });
          } else {
            await events.publish({ subject: Events.policy.decision, eventId: newEventId(), payload: encodeEventBatch([...batch, ...again]) });
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

    const report = await verifyLedger(db, { crypto: b.provider, origin: ORIGIN, logKey: verifierKey(b.provider, ORIGIN, ledgerPublicKey) });
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
          readerBus,
          new SealedReceiver({ provider: b.provider, self: reader, directory, staleAfterMs: 3_600_000 }),
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
