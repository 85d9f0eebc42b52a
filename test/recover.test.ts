// `bulwark recover` against a system `bulwark up` runs for real: its own operator-mode
// nats-server from PATH, the audit ledger on the machine's PostgreSQL (its own schema, so the
// test can read and tamper with the source of truth), the policy service and the other four.
// Each loss is made as a mistaken operator would (deleting a stream, purging or editing a
// directory entry), then recovered with the documented procedure (operator's guide §7): dry
// run, then --apply. The attack angles: a ledger that does not verify is never re-published, a
// stored entry that does not verify is never published, a key the ledger says is revoked is
// never put back, a pid in the run state that is not ours is never stopped. The same running
// system first shows custody (issue 12): each service's own key directory holds no root and no
// other principal's key, and with it no directory entry can be signed; the demo's agent is
// enrolled through the key manager.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createEventPublisher, Events, LEDGER_PRINCIPAL } from '@bulwark/bus';
import { SealedSender } from '@bulwark/envelope';
import { encodeEvent, newEvent } from '@bulwark/events';
import { loadRootKey } from '@bulwark/keystore';
import { enrollPrincipal, loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { keyManagerEnvironment } from '../libs/cli/src/home/custody.js';
import { homeEnvironment } from '../libs/cli/src/home/environment.js';
import { homeAt } from '../libs/cli/src/home/home.js';
import { openKeyStore, openSession } from '../libs/cli/src/home/session.js';
import { isAlive, readRunState, type RunState } from '../libs/cli/src/home/state.js';
import { isolatedEnv, ROOT, runBulwark, spawnUp, untilPrinted, type Spawned as Up } from './bulwark-process.js';

const DATABASE = process.env['DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `recover_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
const home = mkdtempSync(join(tmpdir(), 'bulwark-recover-'));
const policies = mkdtempSync(join(tmpdir(), 'bulwark-recover-policies-'));

const env = (): NodeJS.ProcessEnv => isolatedEnv({ DATABASE_URL: DATABASE, SYMBIONT_LEDGER_SCHEMA: SCHEMA, SYMBIONT_LEDGER_CHECKPOINT_EVENTS: '5' });

const bulwark = (args: string[], extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = 180_000) => runBulwark(args, { cwd: policies, env: { ...env(), ...extraEnv }, timeoutMs });

const startUp = (): Up => spawnUp(home, env());
const untilUp = (up: Up): Promise<void> => untilPrinted(up, 'Bulwark is up');

const readState = (): RunState => readRunState(homeAt(home))!;

/** The operator's NATS connection (what a mistaken operator deletes streams and entries with). */
async function asOperator(): Promise<NatsConnection> {
  const { store } = await openKeyStore(homeEnvironment(homeAt(home), env()), ROOT);
  const creds = (await loadNatsCredentials(store, OPERATOR_USER))!;
  return connect({ servers: readState().nats.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix });
}

interface RecoverJson {
  applied: boolean;
  streams: { stream: string; lost: boolean; action: string; note?: string }[];
  ledger: { size: number; action: string; reason: string; republished?: number } | null;
  directory: { principal: string; version: number; bucket: string; action: string; reason: string }[];
  restarted: string[];
  notReady: { service: string; error: string }[];
}

async function recover(apply: boolean): Promise<{ code: number; report: RecoverJson; stderr: string }> {
  const r = await bulwark(['recover', '--dir', home, '--json', ...(apply ? ['--apply'] : [])]);
  if (r.stdout.trim() === '') throw new Error(`recover printed nothing (exit ${r.code}): ${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as RecoverJson, stderr: r.stderr };
}

async function policyList(): Promise<{ setVersion: string; policies: { name: string; activeVersion: number; versions: number[] }[] }> {
  const r = await bulwark(['policy', 'list', '--dir', home, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { setVersion: string; policies: { name: string; activeVersion: number; versions: number[] }[] };
}

const db = new pg.Pool({ connectionString: DATABASE, max: 2 });
let up: Up | undefined;
let decoy: ChildProcess | undefined;

function killUp(): void {
  if (up === undefined) return;
  try {
    const state = readState();
    for (const pid of [state.pid, state.nats.pid, ...state.services.map((s) => s.pid)]) if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // No state.
  }
  try {
    process.kill(-up.child.pid!, 'SIGKILL');
  } catch {
    // Gone.
  }
}

beforeAll(async () => {
  up = startUp();
  await untilUp(up);
}, 200_000);

afterAll(async () => {
  killUp();
  decoy?.kill('SIGKILL');
  await db.query(`drop schema if exists ${SCHEMA} cascade`).catch(() => undefined);
  await db.end();
  rmSync(home, { recursive: true, force: true });
  rmSync(policies, { recursive: true, force: true });
});

describe('custody under bulwark up (issue 12)', () => {
  it("each service but the key manager runs from its own key directory: its own keys and the root pin only; with it, no directory entry can be signed", { timeout: 120_000 }, async () => {
    const state = readState();
    const kek = { SYMBIONT_KEK_FILE: join(home, 'kek') };
    for (const service of state.services) {
      const environ = readFileSync(`/proc/${service.pid}/environ`, 'utf8').split('\0');
      const keyDir = environ.find((v) => v.startsWith('SYMBIONT_KEY_DIR='))!.slice('SYMBIONT_KEY_DIR='.length);
      if (service.name === 'key-manager') {
        // Custody: the root and the NATS authority are the key manager's.
        expect(keyDir).toBe(join(home, 'key-manager', 'keys'));
        continue;
      }
      expect(keyDir).toBe(join(home, 'run', 'keys', service.name));
      const principal = `svc.${service.name}`;
      const files = readdirSync(keyDir).sort();
      expect(files).toContain('root.pub');
      for (const file of files) expect(file === 'root.pub' || file.startsWith(`${principal}.`), `${keyDir}/${file}`).toBe(true);
      // Attack: a process holding only this directory (and the KEK) tries to sign a directory entry.
      const { store, provider } = await openKeyStore({ ...homeEnvironment(homeAt(home), env()), SYMBIONT_KEY_DIR: keyDir, ...kek }, ROOT);
      await expect(loadRootKey(store)).rejects.toMatchObject({ code: 'E_KEY_NOT_FOUND' });
      await expect(
        enrollPrincipal({ store, provider, id: `agent.${randomUUID()}`, namespace: { streamPrefix: '', subjectPrefix: '' }, validityDays: 1 }),
      ).rejects.toMatchObject({ code: 'E_KEY_NOT_FOUND' });
      const add = await bulwark(['principal', 'add', `agent.${randomUUID()}`, '--dir', keyDir, '--nats', state.nats.url], kek);
      expect(add.code).not.toBe(0);
      expect(add.stderr).toMatch(/the key manager enrols principals \(it alone holds the root key\)/);
    }
  });
});

describe('bulwark recover', () => {
  it('finds nothing to do on a healthy system (exit 0), after the demo (its agent enrolled through the key manager)', { timeout: 240_000 }, async () => {
    const demo = await bulwark(['demo', '--dir', home]);
    expect(demo.code, demo.stdout + demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/enrolled through the key manager: version 2/);
    const { code, report } = await recover(false);
    expect(code).toBe(0);
    expect(report.streams.every((s) => !s.lost)).toBe(true);
    expect(report.ledger?.action).toBe('none');
    expect(report.directory.map((d) => [d.principal, d.bucket])).toContainEqual(['svc.policy', 'same']);
    expect(report.directory.every((d) => d.action === 'none')).toBe(true);
  });

  it('a lost BULWARK_LEDGER: the ledger re-publishes what verifies, and the policy service ends on the same set', { timeout: 300_000 }, async () => {
    writeFileSync(join(policies, 'a.policy'), 'policy recover_a {\n    allow: read(x)\n}\n');
    writeFileSync(join(policies, 'b.policy'), 'policy recover_b {\n    deny: write(y)\n}\n');
    expect((await bulwark(['policy', 'push', 'a.policy', 'b.policy', '--dir', home])).code).toBe(0);
    writeFileSync(join(policies, 'a.policy'), 'policy recover_a {\n    allow: read(x)\n    allow: read(z)\n}\n');
    expect((await bulwark(['policy', 'push', 'a.policy', '--dir', home])).code).toBe(0);
    const before = await policyList();
    expect(before.policies.find((p) => p.name === 'recover_a')?.versions).toEqual([1, 2]);

    const nc = await asOperator();
    try {
      const jsm = await jetstreamManager(nc);
      expect(await jsm.streams.delete('BULWARK_LEDGER')).toBe(true);

      const dry = await recover(false);
      expect(dry.code).toBe(1);
      expect(dry.report.streams.find((s) => s.stream === 'BULWARK_LEDGER')).toMatchObject({ lost: true, action: 'create' });
      expect(dry.report.ledger?.action).toBe('republish');
      // A dry run changes nothing.
      await expect(jsm.streams.info('BULWARK_LEDGER')).rejects.toThrow(/stream not found/);

      // Attack: the source of truth was altered. Nothing that does not verify goes back on the bus.
      const { rows } = await db.query<{ seq: string; details: string }>(`select seq::text, details from ${SCHEMA}.events where event_type = 'policy.registered' and details::text like '%recover\\_%' order by seq limit 1`);
      // One of this test's own registrations (the demo registered policies before it): the edit must change the row.
      const victim = rows[0]!;
      expect(victim.details.replace('recover_', 'forged_')).not.toBe(victim.details);
      await db.query(`update ${SCHEMA}.events set details = $1 where seq = $2`, [victim.details.replace('recover_', 'forged_'), victim.seq]);
      const refused = await bulwark(['recover', '--dir', home, '--apply', '--json']);
      expect(refused.code, `${refused.stdout}${refused.stderr}`).not.toBe(0);
      expect(refused.stderr).toMatch(/does not verify.*nothing was re-published/);
      // The stream was made again, but nothing from the ledger's start went into it (the ledger's own publication of newer events resumed).
      const info = await jsm.streams.info('BULWARK_LEDGER');
      if (info.state.messages > 0) expect((await jsm.streams.getMessage('BULWARK_LEDGER', { seq: info.state.first_seq }))?.header?.get('Nats-Msg-Id')).not.toMatch(/^0-/);
      await db.query(`update ${SCHEMA}.events set details = $1 where seq = $2`, [victim.details, victim.seq]);

      const applied = await recover(true);
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.report.ledger?.action).toBe('republish');
      const size = applied.report.ledger!.size;
      expect(applied.report.ledger?.republished).toBe(size);
      expect(applied.report.restarted).toContain('policy');
      expect((await jsm.streams.info('BULWARK_LEDGER')).state.messages).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
    // The restarted policy service replayed the refilled stream through its verified reader.
    expect(await policyList()).toEqual(before);
    expect((await recover(false)).code).toBe(0);
  });

  it('a lost BULWARK_EVENTS: created again, the loss reported, events reach the ledger again', { timeout: 300_000 }, async () => {
    const nc = await asOperator();
    try {
      expect(await (await jetstreamManager(nc)).streams.delete('BULWARK_EVENTS')).toBe(true);
    } finally {
      await nc.close();
    }
    const dry = await recover(false);
    expect(dry.code).toBe(1);
    expect(dry.report.streams.find((s) => s.stream === 'BULWARK_EVENTS')).toMatchObject({ lost: true, action: 'create' });
    expect(dry.report.streams.find((s) => s.stream === 'BULWARK_EVENTS')?.note).toMatch(/not committed are lost; the ledger holds every committed event/);
    const applied = await recover(true);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.report.restarted).toContain('audit-ledger');
    // A policy change is a ledger event: it goes through BULWARK_EVENTS to the ledger and back.
    writeFileSync(join(policies, 'c.policy'), 'policy recover_c {\n    allow: read(w)\n}\n');
    const pushed = await bulwark(['policy', 'push', 'c.policy', '--dir', home, '--json']);
    expect(pushed.code, pushed.stdout + pushed.stderr).toBe(0);
    expect((await policyList()).policies.map((p) => p.name)).toContain('recover_c');
  });

  it('a purged or edited directory entry is put back from the signed entries; a revoked key or a forged entry never is', { timeout: 300_000 }, async () => {
    const agent = `agent.${randomUUID()}`;
    const forged = `analyst.forged${randomUUID().slice(0, 8)}`;
    // Enrolled offline on the key manager's own store (the key manager, which republishes the
    // entries it certified on its own, knows nothing of them: only recover can put them back);
    // their signed entries join the administrator's, as `bulwark up` copies them there.
    for (const id of [agent, forged]) {
      const added = await bulwark(['principal', 'add', id, '--dir', join(home, 'key-manager', 'keys'), '--nats', readState().nats.url], { SYMBIONT_KEK_FILE: join(home, 'key-manager', 'kek') });
      expect(added.code, added.stderr).toBe(0);
      copyFileSync(join(home, 'key-manager', 'keys', 'entries', `${id}.v1.entry`), join(home, 'admin', 'entries', `${id}.v1.entry`));
    }
    // The key manager revokes the agent (a keys.revoked event in the ledger, from svc.key-manager).
    const km = await openSession({ env: keyManagerEnvironment(homeAt(home), env()), cwd: ROOT, principal: 'svc.key-manager', name: 'recover-test-km', natsUrl: readState().nats.url });
    try {
      const events = createEventPublisher(km.bus, new SealedSender({ provider: km.provider, self: km.identity, directory: km.directory, recipientId: LEDGER_PRINCIPAL }));
      const revoked = newEvent({ agentId: agent, eventType: 'keys.revoked', details: { principal: agent, version: 1, reason: 'key_compromise', at: Date.now(), by: 'analyst.admin' } });
      await events.publish({ subject: Events.keys.revoked, eventId: revoked.eventId, payload: encodeEvent(revoked) });
    } finally {
      await km.close();
    }
    const nc = await asOperator();
    try {
      const kv = await new Kvm(nc).open('BULWARK_DIRECTORY');
      await kv.purge(agent);
      await kv.purge('svc.policy');
      await kv.put('analyst.admin', new TextEncoder().encode('not a signed entry'));
      // Attack: an analyst's stored entry is altered on disk, and its bucket entry purged.
      const file = join(home, 'admin', 'entries', `${forged}.v1.entry`);
      const bytes = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
      writeFileSync(file, `${bytes.toString('base64')}\n`);
      await kv.purge(forged);

      // The revocation is committed before recover reads it.
      for (let i = 0; i < 100; i++) {
        const { rows } = await db.query(`select 1 from ${SCHEMA}.events where event_type = 'keys.revoked' and agent_id = $1`, [agent]);
        if (rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }

      const dry = await recover(false);
      const by = (id: string) => dry.report.directory.find((d) => d.principal === id);
      expect(by('svc.policy')).toMatchObject({ bucket: 'missing', action: 'republish' });
      expect(by('analyst.admin')).toMatchObject({ bucket: 'edited', action: 'republish' });
      expect(by(agent)).toMatchObject({ bucket: 'missing', action: 'refuse' });
      expect(by(agent)?.reason).toMatch(/revoked in the ledger/);
      expect(by(forged)).toMatchObject({ action: 'refuse' });
      expect(by(forged)?.reason).toMatch(/does not (verify|decode)/);
      expect(dry.code).toBe(1);

      const applied = await recover(true);
      expect(applied.code).toBe(1); // two entries refused, said on stderr
      expect(applied.stderr).toContain(`${agent} v1: not republished`);
      expect(applied.report.restarted).toEqual(expect.arrayContaining(['audit-ledger', 'policy']));
      expect((await kv.get('svc.policy'))?.operation).toBe('PUT');
      expect((await kv.get(agent))?.operation).toBe('PURGE');
      expect((await kv.get(forged))?.operation).toBe('PURGE');
      expect(applied.report.notReady).toEqual([]);
      const adminEntry = readFileSync(join(home, 'admin', 'entries', 'analyst.admin.v1.entry'), 'utf8').trim();
      expect(Buffer.from((await kv.get('analyst.admin'))!.value).toString('base64')).toBe(adminEntry);
    } finally {
      await nc.close();
    }
    // The system works again: the administrator's session and the policy service's entry.
    expect((await policyList()).policies.map((p) => p.name)).toContain('recover_a');
  });

  it('a SIGKILLed bulwark up leaves services behind: the next up stops them, and only them', { timeout: 300_000 }, async () => {
    const state = readState();
    const left = state.services.map((s) => s.pid!);
    // A process that is not ours, under a pid the state names: never stopped.
    decoy = spawn('sleep', ['300'], { stdio: 'ignore' });
    process.kill(state.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const after = readState();
    after.services.push({ name: 'policy', principal: 'svc.policy', pid: decoy.pid!, metricsPort: 0, restarts: 0 });
    writeFileSync(join(home, 'run', 'up.json'), JSON.stringify(after));
    const stillRunning = left.filter(isAlive);

    up = startUp();
    await untilUp(up);
    // The services may also stop themselves when up dies (their stdin closes): what is left when the next up starts is stopped by it, the decoy never.
    if (stillRunning.length > 0 && /left .* running: stopping them/.test(up.output())) expect(up.output()).not.toContain(`pid ${decoy.pid!})`);
    for (const pid of left) expect(isAlive(pid), `leftover ${pid}`).toBe(false);
    expect(isAlive(decoy.pid!)).toBe(true);
    const fresh = readState();
    expect(fresh.services.every((s) => s.pid !== undefined && !left.includes(s.pid))).toBe(true);
  });
});
