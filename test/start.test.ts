// `npm start` as an operator runs it (README Quick start): a child process on a fresh home
// directory, with NATS from PATH (its own nats-server on a free port, never the machine's
// 4222) and the embedded PGlite (never the machine's PostgreSQL). All six services must be
// ready within 60 s of `bulwark up` starting (it prints the time: 30-50 s on this shared 2-core
// machine, most of it the ledger's PGlite start, before the others start), must pass `bulwark demo`,
// serve the SOC stream on its channel to the analysts it enrols (test/soc-under-up.ts), refuse
// an anonymous client, restart a crashed service, stop on SIGINT leaving no process behind,
// and a second start on the same home must reuse the keys and the ledger.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { connectBus } from '@bulwark/bus';
import { loadNatsCredentials, OPERATOR_USER, readCredsFile } from '@bulwark/nats-auth';
import { homeEnvironment } from '../libs/cli/src/home/environment.js';
import { homeAt } from '../libs/cli/src/home/home.js';
import { openKeyStore } from '../libs/cli/src/home/session.js';
import { isBulwarkError } from '@bulwark/errors';
import { isAlive, readRunState, type RunState } from '../libs/cli/src/home/state.js';
import { environOf, isolatedEnv, ROOT, runBulwark, spawnGroup, untilPrinted, type Spawned as Started } from './bulwark-process.js';
import { checkSocChannelUnderUp } from './soc-under-up.js';

const home = mkdtempSync(join(tmpdir(), 'bulwark-start-'));

const bulwark = (args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = {}) => runBulwark(args, { env: isolatedEnv(env), timeoutMs });

/** `npm start -- --dir <home>` in its own process group, as a terminal runs it (Ctrl-C goes to the group; npm re-raises the SIGINT). */
function npmStart(): Started {
  // Under the whole suite two cores are shared by many tests: give up's own wait room (figures are printed).
  const started = spawnGroup('npm', ['start', '--', '--dir', home, '--ready-timeout', '150'], isolatedEnv());
  everyStart.push(started);
  return started;
}

/** Every system started: a test that fails before its SIGINT leaves its system to afterAll, whatever the next test started. */
const everyStart: Started[] = [];

interface StatusJson {
  ready: boolean;
  nats: { url: string };
  database: { kind: string; url?: string };
  services: { name: string; instances: number; ready: boolean; metrics?: string }[];
  ledger: { size: number | null; checkpoint: { size: number; rootHash: string } | null };
}

/** Polls `bulwark status --json` until every service is ready; returns it and the seconds it took. */
async function untilReady(started: Started, since: number, budgetMs: number): Promise<{ status: StatusJson; seconds: number }> {
  const deadline = since + budgetMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await bulwark(['status', '--dir', home, '--json'], 15_000);
    last = `${r.stdout}${r.stderr}`;
    if (r.code === 0) return { status: JSON.parse(r.stdout) as StatusJson, seconds: (Date.now() - since) / 1000 };
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`not ready after ${budgetMs / 1000} s; last status: ${last}; npm start said: ${started.output()}`);
}

/** When `bulwark up` itself began (its first line), after npm and turbo's build check. */
async function upStarted(started: Started): Promise<number> {
  await untilPrinted(started, 'bulwark up: ');
  return Date.now();
}

const readState = (): RunState => readRunState(homeAt(home))!;

/** Every pid of a running system: bulwark up, the nats-server it started, each service. */
function pidsOf(state: RunState): number[] {
  return [state.pid, ...(state.nats.pid === undefined ? [] : [state.nats.pid]), ...state.services.flatMap((s) => (s.pid === undefined ? [] : [s.pid]))];
}

