// The SOC stream under NATS authentication (issue 15, DESIGN §3a): `bulwark init`, nats-server
// with exactly the configuration it wrote, the real audit-ledger, key-manager and
// incident-response mains as child processes with their own credentials. Incidents are raised
// through the ledger (bursts of bus.rejected reports, rule bus_rejections_burst, Medium).
// - an enrolled analyst reads its own copies through the durables the bus grants it;
// - an analyst that is not enrolled reads nothing, and the bus refuses it another analyst's
//   filter, the wide filter `bulwark.incident.*.>` and any durable not its own;
// - an analyst revoked at T (through the key manager) gets no copy of an incident created after
//   T, and its connection is cut.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connectBus, createEventPublisher, createRejectionReporter, KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, startStreamConsumer, type Bus } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { socConsumers } from '@bulwark/incident-response';
import { loadIdentity } from '@bulwark/keystore';
import { busCredentialsFor, loadNatsCredentials, OPERATOR_USER, readCredsFile, type BusRole } from '@bulwark/nats-auth';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { mainEnv, startPrivateBulwark, type PrivateBulwark } from './private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

describe('the SOC stream for enrolled analysts only', () => {
  let b: PrivateBulwark;
  const children: { name: string; proc: ChildProcess; stderr: string }[] = [];
  const buses: Bus[] = [];
  const directories: KvDirectory[] = [];
  const schema = withTestSchema('incident_analysts');
  const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });

  const startMain = async (name: string, principal: string, script: string, extra: Record<string, string>, keyDir?: string) => {
    let own = keyDir;
    if (own === undefined) {
      own = join(b.home, `${name}-keys`);
      const exported = await b.bulwark(['principal', 'export', principal, '--out', own]);
      expect(exported.code, exported.stderr).toBe(0);
    }
    const env = mainEnv(b, own, { DATABASE_URL: databaseUrl(), ...extra });
    const child = { name, proc: spawn(process.execPath, [join(repoRoot, script)], { env, stdio: ['ignore', 'ignore', 'pipe'] }), stderr: '' };
    child.proc.stderr?.on('data', (d: Buffer) => void (child.stderr += d.toString()));
    children.push(child);
  };
  /** Principals enrolled through the key manager hold their NATS credentials in a .creds file. */
  const credsFiles = new Map<string, string>();
  const busOf = async (principal: string) => {
    const file = credsFiles.get(principal);
    const creds = file === undefined ? await busCredentialsFor(b.store, principal) : await readCredsFile(file).then((c) => ({ credentials: { jwt: c.jwt, seed: c.seed }, inboxPrefix: c.inboxPrefix }));
    const bus = await connectBus({ url: b.url, name: principal, maxReconnectAttempts: 0, ...creds });
    buses.push(bus);
    return bus;
  };
  const directoryOf = async (bus: Bus) => {
    const d = await KvDirectory.open(bus, { provider: b.provider, rootPublicKey: b.rootPublicKey });
    directories.push(d);
    return d;
  };
  /** A bare NATS connection with `who`'s credentials (to speak the JetStream API directly). */
  const raw: NatsConnection[] = [];
  const rawAs = async (who: string | BusRole) => {
    const creds = (await loadNatsCredentials(b.store, typeof who === 'string' ? { kind: 'principal', id: who } : who))!;
    const nc = await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 });
    raw.push(nc);
    return nc;
  };
  const serviceAnswers = async (service: string) => {
    try {
      await operator.request(`$SRV.PING.${service}`, '', { timeout: 500 });
      return true;
    } catch {
      return false;
    }
  };

  /** What an analyst reads of the SOC stream: its own durables, opened with its own key. */
  const tail = async (principal: string) => {
    const bus = await busOf(principal);
    const directory = await directoryOf(bus);
    const me = await loadIdentity(b.store, principal);
    const receiver = new SealedReceiver({ provider: b.provider, self: { id: me.id, x25519: me.x25519 }, directory, staleAfterMs: 3_600_000 });
    const seen: { subject: string; incident: string }[] = [];
    const consumers = await Promise.all(
      socConsumers(principal, 'info').map((spec) =>
        startStreamConsumer(bus, receiver, { stream: 'incidents', ...spec }, async (d) => {
          const finding = JSON.parse(new TextDecoder().decode(d.plaintext)) as { finding_info: { uid: string } };
          seen.push({ subject: d.subject, incident: finding.finding_info.uid });
        }, quiet(principal)),
      ),
    );
    return { bus, seen, stop: () => Promise.all(consumers.map((c) => c.stop())) };
  };

  /** 10 rejected frames claiming `sender` within a second: one Medium incident keyed by it. */
  const burstAbout = async (reporterBus: Bus, reporter: string, sender: string) => {
    const me = await loadIdentity(b.store, reporter);
    const directory = await directoryOf(reporterBus);
    const events = createEventPublisher(reporterBus, new SealedSender({ provider: b.provider, self: { id: me.id, x25519: me.x25519 }, directory, recipientId: LEDGER_PRINCIPAL }));
    const reports = createRejectionReporter(events, { reporter, ratePerSecond: 1000, burst: 1000, globalRatePerSecond: 1000, globalBurst: 1000 });
    for (let i = 0; i < 10; i++) reports.report({ reason: 'E_FRAME_MAC', sender, subject: 'bulwark.policy.evaluate' });
    await reports.flush();
  };

  let operator: NatsConnection;
  const until = async (check: () => Promise<boolean>, what: string, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      failIfDied();
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-b', 'services/audit-ledger', 'services/key-manager', 'services/incident-response'], { cwd: repoRoot, stdio: 'pipe' });
    b = await startPrivateBulwark({ namespace: false });
    for (const id of ['analyst.ann', 'analyst.eve', 'analyst.rex']) await b.addPrincipal(id);
    operator = await rawAs(OPERATOR_USER);
    await startMain('audit-ledger', 'svc.audit-ledger', 'services/audit-ledger/dist/service/main.js', {
      SYMBIONT_LEDGER_SCHEMA: schema.name,
      SYMBIONT_LEDGER_CHECKPOINT_MS: '0',
      SYMBIONT_LEDGER_SIGNER_WORKERS: '1',
      SYMBIONT_LEDGER_CONTROL_TO: 'svc.policy, svc.key-manager',
    });
    await until(() => serviceAnswers('bulwark-audit'), 'bulwark-audit answers');
    // The key manager holds the root and the NATS account keys: init's own store.
    await startMain('key-manager', 'svc.key-manager', 'services/key-manager/dist/main.js', { SYMBIONT_KEY_ADMINS: 'analyst.admin' }, b.keysDir);
    await startMain('incident-response', 'svc.incident-response', 'services/incident-response/dist/main.js', { BULWARK_INCIDENT_ANALYSTS: 'analyst.ann,analyst.bob,analyst.rex' });
    await until(() => serviceAnswers('bulwark-keys'), 'bulwark-keys answers');
    await until(() => serviceAnswers('bulwark-incident'), 'bulwark-incident answers');
  }, 240_000);

  afterAll(async () => {
    await Promise.all(directories.map((d) => d.stop()));
    await Promise.all(buses.map((x) => x.close().catch(() => undefined)));
    await Promise.all(raw.map((nc) => nc.close().catch(() => undefined)));
    for (const c of children) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        const exited = new Promise((r) => c.proc.once('exit', r));
        c.proc.kill('SIGTERM');
        await exited;
      }
    }
    await schema.drop();
    await b?.stop();
  }, 60_000);

  const failIfDied = () => {
    for (const c of children) if (c.proc.exitCode !== null) throw new Error(`${c.name} exited ${c.proc.exitCode}: ${c.stderr}`);
  };

  it('an enrolled analyst reads its own copies; one not enrolled reads nothing and the bus refuses it every other filter and durable', async () => {
    // Eve has a NATS user and a directory entry, but is not enrolled for the SOC stream. Her own
    // user, speaking the JetStream API directly, asks for ann's copies, every analyst's copies,
    // or a durable not hers (none of these durables exists: only the permission can refuse).
    const eveNc = await rawAs('analyst.eve');
    const eveJsm = await jetstreamManager(eveNc);
    const refused = async (durable: string, filter: string) => {
      await expect(eveJsm.consumers.add('BULWARK_INCIDENTS', { durable_name: durable, filter_subject: filter, ack_policy: AckPolicy.Explicit }), `${durable} ${filter}`).rejects.toThrow(/Permissions Violation/);
    };
    await refused('analyst_eve_medium', 'bulwark.incident.medium.*.analyst%2Eann');
    await refused('analyst_eve_medium', 'bulwark.incident.medium.>');
    await refused('analyst_eve_medium', 'bulwark.incident.*.>');
    await refused('analyst_eve_medium', 'bulwark.incident.medium.*.*');
    await refused('analyst_eve_high', 'bulwark.incident.medium.*.analyst%2Eeve');
    await refused('analyst_ann_medium', 'bulwark.incident.medium.*.analyst%2Eann');
    await refused('soc-eve', 'bulwark.incident.medium.*.analyst%2Eeve');

    const ann = await tail('analyst.ann');
    const eve = await tail('analyst.eve');
    await burstAbout(await busOf('analyst.eve'), 'analyst.eve', 'agent.probe-one');
    await expect.poll(() => { failIfDied(); return ann.seen.length; }, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(1);
    expect(ann.seen[0]!.subject).toMatch(/^bulwark\.incident\.medium\.auth_failure\.analyst%2Eann$/);
    await new Promise((r) => setTimeout(r, 1000));
    expect(eve.seen).toEqual([]);
    await Promise.all([ann.stop(), eve.stop()]);
  }, 120_000);

  it('an analyst revoked at T receives no copy of an incident created after T, and is cut off the bus', async () => {
    // Bob is enrolled through the key manager (invite, then enrol with keys made on his side).
    const invited = await b.bulwark(['keys', 'invite', 'analyst.bob', '--as', 'analyst.admin', '--nats', b.url, '--json']);
    expect(invited.code, invited.stderr).toBe(0);
    const enrolled = await b.bulwark(['keys', 'enroll', '--join', (JSON.parse(invited.stdout) as { join: string }).join, '--nats', b.url, '--json']);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    credsFiles.set('analyst.bob', (JSON.parse(enrolled.stdout) as { credsFile: string }).credsFile);
    const bob = await tail('analyst.bob');
    const rex = await tail('analyst.rex');
    const reporter = await busOf('analyst.eve');
    await burstAbout(reporter, 'analyst.eve', 'agent.probe-two');
    // Rex: probe-one's incident (the first test) and probe-two's; bob, enrolled since, only probe-two's.
    await expect.poll(() => { failIfDied(); return bob.seen.length; }, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(1);
    await expect.poll(() => rex.seen.length, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(2);
    const before = new Set(bob.seen.map((s) => s.incident));

    // T: bob's key revoked through the key manager, by the administrator.
    const adminBus = await busOf('analyst.admin');
    const admin = await loadIdentity(b.store, 'analyst.admin');
    const watcher = await directoryOf(adminBus);
    const client = createBulwarkClient({ bus: adminBus, sessions: { provider: b.provider, self: { id: admin.id, x25519: admin.x25519 }, directory: watcher }, rejections: quiet(admin.id) });
    await client.keys.revoke('analyst.bob', 'key_compromise');
    await expect.poll(() => watcher.lookup('analyst.bob'), { timeout: 20_000, interval: 100 }).toBeUndefined();
    // The incident service's own directory sees it too (same bucket); give its watch the same bound.
    await new Promise((r) => setTimeout(r, 1000));

    await burstAbout(reporter, 'analyst.eve', 'agent.probe-three');
    await expect.poll(() => rex.seen.filter((s) => !before.has(s.incident)).length, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 1000));
    // Nothing about the later incident reached bob, and the stream holds no copy sealed to him.
    expect(bob.seen.filter((s) => !before.has(s.incident))).toEqual([]);
    const info = await (await jetstreamManager(operator)).streams.info('BULWARK_INCIDENTS', { subjects_filter: 'bulwark.incident.>' });
    const copies = (suffix: string) => Object.entries(info.state.subjects ?? {}).filter(([s]) => s.endsWith(suffix)).reduce((n, [, c]) => n + c, 0);
    expect(copies('analyst%2Ebob')).toBe(before.size);
    expect(copies('analyst%2Erex')).toBe(3);
    // And bob's user is revoked: a new connection with his credentials is refused.
    await expect(busOf('analyst.bob')).rejects.toThrow();
    await Promise.all([bob.stop().catch(() => undefined), rex.stop()]);
  }, 180_000);

  it('bulwark incident list|show|ack|resolve and soc tail for an enrolled analyst; refused to one not enrolled', async () => {
    const as = (who: string, ...argv: string[]) => b.bulwark([...argv, '--as', who, '--nats', b.url]);
    const listed = await as('analyst.ann', 'incident', 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const incidents = JSON.parse(listed.stdout) as { id: string; severity: string; status: string; rule: string; key: string }[];
    expect(incidents.filter((i) => i.rule === 'bus_rejections_burst').map((i) => i.key).sort()).toEqual(['agent.probe-one', 'agent.probe-three', 'agent.probe-two']);
    const target = incidents.find((i) => i.key === 'agent.probe-three')!;
    expect(target).toMatchObject({ severity: 'medium', status: 'open' });

    // soc tail as its own process (it runs until SIGINT), JSON lines of the findings sealed to ann.
    const tailProc = spawn(process.execPath, [join(repoRoot, 'libs/cli/dist/bin.js'), 'soc', 'tail', '--as', 'analyst.ann', '--nats', b.url, '--severity', 'medium+', '--category', 'auth_failure', '--json'], {
      cwd: b.home,
      env: { PATH: process.env['PATH'] ?? '', ...b.env, SYMBIONT_KEY_DIR: b.keysDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    tailProc.stdout.on('data', (d: Buffer) => void (out += d.toString()));
    tailProc.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    const lines = () => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { ce: { id: string; type: string }; finding: { finding_info: { uid: string }; class_uid: number; activity_id: number } });

    const shown = await as('analyst.ann', 'incident', 'show', target.id, '--json');
    expect(shown.code, shown.stderr).toBe(0);
    expect((JSON.parse(shown.stdout) as { actions: { action: string; outcome: string }[] }).actions).toContainEqual(expect.objectContaining({ action: 'alert', outcome: 'done' }));
    const acked = await as('analyst.ann', 'incident', 'ack', target.id, '--note', 'looking', '--json');
    expect(acked.code, acked.stderr).toBe(0);
    expect(JSON.parse(acked.stdout)).toMatchObject({ id: target.id, status: 'acknowledged' });
    const resolved = await as('analyst.ann', 'incident', 'resolve', target.id, '--note', 'probe stopped', '--json');
    expect(resolved.code, resolved.stderr).toBe(0);
    expect(JSON.parse(resolved.stdout)).toMatchObject({ id: target.id, status: 'resolved' });
    const after = JSON.parse((await as('analyst.ann', 'incident', 'list', '--status', 'resolved', '--json')).stdout) as { id: string }[];
    expect(after.map((i) => i.id)).toEqual([target.id]);

    // The tail shows the incident's creation, acknowledgement and resolution (OCSF activities 1, 2, 3).
    await expect.poll(() => lines().filter((l) => l.finding.finding_info.uid === target.id).map((l) => l.finding.activity_id), { timeout: 30_000, interval: 200 }).toEqual([1, 2, 3]);
    expect(lines().every((l) => l.finding.class_uid === 2004)).toBe(true);
    const exited = new Promise<number | null>((r) => tailProc.once('exit', (code) => r(code)));
    tailProc.kill('SIGINT');
    expect(await exited, err).toBe(0);

    // Eve is no analyst: the service refuses her the commands.
    const refused = await as('analyst.eve', 'incident', 'list', '--json');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/analyst|refused|not/i);
  }, 120_000);
});
