// Every service containment involves, in process, on the real NATS and PostgreSQL (one namespace,
// one schema): the ledger, the policy service (a vault policy: reads allowed, writes denied), the
// key manager (agents enrolled through it with keys of their own; the directory in the KV bucket,
// as every service reads it), the sandbox scheduler (runc Tier 1, busybox-static rootfs) and,
// unless the test runs it as a child process, the incident response service. Used by
// test/incident-containment.latency.test.ts and test/incident-crash.test.ts.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, ensureStreams, KvDirectory, LEDGER_PRINCIPAL, publishDirectoryEntry, RejectionReporter, removeDirectoryBucket, removeNamespaceStreams, ServicePrincipals, uniqueNamespace, type Bus } from '@bulwark/bus';
import { createBulwarkClient, enrollWithJoinBundle, parseJoinBundle, type BulwarkClient } from '@bulwark/client';
import { DEFAULT_RULES_FILE, loadRules, startIncidentService, type IncidentService } from '@bulwark/incident-response';
import { startKeyManager, type KeyManager } from '@bulwark/key-manager';
import { FileKeyStore, generateKey, SoftwareKek } from '@bulwark/keystore';
import { nkeyPair } from '@bulwark/nats-auth';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { createRuncDriver, Scheduler, startSandboxService, type SandboxService } from '@bulwark/sandbox-scheduler';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';
import { makeTestRootfs, skipReason } from '../services/sandbox-scheduler/src/drivers/testing.js';
import { provider, sharedWorld, type SharedWorld } from './attack-children.js';
import type { ChildConfig } from './attack-child.js';

export const ADMIN = 'analyst.admin';
export const READ = { action: 'read', resource: 'vault' };
export const WRITE = { action: 'write', resource: 'vault' };
/** The High plan's actions (services/incident-response workflow.ts PLAN.high). */
export const ACTIONS = ['policy.contain', 'evidence.preserve', 'sandbox.terminate', 'keys.revoke'] as const;
const POLICY = 'policy vault {\n    allow: read(vault)\n    deny: write(vault)\n}\n';
const LOW = { data_sensitivity: 0, code_trust_level: 1, network_access: false, filesystem_access: false, external_apis: false };
const IDS = [LEDGER_PRINCIPAL, ServicePrincipals.policy, ServicePrincipals.keys, ServicePrincipals.sandbox, ServicePrincipals.incident, ADMIN];
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Why these tests cannot run here (runc, root, busybox-static), or undefined. */
export const containmentSkip = skipReason('runc');

export interface LedgerRow {
  readonly seq: number;
  readonly at: number;
  readonly producer: string;
  readonly details: Record<string, unknown>;
}

export interface Agent {
  readonly id: string;
  readonly client: BulwarkClient;
}

export interface Workload {
  /** Resolves when the run ends (terminated: exit 137), with the moment the test saw it. */
  readonly exited: Promise<{ at: number; exitCode: number | null }>;
}

export interface ContainmentWorld {
  readonly world: SharedWorld;
  readonly db: Kysely<LedgerDatabase>;
  /** A directory reader as every service has one: a revoked agent's entry is refused here. */
  readonly directory: KvDirectory;
  readonly scheduler: Scheduler;
  /** Invited by the administrator and enrolled with keys of its own, as an agent joins. */
  enrollAgent(): Promise<Agent>;
  /** A shell and a sleep of the agent's under runc; resolves once it printed that it is up. */
  startWorkload(agentId: string): Promise<Workload>;
  /** The ledger's events of a type about an agent, in order. */
  rows(eventType: string, agentId: string): Promise<LedgerRow[]>;
  /** The incident response service in this process. */
  startIncidents(): Promise<IncidentService>;
  /** What test/attack-child.ts's incident-response role needs to run svc.incident-response in this world. */
  incidentChildConfig(): ChildConfig;
  close(): Promise<void>;
}