/** SIGINT to the group (a terminal's Ctrl-C); every process it started must be gone within 10 s. */
async function interrupt(started: Started, pids: readonly number[]): Promise<number> {
  const t0 = Date.now();
  process.kill(-started.child.pid!, 'SIGINT');
  const exit = await Promise.race([started.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
  while (pids.some(isAlive) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
  const left = pids.filter(isAlive);
  for (const pid of left) process.kill(pid, 'SIGKILL');
  expect(left, `processes still running 10 s after SIGINT: ${left.join(', ')}`).toEqual([]);
  expect(exit === 'timeout' ? exit : exit.code === 0 || exit.signal === 'SIGINT').toBe(true);
  expect(started.output()).toContain('SIGINT: stopping the services, then NATS');
  expect(started.output()).not.toMatch(/did not stop within|internal error/);
  return (Date.now() - t0) / 1000;
}

const WRAPPED_KEY = /^(.+)\.(ed25519|x25519|nats-operator|nats-account|nats-system-account|nats-user)\.v\d+\.json$/;

/**
 * Each running service's key directory, as its process has it: only its own wrapped keys
 * (the key manager: the key manager's store, under its own KEK, which no other process is given).
 */
async function expectOwnKeysOnly(state: RunState & { services: { name: string; principal?: string; pid?: number }[] }): Promise<void> {
  const managerKek = join(home, 'key-manager', 'kek');
  for (const service of state.services) {
    const env = environOf(service.pid!);
    const dir = env['SYMBIONT_KEY_DIR']!;
    if (service.name === 'key-manager') {
      expect(dir).toBe(join(home, 'key-manager', 'keys'));
      expect(env['SYMBIONT_KEK_FILE']).toBe(managerKek);
      continue;
    }
    expect(dir, service.name).toBe(join(home, 'run', 'keys', service.name));
    expect(env['SYMBIONT_KEK_FILE'], service.name).toBe(join(home, 'kek'));
    expect(Object.values(env), service.name).not.toContain(managerKek);
    const owners = new Set(readdirSync(dir).flatMap((n) => WRAPPED_KEY.exec(n)?.[1] ?? []));
    expect([...owners], service.name).toEqual([service.principal]);
  }
}

/** Purges one entry of BULWARK_DIRECTORY as the operator's NATS user (what a mistaken operator could do). */
async function purgeDirectoryEntry(url: string, key: string): Promise<void> {
  const env = homeEnvironment(homeAt(home), isolatedEnv());
  const { store } = await openKeyStore(env, ROOT);
  const creds = await loadNatsCredentials(store, OPERATOR_USER);
  const nc = await connect({ servers: url, authenticator: jwtAuthenticator(creds!.jwt, creds!.seed), inboxPrefix: creds!.inboxPrefix });
  try {
    const kv = await new Kvm(nc).open('BULWARK_DIRECTORY');
    await kv.purge(key);
    expect(await kv.get(key)).toMatchObject({ operation: 'PURGE' });
  } finally {
    await nc.close();
  }
}

let running: Started | undefined;

afterAll(() => {
  // A failed assertion must not leave a system running on this machine.
  const left = everyStart.filter((s) => s.child.exitCode === null);
  if (left.length > 0) {
    for (const s of left) {
      try {
        process.kill(-s.child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    try {
      for (const pid of pidsOf(readState())) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // No state file.
    }
  }
  rmSync(home, { recursive: true, force: true });
});

describe('npm start', () => {
  let firstRoot = '';
  let firstSize = 0;

  it('starts everything from a fresh home, passes the demo, reads the SOC channel, and stops cleanly on SIGINT', { timeout: 420_000 }, async () => {
    running = npmStart();
    const since = await upStarted(running);
    // Every service ready within 60 s of `bulwark up` starting (the build check before it not counted).
    const { status, seconds } = await untilReady(running, since, 60_000);
    console.log(`npm start: all six services ready ${seconds.toFixed(1)} s after bulwark up started`);
    expect(status.nats.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(status.nats.url).not.toBe('nats://127.0.0.1:4222');
    expect(status.database.kind).toBe('pglite');
    expect(status.services.map((s) => [s.name, s.ready])).toEqual([
      ['audit-ledger', true],
      ['policy', true],
      ['key-manager', true],
      ['schemapin', true],
      ['sandbox-scheduler', true],
      ['incident-response', true],
    ]);
    for (const s of status.services) expect(s.instances).toBe(1);
    // `status` can see every service ready a moment before `up`'s own probe does and prints its table.
    for (let i = 0; i < 300 && !running.output().includes('Bulwark is up'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(running.output()).toContain('generated a development key-encryption key');
    expect(running.output()).toMatch(/service\s+instances\s+ready\s+subjects/);

    // The server it started runs in operator mode: a client without credentials is refused.
    const anonymous = await connectBus({ url: status.nats.url, name: 'start-test-anonymous', maxReconnectAttempts: 0, connectTimeoutMs: 3000 }).then(
      async (bus) => {
        await bus.close();
        return 'connected';
      },
      (error: unknown) => (isBulwarkError(error) ? error.code : String(error)),
    );
    expect(anonymous).toBe('E_BUS_AUTH');

    // Each service process runs from a key directory of its own keys only (issue 12 "Custody").
    await expectOwnKeysOnly(readState());

    // Custody: the commands that talk to the running system use only <home>/admin. With the key
    // manager's directory (the root, the NATS authority) taken away, the demo, status and
    // recover's check, `principal add` (now a call to the key manager) and `keys list` still work; the key
    // manager needs its store only at start.
    const away = `${home}.key-manager-away`;
    renameSync(join(home, 'key-manager'), away);
    let demo: Awaited<ReturnType<typeof bulwark>>;
    let after: Awaited<ReturnType<typeof bulwark>>;
    let check: Awaited<ReturnType<typeof bulwark>>;
    let added: Awaited<ReturnType<typeof bulwark>>;
    let listed: Awaited<ReturnType<typeof bulwark>>;
    const agent = `agent.${randomUUID()}`;
    try {
      added = await bulwark(['principal', 'add', agent, '--json'], 60_000, { SYMBIONT_HOME: home });
      listed = await bulwark(['keys', 'list', '--as', 'analyst.admin', '--json'], 60_000, { SYMBIONT_HOME: home });
      demo = await bulwark(['demo', '--dir', home]);
      after = await bulwark(['status', '--dir', home, '--json']);
      check = await bulwark(['recover', '--dir', home, '--json']);
    } finally {
      renameSync(away, join(home, 'key-manager'));
    }
    // Each topic adds its steps (DESIGN: keys, tools, sandbox, incident): every one must pass.
    expect(demo.stdout, demo.stderr).toMatch(/demo: all \d+ steps gave what they should/);
    expect(demo.stdout).toContain('ok: an agent enrolled with a join token, its key rotated mid-run, then revoked: its next call is denied');
    expect(demo.code).toBe(0);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(added.code, added.stdout + added.stderr).toBe(0);
    // A second add of the same principal changes nothing: it is enrolled.
    const again = await bulwark(['principal', 'add', agent], 60_000, { SYMBIONT_HOME: home });
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`bulwark: bulwark principal add ${agent}: already enrolled (directory entry v2); rotate with \`bulwark keys rotate --as ${agent}\` where its keys are, or revoke it\n`);
    expect(listed.code, listed.stdout + listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { principals: { principal: string }[] }).principals.map((p) => p.principal)).toContain(agent);
    const enrolled = JSON.parse(added.stdout) as { via: string; keyDir: string; credsFile: string };
    expect(enrolled).toMatchObject({ via: 'key-manager', keyDir: join(home, 'principals', agent) });
    // Its credentials are the key manager's issue: the server accepts them.
    const creds = await readCredsFile(enrolled.credsFile);
    const agentBus = await connectBus({ url: status.nats.url, name: agent, maxReconnectAttempts: 0, connectTimeoutMs: 3000, credentials: { jwt: creds.jwt, seed: creds.seed }, inboxPrefix: creds.inboxPrefix });
    await agentBus.close();

    expect(after.code, after.stderr).toBe(0);
    const afterStatus = JSON.parse(after.stdout) as StatusJson;
    firstSize = afterStatus.ledger.size ?? 0;
    expect(firstSize).toBeGreaterThanOrEqual(7);
    firstRoot = readFileSync(join(home, 'admin', 'root.pub'), 'utf8');

    // The SOC stream on its channel: an analyst added, its soc tail, revoked; an agent refused (test/soc-under-up.ts).
    await checkSocChannelUnderUp(home, status.nats.url, bulwark, { id: agent, credsFile: enrolled.credsFile });

    // A lost directory entry (the operator's guide, "Recovery"): the policy service's entry is
    // purged from the directory bucket; the next start's init republishes it (second test).
    await purgeDirectoryEntry(status.nats.url, 'svc.policy');

    const seconds2 = await interrupt(running, pidsOf(readState()));
    console.log(`npm start: stopped ${seconds2.toFixed(1)} s after SIGINT`);
  });

  it('starts again on the same home with the same keys and ledger, which verifies; the lost directory entry is back', { timeout: 300_000 }, async () => {
    running = npmStart();
    const since = await upStarted(running);
    const { status, seconds } = await untilReady(running, since, 60_000);
    console.log(`npm start (second): all six services ready ${seconds.toFixed(1)} s after bulwark up started`);
    expect(running.output()).not.toContain('generated a development key-encryption key');
    expect(readFileSync(join(home, 'admin', 'root.pub'), 'utf8')).toBe(firstRoot);
    expect(status.ledger.size ?? 0).toBeGreaterThanOrEqual(firstSize);

    // A crashed service is restarted with backoff, and up says so: once up itself has seen every
    // service ready and said so (a crash before that is a failed start, which ends up), which can
    // come a moment after `status` first answers ready.
    for (let i = 0; i < 300 && !running.output().includes('Bulwark is up'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(running.output()).toContain('Bulwark is up');
    const crashed = readState().services.find((s) => s.name === 'policy')!.pid!;
    process.kill(crashed, 'SIGKILL');
    const restarted = await untilReady(running, Date.now(), 120_000).then(() => readState().services.find((s) => s.name === 'policy')!.pid);
    expect(restarted).not.toBe(crashed);
    expect(running.output()).toMatch(/bulwark up: policy exited \(signal SIGKILL: .*\); restarting in 0\.5 s \(restart 1\)/);

    const demo = await bulwark(['demo', '--dir', home]);
    expect(demo.code, demo.stdout + demo.stderr).toBe(0);
    await interrupt(running, pidsOf(readState()));
    running = undefined;

    // Stopped: the embedded database is free, and the whole ledger (both demos) verifies offline
    // with the verifier key init wrote in the home.
    const verify = await bulwark(['audit', 'verify', '--dir', home, '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout) as { ok: boolean; size: number };
    expect(report.ok).toBe(true);
    expect(report.size).toBeGreaterThan(firstSize);
  });
});
