import { join } from 'node:path';
import { CommandClient, Commands, connectBus, createStreamPublisher, ensureStreams, LEDGER_PRINCIPAL, ledgerControlSubject, RejectionReporter, removeNamespaceStreams, serveCommands, startStreamConsumer, uniqueNamespace, type Bus, type CommandServer, type RunningConsumer } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedReceiver, SealedSender } from '@bulwark/envelope';
import { testWorld, type TestWorld } from '@bulwark/envelope/testing';
import { decodeEvent, type AuditEvent } from '@bulwark/events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuncDriver } from '../src/drivers/runc.js';
import { cgroupDirsOf, hostProcessesOf, makeTestRootfs, skipReason, type TestRootfs } from '../src/drivers/testing.js';
import { Scheduler } from '../src/service/scheduler.js';
import { startSandboxService, type SandboxService } from '../src/service/service.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const provider = createCryptoProvider();
const SANDBOX = 'svc.sandbox-scheduler';
const POLICY = 'svc.policy';
const IR = 'svc.incident-response';
const AGENT = 'agent.a1';
const OTHER = 'agent.other';
const silent = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });
const LOW = { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false };
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const runcReason = skipReason('runc');

describe('the sandbox service on the bus', () => {
  let world: TestWorld;
  let bus: Bus;
  let fs: TestRootfs;
  let service: SandboxService;
  let policy: CommandServer;
  let ledgerQueries: CommandServer;
  let consumer: RunningConsumer;
  const events: AuditEvent[] = [];
  const policyRequests: Record<string, unknown>[] = [];
  let allow = true;

  beforeAll(async () => {
    world = testWorld({ provider, ids: [SANDBOX, POLICY, LEDGER_PRINCIPAL, IR, AGENT, OTHER] });
    bus = await connectBus({ url: NATS_URL, name: 'sandbox-test', namespace: uniqueNamespace() });
    await ensureStreams(bus);
    // A stand-in for the policy service: records what it was asked, allows or denies as the test says.
    policy = await serveCommands(bus, {
      service: 'policy',
      version: '0.0.0',
      rejections: silent(POLICY),
      sessions: { provider, self: world.identity(POLICY), directory: world.directory },
      handlers: {
        [Commands.policy.evaluate]: async (req) => {
          policyRequests.push(JSON.parse(decoder.decode(req.body)) as Record<string, unknown>);
          const decision = allow ? { decision: 'Allow', setVersion: 't', policy: 'sandbox', version: 1, rule: 0, ruleText: 'allow: allocate(sandbox)' } : { decision: 'Deny', setVersion: 't', reason: 'sandboxes are closed today' };
          return encoder.encode(JSON.stringify(decision));
        },
      },
    });
    // The ledger as the service's reader asks it at start: nothing committed (no key facts, every directory entry stands).
    ledgerQueries = await serveCommands(bus, {
      service: 'audit',
      version: '0.0.0',
      rejections: silent(LEDGER_PRINCIPAL),
      sessions: { provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory },
      handlers: { [Commands.audit.query]: async () => encoder.encode(JSON.stringify({ events: [] })) },
    });
    consumer = await startStreamConsumer(
      bus,
      new SealedReceiver({ provider, self: world.identity(LEDGER_PRINCIPAL), directory: world.directory, staleAfterMs: 86_400_000 }),
      { stream: 'events', durable: 'sandbox-test-ledger', filterSubject: 'bulwark.evt.sandbox.>' },
      async (d) => void events.push(decodeEvent(d.plaintext)),
      silent(LEDGER_PRINCIPAL),
    );
    fs = makeTestRootfs();
    const runc = createRuncDriver({ stateRoot: join(fs.dir, 'state'), bundleRoot: join(fs.dir, 'bundles') });
    // The docker floor so that a low-risk workload runs in Tier 1 (runc) here.
    service = await startSandboxService({ bus, provider, identity: world.identity(SANDBOX), directory: world.directory, ledgerPublicKey: world.identity(LEDGER_PRINCIPAL).ed25519.publicKey, scheduler: new Scheduler({ drivers: { 1: runc }, rootfs: fs.rootfs, floor: 1, cgroupParent: 'bulwark-test' }) });
  });
  afterAll(async () => {
    await service?.stop();
    await policy?.stop();
    await ledgerQueries?.stop();
    await consumer?.stop();
    await removeNamespaceStreams(bus);
    await bus?.close();
    fs?.cleanup();
  });

  const client = (id: string) => new CommandClient(bus, { sessions: { provider, self: world.identity(id), directory: world.directory }, rejections: silent(id) });
  const call = async (id: string, subject: Parameters<CommandClient['request']>[0], body: unknown, timeoutMs = 10_000) =>
    JSON.parse(decoder.decode(await client(id).request(subject, encoder.encode(JSON.stringify(body)), { timeoutMs }))) as Record<string, unknown>;
  const eventually = async (check: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(check()).toBe(true);
  };

  it('assess answers the score and tier, and refuses a bad assessment with its code', async () => {
    const r = await call(AGENT, Commands.sandbox.assess, { assessment: { ...LOW, code_trust_level: 0 } });
    expect(r['decision']).toMatchObject({ score: 0.3, level: 'medium', tier: 2 });
    await eventually(() => events.some((e) => e.eventType === 'sandbox.assessed'));
    expect(events.find((e) => e.eventType === 'sandbox.assessed')).toMatchObject({ agentId: AGENT, details: { assessment: { ...LOW, code_trust_level: 0 }, score: 0.3, level: 'medium', tier: 2 } });
    await expect(call(AGENT, Commands.sandbox.assess, { assessment: { ...LOW, data_sensitivity: Number.NaN } })).rejects.toMatchObject({ code: 'E_SANDBOX_ASSESSMENT' });
    await expect(call(AGENT, Commands.sandbox.assess, { assessment: LOW, tier: 'gvisor' })).rejects.toMatchObject({ code: 'E_SANDBOX_TIER' });
  });

  it('refuses a workload whose tier no driver here provides, without asking policy or recording a schedule', async () => {
    const asked = policyRequests.length;
    await expect(call(AGENT, Commands.sandbox.schedule, { assessment: { ...LOW, code_trust_level: 0 }, args: ['/bin/true'] })).rejects.toMatchObject({ code: 'E_SANDBOX_NO_DRIVER' });
    await expect(call(AGENT, Commands.sandbox.schedule, { assessment: LOW, tier: 2, args: ['/bin/true'] })).rejects.toMatchObject({ code: 'E_SANDBOX_NO_DRIVER' });
    expect(policyRequests.length).toBe(asked);
  });

  it('asks the policy service before scheduling, and a Deny runs nothing and is recorded', async () => {
    allow = false;
    try {
      await expect(call(AGENT, Commands.sandbox.schedule, { assessment: LOW, args: ['/bin/sh', '-c', 'echo must-not-run'] })).rejects.toMatchObject({ code: 'E_SANDBOX_DENIED' });
    } finally {
      allow = true;
    }
    expect(policyRequests.at(-1)).toMatchObject({ action: 'allocate', resource: 'sandbox', context: { agent: { id: AGENT }, sandbox: { tier: 1 } } });
    await eventually(() => events.some((e) => e.eventType === 'sandbox.scheduled' && e.details['outcome'] === 'denied'));
    const denied = events.find((e) => e.details['outcome'] === 'denied');
    expect(denied).toMatchObject({ agentId: AGENT, details: { reason: 'sandboxes are closed today', assessment: LOW, tier: 1 } });
  });

  it.skipIf(runcReason !== undefined)('schedules an allowed workload (through the SDK), returns its output and records scheduled and exited with the spec hash', async () => {
    const sdk = createBulwarkClient({ bus, sessions: { provider, self: world.identity(AGENT), directory: world.directory }, rejections: silent(AGENT) });
    const r = await sdk.sandbox.schedule({ assessment: LOW, args: ['/bin/sh', '-c', 'echo from-the-sandbox; exit 4'] });
    expect(r.run).toMatchObject({ stdout: 'from-the-sandbox\n', exitCode: 4, driver: 'runc', tier: 1 });
    expect(r.decision).toMatchObject({ level: 'low', tier: 1 });
    const id = r.run.sandboxId;
    await eventually(() => events.some((e) => e.eventType === 'sandbox.exited' && e.details['sandboxId'] === id));
    const exited = events.find((e) => e.eventType === 'sandbox.exited' && e.details['sandboxId'] === id);
    expect(exited?.details['specHash']).toMatch(/^[0-9a-f]{64}$/);
    expect(events.some((e) => e.eventType === 'sandbox.scheduled' && e.details['outcome'] === 'allowed' && e.agentId === AGENT)).toBe(true);
    expect(await call(AGENT, Commands.sandbox.logs, { sandboxId: id })).toEqual({ sandboxId: id, stdout: 'from-the-sandbox\n', stderr: '' });
    await expect(call(OTHER, Commands.sandbox.logs, { sandboxId: id })).rejects.toMatchObject({ code: 'E_SANDBOX_UNKNOWN' });
    expect(await call(AGENT, Commands.sandbox.status, { sandboxId: id })).toMatchObject({ state: 'exited', exitCode: 4 });
    // A benign workload: no limit hit, no escape sign.
    expect(events.filter((e) => e.details['sandboxId'] === id).map((e) => e.eventType)).not.toEqual(expect.arrayContaining(['sandbox.escape_suspected']));
    expect(events.some((e) => e.details['sandboxId'] === id && e.eventType === 'sandbox.limit_exceeded')).toBe(false);
  });

  it.skipIf(runcReason !== undefined)('records a limit hit as sandbox.limit_exceeded and each escape sign as sandbox.escape_suspected, for incident response', async () => {
    const r = await call(AGENT, Commands.sandbox.schedule, { assessment: LOW, args: ['/bin/sh', '-c', 'unshare -U true; hostname evil; (for i in $(seq 1 80); do sleep 1 & done) 2>/dev/null; wait; echo done'] }, 30_000);
    const run = r['run'] as { sandboxId: string; limitsExceeded: string[]; escapeSigns: unknown[] };
    expect(run.limitsExceeded).toContain('pids');
    const id = run.sandboxId;
    await eventually(() => events.filter((e) => e.details['sandboxId'] === id && e.eventType === 'sandbox.escape_suspected').length >= 3);
    expect(events.find((e) => e.eventType === 'sandbox.limit_exceeded' && e.details['sandboxId'] === id)).toMatchObject({ agentId: AGENT, details: { limit: 'pids', tier: 1 } });
    const signs = events.filter((e) => e.eventType === 'sandbox.escape_suspected' && e.details['sandboxId'] === id);
    expect(signs.map((e) => e.details)).toEqual(expect.arrayContaining([
      expect.objectContaining({ sign: 'denied_syscall', source: 'kernel_log', syscall: 'unshare', driver: 'runc', reason: 'unshare by unshare, killed by the seccomp profile (kernel_log)' }),
      expect.objectContaining({ sign: 'capability_use', source: 'kernel_log', syscall: 'sethostname' }),
      expect.objectContaining({ sign: 'processes_past_limit', source: 'cgroup' }),
    ]));
    expect(signs.every((e) => e.agentId === AGENT)).toBe(true);
  });

  it.skipIf(runcReason !== undefined)('incident response terminates an agent\'s sandboxes; another agent may not', async () => {
    const running = call(AGENT, Commands.sandbox.schedule, { assessment: LOW, args: ['/bin/sleep', '30'] }, 30_000);
    let ids: string[] = [];
    const end = Date.now() + 5000;
    while (ids.length === 0 && Date.now() < end) {
      const s = await call(IR, Commands.sandbox.status, {});
      ids = (s['running'] as { sandboxId: string }[]).map((x) => x.sandboxId);
      if (ids.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ids).toHaveLength(1);
    expect(hostProcessesOf(ids[0]!).length).toBeGreaterThan(0);
    await expect(call(OTHER, Commands.sandbox.terminate, { agentId: AGENT })).rejects.toMatchObject({ code: 'E_SANDBOX_FORBIDDEN' });
    await expect(call(OTHER, Commands.sandbox.terminate, { sandboxId: ids[0] })).rejects.toMatchObject({ code: 'E_SANDBOX_FORBIDDEN' });
    const started = Date.now();
    expect(await call(IR, Commands.sandbox.terminate, { agentId: AGENT })).toEqual({ killed: ids });
    const r = await running;
    expect(Date.now() - started).toBeLessThan(5000);
    expect((r['run'] as { exitCode: number }).exitCode).toBe(137);
    // Gone on the host, not only for the client: no process in its cgroup or naming it, no cgroup left.
    expect(hostProcessesOf(ids[0]!).filter((p) => p.state !== 'Z')).toEqual([]);
    expect(cgroupDirsOf('bulwark-test', ids[0]!)).toEqual([]);
    await eventually(() => events.some((e) => e.eventType === 'sandbox.killed' && e.details['sandboxId'] === ids[0] && e.details['by'] === IR));
  });

  it.skipIf(runcReason !== undefined)('runs a schedule retried with the same request id once: the retry gets the first run, however it is sent', async () => {
    const scheduledWith = (requestId: string) => events.filter((e) => e.eventType === 'sandbox.scheduled' && e.details['requestId'] === requestId);
    // The same request twice, on two sessions (a retry after a lost reply), the second while the first still runs.
    const requestId = 'retry-0123456789abcdef';
    const body = { requestId, assessment: LOW, args: ['/bin/sh', '-c', 'sleep 0.5; echo ran'] };
    const [first, second] = await Promise.all([call(AGENT, Commands.sandbox.schedule, body), new Promise((r) => setTimeout(r, 100)).then(() => call(AGENT, Commands.sandbox.schedule, body))]);
    const third = await call(AGENT, Commands.sandbox.schedule, body);
    const sandboxIdOf = (r: Record<string, unknown>) => (r['run'] as { sandboxId: string }).sandboxId;
    expect(sandboxIdOf(second)).toBe(sandboxIdOf(first));
    expect(sandboxIdOf(third)).toBe(sandboxIdOf(first));
    await eventually(() => events.some((e) => e.eventType === 'sandbox.exited' && e.details['sandboxId'] === sandboxIdOf(first)));
    await new Promise((r) => setTimeout(r, 300));
    expect(scheduledWith(requestId)).toHaveLength(1);
    expect(events.filter((e) => e.eventType === 'sandbox.exited' && e.details['sandboxId'] === sandboxIdOf(first))).toHaveLength(1);
    // The id does not buy another request's answer, nor another caller's: reused for other args it is refused; another agent's same id is its own.
    await expect(call(AGENT, Commands.sandbox.schedule, { ...body, args: ['/bin/true'] })).rejects.toMatchObject({ code: 'E_SANDBOX_REQUEST_REUSED' });
    const others = await call(OTHER, Commands.sandbox.schedule, body);
    expect(sandboxIdOf(others)).not.toBe(sandboxIdOf(first));
    await expect(call(AGENT, Commands.sandbox.schedule, { ...body, requestId: 'short' })).rejects.toMatchObject({ code: 'E_SANDBOX_REQUEST' });

    // Through the SDK: its first attempt times out while the workload runs (the reply lost, as at a
    // switch of NATS user); the SDK's one retry, with the same request id, gets that run's outcome.
    const sdk = createBulwarkClient({ bus, sessions: { provider, self: world.identity(AGENT), directory: world.directory }, rejections: silent(AGENT) });
    const before = events.filter((e) => e.eventType === 'sandbox.scheduled' && e.agentId === AGENT).length;
    const started = Date.now();
    const r = await sdk.sandbox.schedule({ assessment: LOW, args: ['/bin/sh', '-c', 'sleep 1.5; echo once'] }, { timeoutMs: 1000 });
    expect(r.run).toMatchObject({ stdout: 'once\n', exitCode: 0 });
    expect(Date.now() - started).toBeGreaterThan(1000);
    await eventually(() => events.some((e) => e.eventType === 'sandbox.exited' && e.details['sandboxId'] === r.run.sandboxId));
    await new Promise((r) => setTimeout(r, 300));
    const scheduled = events.filter((e) => e.eventType === 'sandbox.scheduled' && e.agentId === AGENT).slice(before);
    expect(scheduled).toHaveLength(1);
    expect(scheduled[0]!.details['requestId']).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  // Last: it halts the service's reader for good.
  it('refuses every command once its ledger reader halted (a control message the ledger did not seal)', async () => {
    expect(await call(AGENT, Commands.sandbox.assess, { assessment: LOW })).toHaveProperty('decision');
    const forged = createStreamPublisher(bus, new SealedSender({ provider, self: world.identity(POLICY), directory: world.directory, recipientId: SANDBOX }), 'ledger');
    await forged.publish({ subject: ledgerControlSubject(SANDBOX), msgId: `forged-${Date.now()}`, payload: encoder.encode('not a ledger batch') });
    const end = Date.now() + 5000;
    let refused: unknown;
    while (refused === undefined && Date.now() < end) {
      refused = await call(AGENT, Commands.sandbox.assess, { assessment: LOW }).then(() => undefined, (e: unknown) => e);
      if (refused === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(refused).toMatchObject({ code: 'E_SANDBOX_HALTED' });
  });
});
