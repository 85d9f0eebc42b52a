// NATS authority (DESIGN §3a, "The bus"): a private nats-server runs with exactly the
// configuration `bulwark init` writes; the audit ledger and the policy service run in this
// process under their own NATS users; then an enrolled (non-admin) agent, and separately a
// client without credentials, attack the bus. Every attack must be refused by NATS itself
// (a permission violation, or no connection at all), and the services must keep working.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { errors, headers as natsHeaders, jwtAuthenticator, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals, type Bus } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { isBulwarkError } from '@bulwark/errors';
import { loadIdentity } from '@bulwark/keystore';
import { busCredentialsFor, loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startPrivateBulwark, type PrivateBulwark } from './private-bulwark.js';

const ADMIN = 'analyst.admin';
const SEED = 'policy secure_data_access {\n    allow: read(sensitive_data) if user.clearance >= "secret"\n}\n';
type Violation = InstanceType<typeof errors.PermissionViolationError>;

/** A raw NATS connection (what an attacker holding the agent's credentials can do with any client), recording the server's permission violations. */
class Raw {
  readonly violations: Violation[] = [];
  private constructor(readonly nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof errors.PermissionViolationError) this.violations.push(s.error);
    })();
  }

  static async open(url: string, credentials: { jwt: string; seed: Uint8Array; inboxPrefix: string }): Promise<Raw> {
    return new Raw(await connect({ servers: url, authenticator: jwtAuthenticator(credentials.jwt, credentials.seed), inboxPrefix: credentials.inboxPrefix, maxReconnectAttempts: 0 }));
  }

  /** Runs the attempt; resolves to the violation the server answered it with (undefined when it was allowed). */
  async attempt(operation: 'publish' | 'subscription', subject: string, run: () => Promise<unknown> | unknown): Promise<Violation | undefined> {
    const before = this.violations.length;
    try {
      await run();
    } catch {
      // A refused request rejects or times out; what counts is the server's verdict below.
    }
    await this.nc.flush();
    await new Promise((r) => setTimeout(r, 20));
    return this.violations.slice(before).find((v) => v.operation === operation && v.subject === subject);
  }

  /** A JetStream API request: refused unless the server answers it. */
  request(subject: string, body: unknown = {}): Promise<Violation | undefined> {
    return this.attempt('publish', subject, () => this.nc.request(subject, JSON.stringify(body), { timeout: 1000 }));
  }

  publish(subject: string, msgId?: string): Promise<Violation | undefined> {
    const h = natsHeaders();
    if (msgId !== undefined) h.set('Nats-Msg-Id', msgId);
    return this.attempt('publish', subject, () => this.nc.publish(subject, 'forged', { headers: h }));
  }

  subscribe(subject: string, queue?: string): Promise<Violation | undefined> {
    let sub: Subscription | undefined;
    return this.attempt('subscription', subject, () => {
      sub = this.nc.subscribe(subject, queue === undefined ? {} : { queue });
    }).finally(() => sub?.unsubscribe());
  }
}

