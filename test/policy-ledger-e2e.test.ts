// End to end through the real audit-ledger runtime (PostgreSQL + NATS): a policy pushed by an
// administrator is committed by the ledger, re-published on BULWARK_LEDGER, applied by the
// policy service; decisions reach the ledger as batches; a new instance rebuilds from it.
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, ensureStreams, LEDGER_PRINCIPAL, removeNamespaceStreams, RejectionReporter, uniqueNamespace, type Bus } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { createCryptoProvider } from '@bulwark/crypto';
import type { LocalIdentity } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';

const provider = createCryptoProvider('node');
const world = testWorld({ provider });
const directory = world.directory;
const ledgerId = world.add(LEDGER_PRINCIPAL);
const policyId = world.add('svc.policy');
const adminId = world.add('analyst.admin');
const agentId = world.add('agent.a1');
world.add('svc.incident-response');
const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });
const SEED = 'policy secure_data_access {\n    allow: read(sensitive_data) if user.clearance >= "secret"\n}\n';

describe('policy service through the audit-ledger runtime', () => {
  const namespace = uniqueNamespace();
  const schema = withTestSchema('policy_e2e');
  const buses: Bus[] = [];
  const services: PolicyService[] = [];
  let ledger: LedgerService | undefined;
  const db = createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  const connect = async (name: string) => {
    const bus = await connectBus({ url: natsUrl(), name, namespace });
    buses.push(bus);
    return bus;
  };
  const startPolicy = async () => {
    const service = await startPolicyService({
      bus: await connect('policy'),
      provider,
      identity: policyId,
      directory,
      ledgerPublicKey: ledgerId.ed25519.publicKey,
      admins: [adminId.id],
      audit: { lingerMs: 5 },
    });
    services.push(service);
    return service;
  };
  const client = async (id: LocalIdentity) => createBulwarkClient({ bus: await connect(id.id), sessions: { provider, self: id, directory }, rejections: quiet(id.id), decisionTimeoutMs: 5000 });

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await ledger?.stop();
    if (buses[0] !== undefined) await removeNamespaceStreams(buses[0]);
    await Promise.all(buses.map((b) => b.close()));
    await closeDatabase(await db);
    await schema.drop();
  });

  it('commits the policy change, applies it, records decisions, and rebuilds a new instance from the ledger', async () => {
    const ledgerBus = await connect('ledger');
    await ensureStreams(ledgerBus);
    await migrateLedger(await db);
    ledger = await LedgerService.start({
      bus: ledgerBus,
      db: await db,
      crypto: provider,
      identity: ledgerId,
      directory,
      // The deployment's defaults: full batches sealed to incident response, control batches to the policy service.
      settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/audit', schema: schema.name, namespace, checkpointMs: 0 },
    });
    const first = await startPolicy();
    const admin = await client(adminId);
    const reply = await admin.policyAdmin.register(SEED, 'seed.policy');
    expect(reply).toMatchObject({ name: 'secure_data_access', version: 1, applied: true, setVersion: 'ledger-0' });

    const agent = await client(agentId);
    const decision = await agent.authorize.resourceAccess({ action: 'read', resource: 'sensitive_data', context: { user: { clearance: 'secret' } } });
    expect(decision).toMatchObject({ decision: 'Allow', policy: 'secure_data_access', version: 1, setVersion: 'ledger-0' });
    await expect.poll(async () => (await ledger!.ledger.head()).size, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);

    const second = await startPolicy();
    expect(second.current().version).toBe(first.current().version);
    expect(second.current().digest).toBe(first.current().digest);
  }, 60_000);
});