export async function startContainmentWorld(name: string): Promise<ContainmentWorld> {
  const world = sharedWorld(IDS);
  const ns = uniqueNamespace(name);
  const dbSchema = withTestSchema(name);
  const buses: Bus[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  const connectTo = async (who: string) => {
    const bus = await connectBus({ url: natsUrl(), name: who, namespace: ns });
    buses.push(bus);
    return bus;
  };
  const kvDirectory = async (who: string) => {
    const d = await KvDirectory.open(await connectTo(`${who}-directory`), { provider, rootPublicKey: world.root.publicKey });
    stops.unshift(() => d.stop());
    return d;
  };
  const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: dbSchema.name });
  const setup = await connectTo('setup');
  const keyDir = mkdtempSync(join(tmpdir(), `${name}-keys-`));
  const fs = makeTestRootfs();
  const close = async () => {
    for (const s of stops) await s().catch(() => undefined);
    await removeNamespaceStreams(setup);
    await removeDirectoryBucket(setup).catch(() => undefined);
    await Promise.all(buses.map((b) => b.close()));
    await closeDatabase(db);
    await dbSchema.drop();
    fs.cleanup();
    rmSync(keyDir, { recursive: true, force: true });
  };
  try {
    await ensureStreams(setup);
    for (const id of IDS) await publishDirectoryEntry(setup, world.identity(id).signed);
    await migrateLedger(db);
    const directory = await kvDirectory('test');
    const ledgerId = world.identity(LEDGER_PRINCIPAL);
    const ledger = await LedgerService.start({
      bus: await connectTo('ledger'),
      db,
      crypto: provider,
      identity: ledgerId,
      directory: await kvDirectory('ledger'),
      // The key manager and the sandbox scheduler read their control batches too (the deployment `bulwark up` runs).
      settings: { ...DEFAULT_SETTINGS, origin: `bulwark.test/${name}`, schema: dbSchema.name, namespace: ns, checkpointMs: 0, controlTo: [ServicePrincipals.policy, ServicePrincipals.keys, ServicePrincipals.sandbox] },
    });
    stops.unshift(() => ledger.stop());
    const policy: PolicyService = await startPolicyService({ bus: await connectTo('policy'), provider, identity: world.identity(ServicePrincipals.policy), directory: await kvDirectory('policy'), ledgerPublicKey: ledgerId.ed25519.publicKey, admins: [ADMIN, ServicePrincipals.incident], audit: { lingerMs: 5 } });
    stops.unshift(() => policy.stop());
    const store = await FileKeyStore.open({ dir: keyDir, wrapper: new SoftwareKek(provider, provider.randomBytes(32), 'test'), provider });
    // Custody: the key manager's store holds the root the world's entries are signed with.
    await store.put({ principal: 'root', kind: 'ed25519', version: 1 }, world.root.secretKey);
    const keys: KeyManager = await startKeyManager({ bus: await connectTo('key-manager'), provider, identity: { ...world.identity(ServicePrincipals.keys), version: 1 }, directory: await kvDirectory('key-manager'), store, ledgerPublicKey: ledgerId.ed25519.publicKey, admins: [ADMIN] });
    stops.unshift(() => keys.stop());
    const scheduler = new Scheduler({ drivers: { 1: createRuncDriver({ stateRoot: join(fs.dir, 'state'), bundleRoot: join(fs.dir, 'bundles') }) }, rootfs: fs.rootfs, floor: 1, cgroupParent: 'bulwark-test' });
    stops.unshift(() => scheduler.terminateAll());
    const sandboxes: SandboxService = await startSandboxService({ bus: await connectTo('sandbox'), provider, identity: world.identity(ServicePrincipals.sandbox), directory: await kvDirectory('sandbox'), ledgerPublicKey: ledgerId.ed25519.publicKey, scheduler });
    stops.unshift(() => sandboxes.stop());
    const admin = createBulwarkClient({ bus: await connectTo('admin'), sessions: { provider, self: world.identity(ADMIN), directory }, rejections: quiet(ADMIN), adminTimeoutMs: 10_000 });
    await admin.policyAdmin.register(POLICY, 'vault.policy');
    const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
    return {
      world,
      db,
      directory,
      scheduler,
      async enrollAgent() {
        const id = `agent.${randomUUID()}`;
        const bundle = parseJoinBundle((await admin.keys.invite(id, { ttlMs: 60_000 })).join);
        const bus = await connectTo(id);
        const natsUser = nkeyPair('nats-user', generateKey(provider, 'nats-user'));
        const { identity } = await enrollWithJoinBundle({ bus, provider, directory, bundle, natsUser: natsUser.getPublicKey() });
        natsUser.clear();
        return { id, client: createBulwarkClient({ bus, sessions: { provider, self: identity, directory }, rejections: quiet(id), decisionTimeoutMs: 2000 }) };
      },
      async startWorkload(agentId) {
        let up!: () => void;
        const ready = new Promise<void>((r) => (up = r));
        const exited = scheduler
          .schedule({ assessment: LOW, tier: 1, args: ['/bin/sh', '-c', 'echo up; sleep 300'], onOutput: (_s, c) => c.toString().includes('up') && up() }, agentId)
          .then((s) => ({ at: Date.now(), exitCode: s.run.exitCode }));
        await Promise.race([ready, exited.then(() => Promise.reject(new Error(`the workload of ${agentId} ended before it was terminated`)))]);
        return { exited };
      },
      async rows(eventType, agentId) {
        const found = await db.selectFrom('events').selectAll().where('event_type', '=', eventType).where('agent_id', '=', agentId).orderBy('seq').execute();
        return found.map((r) => ({ seq: Number(r.seq), at: Number(r.timestamp_ms), producer: r.producer, details: JSON.parse(r.details) as Record<string, unknown> }));
      },
      async startIncidents() {
        const service = await startIncidentService({ bus: await connectTo('incident'), provider, identity: world.identity(ServicePrincipals.incident), directory: await kvDirectory('incident'), ledgerPublicKey: ledgerId.ed25519.publicKey, rules, analysts: [ADMIN] });
        stops.unshift(() => service.stop());
        return service;
      },
      incidentChildConfig: () => ({ natsUrl: natsUrl(), namespace: ns, ...world.childKeys(ServicePrincipals.incident), ledgerPublicKey: hex(ledgerId.ed25519.publicKey), analysts: [ADMIN] }),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

export const quantile = (sorted: readonly number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

export async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
