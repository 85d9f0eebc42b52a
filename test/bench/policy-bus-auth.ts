// `npm run bench -- policy-bus-auth [--n N] [--rounds R] [--warmup W]`: policy decisions over a bus
// that runs with the authority of DESIGN §3a, and raw NATS on the same authenticated server.
// One JSON line per figure on stdout; notes go to stderr.
//
// A private deployment as an operator makes it: `bulwark init` in a temporary home, nats-server
// (from PATH) with exactly the operator-mode configuration init wrote, init again to create the
// streams and publish the directory. In this process, each under its own NATS user:
// - the audit ledger (it answers the policy service's boot query, then is stopped so that its
//   work does not share the measured event loop; the ledger runs in its own process in production);
// - the policy service, `permissive` enforcement: with the ledger stopped, strict mode would turn
//   every decision into a Deny after `max_ledger_lag_ms`, and the figure is the bus path; decision
//   events are still built and published to BULWARK_EVENTS;
// - an enrolled agent (its own user and inbox prefix) calling client.policy.evaluate().
// `raw:nats` is nc.request() of the same request bytes, from a connection with the agent's
// credentials to a connection with the policy service's credentials that answers with the same
// reply bytes, on a direct subject the permissions grant both: the floor, authenticated alike.
// Rounds interleave the two; the load average is printed to stderr.
import { loadavg } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { jwtAuthenticator } from '@nats-io/nats-core';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals, type Bus } from '@bulwark/bus';
import { createBulwarkClient } from '@bulwark/client';
import { createCryptoProvider } from '@bulwark/crypto';
import { loadIdentity } from '@bulwark/keystore';
import { busCredentialsFor, loadNatsCredentials } from '@bulwark/nats-auth';
import { startPolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startPrivateBulwark } from '../attack/private-bulwark.js';
import { emit, N, percentile, REQUEST, ROUNDS, SEED, time, WARMUP } from './lib/decision-rounds.js';

const ADMIN = 'analyst.admin';

const b = await startPrivateBulwark();
// The default provider (as the services' mains choose it), not the harness's node:crypto one.
const provider = createCryptoProvider();
const schema = withTestSchema('bench_policy_auth');
const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
const buses: Bus[] = [];
const directories: KvDirectory[] = [];
const busAs = async (principal: string): Promise<Bus> => {
  const bus = await connectBus({ url: b.url, name: principal, namespace: b.namespace, maxReconnectAttempts: 0, ...(await busCredentialsFor(b.store, principal)) });
  buses.push(bus);
  return bus;
};
const directoryOn = async (bus: Bus): Promise<KvDirectory> => {
  const d = await KvDirectory.open(bus, { provider, rootPublicKey: b.rootPublicKey });
  directories.push(d);
  return d;
};
const clientAs = async (principal: string) => {
  const bus = await busAs(principal);
  const identity = await loadIdentity(b.store, principal);
  return createBulwarkClient({
    bus,
    sessions: { provider, self: { id: identity.id, x25519: identity.x25519 }, directory: await directoryOn(bus) },
    rejections: new RejectionReporter({ reporter: principal, publish: async () => undefined }),
  });
};

try {
  await migrateLedger(db);
  const ledgerBus = await busAs(LEDGER_PRINCIPAL);
  const ledger = await LedgerService.start({
    bus: ledgerBus,
    db,
    crypto: provider,
    identity: await loadIdentity(b.store, LEDGER_PRINCIPAL),
    directory: await directoryOn(ledgerBus),
    settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.bench/audit', schema: schema.name, namespace: b.namespace, checkpointMs: 0 },
  });
  const policyBus = await busAs(ServicePrincipals.policy);
  const policyIdentity = await loadIdentity(b.store, ServicePrincipals.policy);
  const policy = await startPolicyService({
    bus: policyBus,
    provider,
    identity: { id: policyIdentity.id, x25519: policyIdentity.x25519 },
    directory: await directoryOn(policyBus),
    ledgerPublicKey: (await loadIdentity(b.store, LEDGER_PRINCIPAL)).ed25519.publicKey,
    admins: [ADMIN],
    audit: { mode: 'permissive' },
  });
  const admin = await clientAs(ADMIN);
  await admin.policyAdmin.register(SEED, 'seed.policy');
  await ledger.stop();

  const agentId = await b.addAgent();
  const client = await clientAs(agentId);
  const first = await client.policy.evaluate(REQUEST);
  if (first.decision !== 'AllowWithConditions') throw new Error(`bench: unexpected decision ${JSON.stringify(first)}`);
  const requestBytes = new TextEncoder().encode(JSON.stringify(REQUEST));
  const replyBytes = new TextEncoder().encode(JSON.stringify(first));

  const agentCreds = (await loadNatsCredentials(b.store, { kind: 'principal', id: agentId }))!;
  const serviceCreds = (await loadNatsCredentials(b.store, { kind: 'principal', id: ServicePrincipals.policy }))!;
  const nc = await connect({ servers: b.url, authenticator: jwtAuthenticator(agentCreds.jwt, agentCreds.seed), inboxPrefix: agentCreds.inboxPrefix });
  const rawServer = await connect({ servers: b.url, authenticator: jwtAuthenticator(serviceCreds.jwt, serviceCreds.seed), inboxPrefix: serviceCreds.inboxPrefix });
  const rawSubject = `${b.namespace.subjectPrefix}bulwark.direct.rawbench.policy.evaluate`;
  const sub = rawServer.subscribe(rawSubject, { callback: (_e, m) => void m.respond(replyBytes) });
  await rawServer.flush();
  await nc.request(rawSubject, requestBytes, { timeout: 5000 }); // refused by the permissions if either side may not
  console.error(
    `bench policy-bus-auth: operator-mode nats-server at ${b.url}; request ${requestBytes.length} B, decision ${replyBytes.length} B, ${ROUNDS} rounds x ${N} calls per impl; ${provider.name} crypto provider`,
  );

  const calls = {
    bulwark: () => client.policy.evaluate(REQUEST),
    'raw:nats': () => nc.request(rawSubject, requestBytes, { timeout: 5000 }),
  } as const;
  const samples: Record<keyof typeof calls, number[]> = { bulwark: [], 'raw:nats': [] };
  for (const call of Object.values(calls)) await time([], WARMUP, call);
  const loadBefore = loadavg();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [impl, call] of Object.entries(calls) as [keyof typeof calls, () => Promise<unknown>][]) await time(samples[impl], N, call);
  }
  const loadAfter = loadavg();
  for (const [impl, xs] of Object.entries(samples)) {
    emit('policy-bus-auth', 'bus.decision.p50', impl, percentile(xs, 0.5), xs.length);
    emit('policy-bus-auth', 'bus.decision.p99', impl, percentile(xs, 0.99), xs.length);
  }
  console.error(`bench policy-bus-auth: load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  sub.unsubscribe();
  await nc.close();
  await rawServer.close();
  await policy.stop();
} finally {
  await Promise.all(directories.map((d) => d.stop().catch(() => undefined)));
  await Promise.all(buses.map((x) => x.close().catch(() => undefined)));
  await closeDatabase(db);
  await schema.drop();
  await b.stop();
}
