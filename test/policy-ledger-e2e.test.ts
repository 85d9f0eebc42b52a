// End to end through the real audit-ledger runtime (PostgreSQL + NATS): a policy pushed by an
// administrator is committed by the ledger, re-published on BULWARK_LEDGER, applied by the
// policy service; decisions reach the ledger as batches; a new instance rebuilds from it.
// Under the configuration `bulwark init` writes (DESIGN §3a): a private nats-server, each
// connection with its principal's own NATS user, identities from init's key store, the
// directory from KV.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import type { Directory } from '@bulwark/envelope';
import type { Identity } from '@bulwark/keystore';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const quiet = (id: string) => new RejectionReporter({ reporter: id, publish: async () => undefined });
const SEED = 'policy secure_data_access {\n    allow: read(sensitive_data) if user.clearance >= "secret"\n}\n';

describe('policy service through the audit-ledger runtime', () => {
  let b: PrivateBulwark;
  let directory: Directory;
  let ledgerId: Identity;
  let policyId: Identity;
  let adminId: Identity;
  let agentId: Identity;
  const schema = withTestSchema('policy_e2e');
  const services: PolicyService[] = [];
  let ledger: LedgerService | undefined;
  const db = createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
  const startPolicy = async () => {
    const service = await startPolicyService({
      bus: await b.connect(policyId.id, 'policy'),
      provider: b.provider,
      identity: policyId,
      directory,
      ledgerPublicKey: ledgerId.ed25519.publicKey,
      admins: [adminId.id],
      audit: { lingerMs: 5 },
    });
    services.push(service);
    return service;
  };
  const client = async (id: Identity) => createBulwarkClient({ bus: await b.connect(id.id), sessions: { provider: b.provider, self: id, directory }, rejections: quiet(id.id), decisionTimeoutMs: 5000 });

  beforeAll(async () => {
    b = await startPrivateBulwark();
    directory = await b.directory();
    ledgerId = await b.identity(LEDGER_PRINCIPAL);
    policyId = await b.identity(ServicePrincipals.policy);
    adminId = await b.identity('analyst.admin');
    agentId = await b.identity(await b.addAgent());
  }, 60_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await ledger?.stop();
    await closeDatabase(await db);
    await schema.drop();
    await b?.stop();
  });

  it('commits the policy change, applies it, records decisions, and rebuilds a new instance from the ledger', async () => {
    // The streams are init's (as the operator): the ledger's user may only read their info.
    const ledgerBus = await b.connect(LEDGER_PRINCIPAL, 'ledger');
    await migrateLedger(await db);
    ledger = await LedgerService.start({
      bus: ledgerBus,
      db: await db,
      crypto: b.provider,
      identity: ledgerId,
      directory,
      // The deployment's defaults: full batches sealed to incident response, control batches to the policy service.
      settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/audit', schema: schema.name, namespace: b.namespace, checkpointMs: 0 },
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
    // Nothing the services, the administrator or the agent did was refused by the server.
    expect(b.log()).not.toMatch(/Violation/);
  }, 60_000);
});
