// The in-process world of the incident scenarios (test/incident-response-e2e.test.ts,
// test/incident-recovery.test.ts): a test world's identities, the real ledger and policy services
// on the real NATS (a namespace of their own) and PostgreSQL (a schema of their own), the vault
// policy registered by the administrator, and the incident service started (and restarted) on
// demand. `stop()` removes what it made.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { DEFAULT_SETTINGS, LedgerService, migrateLedger, type LedgerDatabase } from '@bulwark/audit-ledger';
import { connectBus, ensureStreams, LEDGER_PRINCIPAL, RejectionReporter, removeNamespaceStreams, uniqueNamespace, type Bus } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { createCryptoProvider } from '@bulwark/crypto';
import type { LocalIdentity } from '@bulwark/envelope';
import { testWorld } from '@bulwark/envelope/testing';
import { DEFAULT_RULES_FILE, loadRules, startIncidentService, type IncidentService } from '@bulwark/incident-response';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase, type Kysely, type Selectable } from '@bulwark/store';
import { databaseUrl, natsUrl, withTestSchema } from '@bulwark/testkit';

export const provider = createCryptoProvider('node');
export const POLICY = 'policy vault {\n    allow: read(vault)\n    deny: write(vault)\n}\n';
export const READ = { action: 'read', resource: 'vault' };
export const WRITE = { action: 'write', resource: 'vault' };
export const quiet = (id: string): RejectionReporter => new RejectionReporter({ reporter: id, publish: async () => undefined });

const rules = loadRules([{ file: DEFAULT_RULES_FILE, text: readFileSync(DEFAULT_RULES_FILE, 'utf8') }]);
const findingSchema = JSON.parse(readFileSync(new URL('../services/incident-response/schemas/ocsf-1.8.0-detection-finding.schema.json', import.meta.url), 'utf8')) as object;
// ajv 8 is the incident-response package's dev dependency (the root has ajv 6 through eslint).
const { Ajv } = createRequire(new URL('../services/incident-response/package.json', import.meta.url))('ajv') as { Ajv: new (options: object) => { compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown } } };
/** Validates an OCSF body against the repo's Detection Finding 1.8.0 schema (errors on `.errors`). */
export const validateFinding = new Ajv({ strict: false, allErrors: true }).compile(findingSchema);

export async function eventually(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A ledger row with its details parsed. */
export type EventRow = Omit<Selectable<LedgerDatabase['events']>, 'details'> & { readonly details: Record<string, unknown> };

export interface IncidentWorld {
  readonly directory: ReturnType<typeof testWorld>['directory'];
  readonly ids: { readonly ledger: LocalIdentity; readonly policy: LocalIdentity; readonly incident: LocalIdentity; readonly admin: LocalIdentity; readonly ann: LocalIdentity; readonly eve: LocalIdentity };
  /** The agents asked for, in order. */
  readonly agents: readonly LocalIdentity[];
  readonly db: Kysely<LedgerDatabase>;
  readonly ledger: LedgerService;
  readonly policy: PolicyService;
  readonly admin: BulwarkClient;
  /** A connection in the world's namespace, closed by `stop()`. */
  connectTo(name: string): Promise<Bus>;
  /** Starts the incident service (enrolled analyst: ann), as often as a test restarts it; `stop()` stops the last one. */
  startIncidents(options: { readonly maxAttempts: number }): Promise<IncidentService>;
  /** The ledger's events of exactly this type, or (`prefix: true`) whose type starts with it, details parsed. */
  eventsOf(type: string, options?: { readonly prefix?: boolean }): Promise<EventRow[]>;
  stop(): Promise<void>;
}

export async function startIncidentWorld(options: { readonly name: string; readonly agents: readonly string[] }): Promise<IncidentWorld> {
  const world = testWorld({ provider });
  const directory = world.directory;
  const ids = {
    ledger: world.add(LEDGER_PRINCIPAL),
    policy: world.add('svc.policy'),
    incident: world.add('svc.incident-response'),
    admin: world.add('analyst.admin'),
    ann: world.add('analyst.ann'),
    // In the directory, not an enrolled analyst.
    eve: world.add('analyst.eve'),
  };
  const agents = options.agents.map((id) => world.add(id));
  const ns = uniqueNamespace(options.name.slice(0, 3));
  const dbSchema = withTestSchema(`incident_${options.name}`);
  const buses: Bus[] = [];
  const connectTo = async (name: string): Promise<Bus> => {
    const bus = await connectBus({ url: natsUrl(), name, namespace: ns });
    buses.push(bus);
    return bus;
  };
  const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: dbSchema.name });
  await ensureStreams(await connectTo('setup'));
  await migrateLedger(db);
  const ledger = await LedgerService.start({ bus: await connectTo('ledger'), db, crypto: provider, identity: ids.ledger, directory, settings: { ...DEFAULT_SETTINGS, origin: 'bulwark.test/audit', schema: dbSchema.name, namespace: ns, checkpointMs: 0 } });
  const policy = await startPolicyService({ bus: await connectTo('policy'), provider, identity: ids.policy, directory, ledgerPublicKey: ids.ledger.ed25519.publicKey, admins: [ids.admin.id, ids.incident.id], audit: { lingerMs: 5 } });
  const admin = createBulwarkClient({ bus: await connectTo('admin'), sessions: { provider, self: ids.admin, directory }, rejections: quiet(ids.admin.id) });
  await admin.policyAdmin.register(POLICY, 'vault.policy');
  let incidents: IncidentService | undefined;
  return {
    directory,
    ids,
    agents,
    db,
    ledger,
    policy,
    admin,
    connectTo,
    startIncidents: async ({ maxAttempts }) => {
      incidents = await startIncidentService({ bus: await connectTo('incident'), provider, identity: ids.incident, directory, ledgerPublicKey: ids.ledger.ed25519.publicKey, rules, analysts: [ids.ann.id], retryBaseMs: 200, maxAttempts });
      return incidents;
    },
    eventsOf: async (type, { prefix = false } = {}) =>
      (await db.selectFrom('events').selectAll().where('event_type', prefix ? 'like' : '=', prefix ? `${type}%` : type).orderBy('seq').execute()).map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> })),
    stop: async () => {
      await incidents?.stop();
      await policy.stop();
      await ledger.stop();
      await removeNamespaceStreams(buses[0]!);
      await Promise.all(buses.map((b) => b.close()));
      await closeDatabase(db);
      await dbSchema.drop();
    },
  };
}