describe('NATS permissions under the configuration bulwark init writes', () => {
  let b: PrivateBulwark;
  let ns: string;
  let sp: string;
  let agentId: string;
  let agent: Raw;
  let agentInbox: string;
  let operator: Raw;
  const buses: Bus[] = [];
  const directories: KvDirectory[] = [];
  const policies: PolicyService[] = [];
  let ledger: LedgerService | undefined;
  const schema = withTestSchema('nats_authority');
  const db = createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });

  /** A bus connection as `principal`, with the credentials its key store holds. */
  const busAs = async (principal: string): Promise<Bus> => {
    const bus = await connectBus({ url: b.url, name: principal, namespace: b.namespace, maxReconnectAttempts: 0, ...(await busCredentialsFor(b.store, principal)) });
    buses.push(bus);
    return bus;
  };
  const directoryOn = async (bus: Bus): Promise<KvDirectory> => {
    const d = await KvDirectory.open(bus, { provider: b.provider, rootPublicKey: b.rootPublicKey });
    directories.push(d);
    return d;
  };
  const clientAs = async (principal: string) => {
    const bus = await busAs(principal);
    const identity = await loadIdentity(b.store, principal);
    return createBulwarkClient({
      bus,
      sessions: { provider: b.provider, self: { id: identity.id, x25519: identity.x25519 }, directory: await directoryOn(bus) },
      rejections: new RejectionReporter({ reporter: principal, publish: async () => undefined }),
      decisionTimeoutMs: 5000,
    });
  };

  beforeAll(async () => {
    b = await startPrivateBulwark();
    ns = b.namespace.subjectPrefix;
    sp = b.namespace.streamPrefix;
    agentId = await b.addAgent();
    const creds = await loadNatsCredentials(b.store, { kind: 'principal', id: agentId });
    agent = await Raw.open(b.url, creds!);
    agentInbox = creds!.inboxPrefix;
    operator = await Raw.open(b.url, (await loadNatsCredentials(b.store, OPERATOR_USER))!);
  }, 60_000);

  afterAll(async () => {
    await agent?.nc.close();
    await operator?.nc.close();
    await Promise.all(policies.map((p) => p.stop()));
    await ledger?.stop();
    await Promise.all(directories.map((d) => d.stop()));
    await Promise.all(buses.map((x) => x.close()));
    await closeDatabase(await db);
    await schema.drop();
    await b?.stop();
  });

  describe('the legitimate paths', () => {
    it('runs the ledger and the policy service under their own users: an admin pushes a policy, an agent evaluate gets a decision that reaches the ledger', async () => {
      const ledgerBus = await busAs(LEDGER_PRINCIPAL);
      await migrateLedger(await db);
      ledger = await LedgerService.start({
        bus: ledgerBus,
        db: await db,
        crypto: b.provider,
        identity: await loadIdentity(b.store, LEDGER_PRINCIPAL),
        directory: await directoryOn(ledgerBus),
        settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/audit', schema: schema.name, namespace: b.namespace, checkpointMs: 0 },
      });
      const policyBus = await busAs(ServicePrincipals.policy);
      const policyIdentity = await loadIdentity(b.store, ServicePrincipals.policy);
      policies.push(
        await startPolicyService({
          bus: policyBus,
          provider: b.provider,
          identity: { id: policyIdentity.id, x25519: policyIdentity.x25519 },
          directory: await directoryOn(policyBus),
          ledgerPublicKey: (await loadIdentity(b.store, LEDGER_PRINCIPAL)).ed25519.publicKey,
          admins: [ADMIN],
          audit: { lingerMs: 5 },
        }),
      );
      const admin = await clientAs(ADMIN);
      expect(await admin.policyAdmin.register(SEED, 'seed.policy')).toMatchObject({ name: 'secure_data_access', version: 1, applied: true });
      const client = await clientAs(agentId);
      const decision = await client.authorize.resourceAccess({ action: 'read', resource: 'sensitive_data', context: { user: { clearance: 'secret' } } });
      expect(decision).toMatchObject({ decision: 'Allow', policy: 'secure_data_access', version: 1 });
      // The decision event reached the ledger: registered + decision at least.
      await expect.poll(async () => (await ledger!.ledger.head()).size, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      // Nothing the services or the administrator did was refused.
      expect(b.log()).not.toMatch(/Violation/);
    }, 60_000);
  });

  describe('without credentials', () => {
    it('the server refuses the connection, and connectBus says E_BUS_AUTH naming the URL', async () => {
      await expect(connect({ servers: b.url, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization Violation/i);
      const error: unknown = await connectBus({ url: b.url, name: 'anonymous', maxReconnectAttempts: 0 }).catch((e: unknown) => e);
      expect(isBulwarkError(error) && error.code).toBe('E_BUS_AUTH');
      expect((error as Error).message).toContain(b.url);
    });

    it('a user JWT not signed by the account is refused (E_BUS_AUTH naming the principal)', async () => {
      const { encodeUser } = await import('@nats-io/jwt');
      const { createAccount, createUser } = await import('@nats-io/nkeys');
      const user = createUser();
      const jwt = await encodeUser(agentId, user, createAccount(), { pub: { allow: ['>'] }, sub: { allow: ['>'] } });
      const error: unknown = await connectBus({ url: b.url, name: 'forger', maxReconnectAttempts: 0, credentials: { jwt, seed: user.getSeed() } }).catch((e: unknown) => e);
      expect(isBulwarkError(error) && error.code).toBe('E_BUS_AUTH');
      expect((error as Error).message).toContain(`as ${agentId}`);
    });
  });

  describe('an enrolled analyst who is not an administrator', () => {
    it('cannot administer policies, write the directory or read the audit trail, but may call the incident commands', async () => {
      const enrolled = await b.bulwark(['principal', 'add', 'analyst.j_doe', '--namespace', b.namespaceName, '--nats', b.url]);
      expect(enrolled.code, enrolled.stdout).toBe(0);
      const analyst = await Raw.open(b.url, (await loadNatsCredentials(b.store, { kind: 'principal', id: 'analyst.j_doe' }))!);
      try {
        expect(await analyst.publish(`${ns}bulwark.policy.admin.register`)).toBeDefined();
        expect(await analyst.publish(`${ns}bulwark.direct.x.policy.admin.rollback`)).toBeDefined();
        expect(await analyst.publish(`${ns}bulwark.audit.query`)).toBeDefined();
        expect(await analyst.publish(`$KV.${sp}BULWARK_DIRECTORY.analyst.j_doe`)).toBeDefined();
        expect(await analyst.subscribe(`${ns}bulwark.incident.ack`, 'bulwark-incident')).toBeDefined();
        expect(await analyst.publish(`${ns}bulwark.incident.ack`)).toBeUndefined();
      } finally {
        await analyst.nc.close();
      }
    });
  });

  describe('an enrolled agent', () => {
    it('cannot delete, purge or update a stream, delete a message or create a stream', async () => {
      for (const stream of [`${sp}BULWARK_EVENTS`, `${sp}BULWARK_LEDGER`, `${sp}BULWARK_INCIDENTS`, `KV_${sp}BULWARK_DIRECTORY`]) {
        for (const verb of ['DELETE', 'PURGE', 'UPDATE']) expect(await agent.request(`$JS.API.STREAM.${verb}.${stream}`, { name: stream }), `${verb} ${stream}`).toBeDefined();
        expect(await agent.request(`$JS.API.STREAM.MSG.DELETE.${stream}`, { seq: 1 })).toBeDefined();
      }
      expect(await agent.request(`$JS.API.STREAM.CREATE.${sp}EVIL`, { name: `${sp}EVIL`, subjects: [`${ns}bulwark.policy.evaluate`] })).toBeDefined();
      // The operator sees every stream intact.
      const names = JSON.parse(new TextDecoder().decode((await operator.nc.request('$JS.API.STREAM.NAMES', '{}')).data)) as { streams: string[] };
      expect(names.streams).toEqual(expect.arrayContaining([`${sp}BULWARK_EVENTS`, `${sp}BULWARK_LEDGER`, `${sp}BULWARK_INCIDENTS`, `KV_${sp}BULWARK_DIRECTORY`]));
      expect(names.streams).not.toContain(`${sp}EVIL`);
    });

    it("cannot delete, update, pull from or ack the ledger's durable, nor read the event stream through one of its own", async () => {
      const events = `${sp}BULWARK_EVENTS`;
      expect(await agent.request(`$JS.API.CONSUMER.DELETE.${events}.audit-ledger`)).toBeDefined();
      expect(await agent.request(`$JS.API.CONSUMER.CREATE.${events}.audit-ledger.${ns}bulwark.evt.>`, { stream_name: events, config: { durable_name: 'audit-ledger' } })).toBeDefined();
      expect(await agent.request(`$JS.API.CONSUMER.DURABLE.CREATE.${events}.audit-ledger`, { stream_name: events, config: { durable_name: 'audit-ledger' } })).toBeDefined();
      expect(await agent.request(`$JS.API.CONSUMER.MSG.NEXT.${events}.audit-ledger`, { batch: 1 })).toBeDefined();
      expect(await agent.request(`$JS.API.CONSUMER.INFO.${events}.audit-ledger`)).toBeDefined();
      expect(await agent.publish(`$JS.ACK.${events}.audit-ledger.1.1.1.1.0`)).toBeDefined();
      expect(await agent.request(`$JS.API.CONSUMER.CREATE.${events}.evil.${ns}bulwark.evt.>`, { stream_name: events, config: { name: 'evil' } })).toBeDefined();
      expect(await agent.request(`$JS.API.CONSUMER.CREATE.${sp}BULWARK_LEDGER.evil.${ns}bulwark.ledger.control.svc.policy`, { stream_name: `${sp}BULWARK_LEDGER`, config: { name: 'evil' } })).toBeDefined();
    });

    it('cannot write the directory bucket', async () => {
      expect(await agent.publish(`$KV.${sp}BULWARK_DIRECTORY.svc.policy`)).toBeDefined();
      expect(await agent.publish(`$KV.${sp}BULWARK_DIRECTORY.${agentId}`)).toBeDefined();
    });

    it("cannot publish under bulwark.ledger.> (nor pre-empt the ledger's Nats-Msg-Ids), nor as another producer", async () => {
      expect(await agent.publish(`${ns}bulwark.ledger.batch`, '1-1')).toBeDefined();
      expect(await agent.publish(`${ns}bulwark.ledger.control.svc.policy`, 'control:svc.policy:3-3')).toBeDefined();
      expect(await agent.publish(`${ns}bulwark.evt.policy.decision`, randomBytes(8).toString('hex'))).toBeDefined();
      expect(await agent.publish(`${ns}bulwark.evt.agent.00000000-0000-4000-8000-000000000000.started`)).toBeDefined();
    });

    it("cannot join a service's queue group or listen on its command and direct subjects", async () => {
      expect(await agent.subscribe(`${ns}bulwark.policy.evaluate`, 'bulwark-policy')).toBeDefined();
      expect(await agent.subscribe(`${ns}bulwark.audit.query`, 'bulwark-audit')).toBeDefined();
      expect(await agent.subscribe(`${ns}bulwark.policy.admin.register`)).toBeDefined();
      expect(await agent.subscribe(`${ns}bulwark.direct.*.>`)).toBeDefined();
      expect(await agent.subscribe(`${ns}bulwark.evt.>`)).toBeDefined();
    });

    it("cannot subscribe to another principal's inbox", async () => {
      expect(await agent.subscribe('_INBOX.svc_policy.>')).toBeDefined();
      expect(await agent.subscribe('_INBOX.analyst_admin.>')).toBeDefined();
      expect(await agent.subscribe('_INBOX.>')).toBeDefined();
      expect(await agent.subscribe('>')).toBeDefined();
    });

    it('cannot use $SRV: neither ask for discovery nor answer it', async () => {
      expect(await agent.publish('$SRV.PING')).toBeDefined();
      expect(await agent.request('$SRV.STATS.bulwark-policy')).toBeDefined();
      expect(await agent.subscribe('$SRV.>')).toBeDefined();
      expect(await agent.subscribe('$SRV.PING.bulwark-policy', 'q')).toBeDefined();
    });

    it('still reaches what agents may: its own inbox, the evaluate command, its own lifecycle events', async () => {
      expect(await agent.subscribe(`${agentInbox}.x`)).toBeUndefined();
      expect(await agent.publish(`${ns}bulwark.policy.evaluate`)).toBeUndefined();
      expect(await agent.publish(`${ns}bulwark.evt.agent.${agentId.slice('agent.'.length)}.started`)).toBeUndefined();
      // And the services are still answering after every attack.
      const client = await clientAs(agentId);
      expect(await client.authorize.resourceAccess({ action: 'read', resource: 'sensitive_data', context: { user: { clearance: 'confidential' } } })).toMatchObject({ decision: 'Deny' });
      // Every violation the server logged was an attacker's (the services and the administrator had none).
      const violations = b.log().split('\n').filter((line) => line.includes('Violation'));
      expect(violations.length).toBeGreaterThan(20);
      const attackers = await Promise.all([agentId, 'analyst.j_doe'].map(async (id) => (await loadNatsCredentials(b.store, { kind: 'principal', id }))!.publicKey));
      expect(violations.filter((line) => !attackers.some((key) => line.includes(key)))).toEqual([]);
    });
  });
});
