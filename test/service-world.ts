// The world of the tests in which real services rotate or renew their own identity (issue 12,
// "Rotation"): `bulwark init` (root namespace), nats-server in operator mode with exactly its
// configuration, PostgreSQL and the real ledger (control batches sealed to whoever the test names),
// the key manager in this process (unless the test starts its own), the policy service in this
// process when the service under test calls it, an administrator and an enrolled agent; and the
// service under test as its real main (`start`), a child process on its own key directory
// (`bulwark principal export`), with the environment it needs. Used by the service, requested,
// lost-reply, agent, incident and sandbox rotation tests and by service-renewal.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService, type LedgerSettings } from '@bulwark/audit-ledger';
import { KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals, SOC_CHANNEL } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { NatsRevoker, startKeyManager, type KeyManager, type KeyManagerOptions } from '@bulwark/key-manager';
import { FileKeyStore, loadIdentity, SoftwareKek } from '@bulwark/keystore';
import { loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { startPolicyService, type PolicyService } from '@bulwark/policy';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { mainEnv, startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
export const SERVICE = ServicePrincipals.policy;
export const ADMIN = 'analyst.admin';
/** The channel the ledger's full stream goes out on when a test asks for one (as `bulwark up` names it). */
export const LEDGER_CHANNEL = 'ledger.full';

/** A rejection reporter that reports nowhere (the tests' clients). */
export const quiet = (id: string): RejectionReporter => new RejectionReporter({ reporter: id, publish: async () => undefined });

/**
 * The service mains a test can start: the script, its principal, the environment it needs beside
 * the world's, and how it says it serves (a NATS micro-service answering `$SRV.PING`, or a log line).
 */
const MAINS = {
  policy: { script: 'services/policy/dist/main.js', principal: ServicePrincipals.policy, env: { SYMBIONT_POLICY_ADMINS: ADMIN }, ready: { ping: 'bulwark-policy' } },
  incident: {
    script: 'services/incident-response/dist/main.js',
    principal: ServicePrincipals.incident,
    env: { BULWARK_INCIDENT_CHANNEL: SOC_CHANNEL, SYMBIONT_LEDGER_CHANNEL: LEDGER_CHANNEL, BULWARK_INCIDENT_ANALYSTS: ADMIN },
    ready: { line: /incident-response: running/ },
  },
  sandbox: { script: 'services/sandbox-scheduler/dist/main.js', principal: ServicePrincipals.sandbox, env: { BULWARK_SANDBOX_WARM: '0' }, ready: { line: /sandbox-scheduler: running/ } },
  schemapin: { script: 'services/schemapin/dist/main.js', principal: ServicePrincipals.tools, env: {}, ready: { ping: 'bulwark-tools' } },
  keys: { script: 'services/key-manager/dist/main.js', principal: ServicePrincipals.keys, env: {}, ready: { ping: 'bulwark-keys' } },
} as const;
export type MainName = keyof typeof MAINS;

export interface ServiceMain {
  readonly name: MainName;
  readonly proc: ChildProcess;
  output(): string;
}
/** The policy main (the name the policy rotation tests know it by). */
export type PolicyMain = ServiceMain;

/** The key manager's options beside the world's wiring (`admins` default: the administrator). */
type KeyManagerSettings = Omit<KeyManagerOptions, 'bus' | 'provider' | 'identity' | 'directory' | 'store' | 'ledgerPublicKey' | 'admins' | 'revoker'> & { readonly admins?: readonly string[] };

export interface WorldOptions {
  readonly schema: string;
  /** The ledger's settings beside the world's (`controlTo` default: the key manager and the policy service). */
  readonly ledger?: Partial<LedgerSettings>;
  /** The key manager's settings (rotation interval, channels...), or false: the test starts its own (`startKeyManager`). */
  readonly keyManager: KeyManagerSettings | false;
  /** The policy service in this process, with these policies registered (the service under test calls it). */
  readonly policies?: readonly { readonly text: string; readonly file: string }[];
  /** Nothing is set up (and the tests are skipped): a reason such as a missing runc. */
  readonly skip?: string;
}

export interface ServiceWorld {
  readonly b: PrivateBulwark;
  readonly db: Kysely<LedgerDatabase>;
  /** The world's key manager (throws when the test starts its own). */
  readonly km: KeyManager;
  /** The tests' own directory (root-verified). */
  readonly directory: KvDirectory;
  readonly admin: BulwarkClient;
  readonly agentId: string;
  /** The enrolled agent (decisions time out after 2 s). */
  readonly agent: BulwarkClient;
  /** Another enrolled agent with a client of its own. */
  addAgent(options?: { decisionTimeoutMs?: number }): Promise<{ id: string; client: BulwarkClient }>;
  /** A key manager in this process wired as the world's (stopped with the world): for a test that starts its own. */
  startKeyManager(settings: KeyManagerSettings): Promise<KeyManager>;
  /** `principal`'s own keys only (`bulwark principal export`) in a directory of the world's home named by `tag`. */
  exportKeys(principal: string, tag: string): Promise<string>;
  /** The real main `name` with `extra` environment, on `keysDir` (default: its principal's exported keys, exported once). */
  start(name: MainName, extra?: Record<string, string>, keysDir?: string): Promise<ServiceMain>;
  /** `signal` (default SIGTERM), and its exit. */
  stop(m: ServiceMain, signal?: NodeJS.Signals): Promise<void>;
  /** Until the main says it serves (45 s at most; its output in the failure). */
  serving(m: ServiceMain): Promise<void>;
  /** Whether the NATS micro-service `service` answers `$SRV.PING` (within 500 ms). */
  answers(service: string): Promise<boolean>;
  /** The policy main with `extra` environment (NATS_URL in it: another way to the server). */
  startPolicy(extra: Record<string, string>): Promise<PolicyMain>;
  /** One decision for the agent: how long it took, or why there was none (a policy allowing read(vault) is registered). */
  decide(): Promise<{ ms: number; failure?: string }>;
  /** How many events of `eventType` (default policy.decision) about `id` the ledger holds. */
  decisionsOf(id: string, eventType?: string): Promise<number>;
  /**
   * The attack on a rotated service's old keys: its version 1 revoked (superseded), then frames
   * under version 1's keys (init's store, over a NATS user that may call the key manager) are
   * refused by the key manager, and version 1's NATS user by the server.
   */
  revokeFirstVersion(principal: string): Promise<void>;
  /** The key store `start` gives `principal`'s main (where it stores its new versions). */
  serviceStore(principal?: string): Promise<FileKeyStore>;
}
/** The world of the policy rotation tests (one world, all services). */
export type PolicyWorld = ServiceWorld;

/** The versions a service's log says it rotated to, in order. */
export const rotatedTo = (output: string): number[] => [...output.matchAll(/identity rotated to version (\d+)/g)].map((m) => Number(m[1]));

/**
 * Sets the world up in `beforeAll` and takes it down in `afterAll` of the calling test file;
 * `world()` gives it once set up.
 */
export function useServiceWorld(options: WorldOptions): () => ServiceWorld {
  const schema = withTestSchema(options.schema);
  const children: ChildProcess[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  let made: ServiceWorld | undefined;

  beforeAll(async () => {
    if (options.skip !== undefined) return;
    const b = await startPrivateBulwark({ namespace: false });
    stops.unshift(() => b.stop());
    const creds = (await loadNatsCredentials(b.store, OPERATOR_USER))!;
    const operator: NatsConnection = await connect({ servers: b.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 });
    stops.unshift(() => operator.close());
    const db = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
    stops.unshift(async () => {
      await closeDatabase(db);
      await schema.drop();
    });
    await migrateLedger(db);
    const ledger: LedgerService = await startLedgerOn(b, db, { checkpointMs: 0, controlTo: [ServicePrincipals.keys, ServicePrincipals.policy], ...options.ledger, schema: schema.name });
    stops.unshift(() => ledger.stop());
    const ledgerPublicKey = (await loadIdentity(b.store, LEDGER_PRINCIPAL)).ed25519.publicKey;
    const startKm = async (settings: KeyManagerSettings): Promise<KeyManager> => {
      const revoker = await NatsRevoker.open({ store: b.store, provider: b.provider, url: b.url });
      stops.unshift(() => revoker.close());
      const km = await startKeyManager({
        bus: await b.connect(ServicePrincipals.keys, 'key-manager'),
        provider: b.provider,
        identity: await loadIdentity(b.store, ServicePrincipals.keys),
        directory: await KvDirectory.open(await b.connect(OPERATOR_USER, 'km-directory'), { provider: b.provider, rootPublicKey: b.rootPublicKey }),
        store: b.store,
        ledgerPublicKey,
        admins: [ADMIN],
        revoker,
        ...settings,
      });
      stops.unshift(() => km.stop());
      return km;
    };
    const km = options.keyManager === false ? undefined : await startKm(options.keyManager);
    const directory = await b.directory();
    if (options.policies !== undefined) {
      const policy: PolicyService = await startPolicyService({ bus: await b.connect(ServicePrincipals.policy, 'policy'), provider: b.provider, identity: await loadIdentity(b.store, ServicePrincipals.policy), directory, ledgerPublicKey, admins: [ADMIN], audit: { lingerMs: 5 } });
      stops.unshift(() => policy.stop());
    }
    const adminId = await b.identity(ADMIN);
    const admin = createBulwarkClient({ bus: await b.connect(adminId.id), sessions: { provider: b.provider, self: adminId, directory }, rejections: quiet(adminId.id), adminTimeoutMs: 10_000 });
    for (const p of options.policies ?? []) await admin.policyAdmin.register(p.text, p.file);
    const addAgent = async (o: { decisionTimeoutMs?: number } = {}) => {
      const id = await b.addAgent();
      return { id, client: createBulwarkClient({ bus: await b.connect(id), sessions: { provider: b.provider, self: await b.identity(id), directory }, rejections: quiet(id), decisionTimeoutMs: o.decisionTimeoutMs ?? 2000 }) };
    };
    const first = await addAgent();

    const exported = new Map<string, Promise<string>>();
    const exportKeys = async (principal: string, tag: string): Promise<string> => {
      const dir = join(b.home, `${tag}-keys`);
      const r = await b.bulwark(['principal', 'export', principal, '--out', dir]);
      expect(r.code, r.stderr).toBe(0);
      return dir;
    };
    const keysOf = (name: MainName): Promise<string> => {
      let dir = exported.get(name);
      if (dir === undefined) exported.set(name, (dir = exportKeys(MAINS[name].principal, name)));
      return dir;
    };
    const answers = async (service: string): Promise<boolean> => {
      try {
        await operator.request(`$SRV.PING.${service}`, '', { timeout: 500 });
        return true;
      } catch {
        return false;
      }
    };
    const start = async (name: MainName, extra: Record<string, string> = {}, keysDir?: string): Promise<ServiceMain> => {
      const main = MAINS[name];
      const env = mainEnv(b, keysDir ?? (await keysOf(name)), { SYMBIONT_LOG_LEVEL: 'info', ...main.env, ...extra });
      const proc = spawn(process.execPath, [join(repoRoot, main.script)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(proc);
      let output = '';
      proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
      proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
      return { name, proc, output: () => output };
    };
    const serving = async (m: ServiceMain): Promise<void> => {
      const ready: { ping?: string; line?: RegExp } = MAINS[m.name].ready;
      const deadline = Date.now() + 45_000;
      while (!(ready.line !== undefined ? ready.line.test(m.output()) : await answers(ready.ping!))) {
        if (Date.now() > deadline || m.proc.exitCode !== null) throw new Error(`${MAINS[m.name].script} (exit ${m.proc.exitCode}, pid ${m.proc.pid}) does not serve: ${m.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const kek = () => new SoftwareKek(b.provider, new Uint8Array(Buffer.from(b.env['SYMBIONT_KEK']!, 'base64')), 'SYMBIONT_KEK');
    made = {
      b,
      db,
      get km(): KeyManager {
        if (km === undefined) throw new Error('this world has no key manager of its own (keyManager: false)');
        return km;
      },
      directory,
      admin,
      agentId: first.id,
      agent: first.client,
      addAgent,
      startKeyManager: startKm,
      exportKeys,
      start,
      async stop(m, signal = 'SIGTERM') {
        if (m.proc.exitCode !== null || m.proc.signalCode !== null) return;
        const exited = new Promise((r) => m.proc.once('exit', r));
        m.proc.kill(signal);
        await exited;
      },
      serving,
      answers,
      async startPolicy(extra) {
        return start('policy', extra);
      },
      // No retry here: the service's one reconnect to its new NATS user leaves its subscriptions
      // away for a moment, and the bus client itself retries no responders within the call's
      // timeout (libs/bus rpc-client).
      async decide() {
        const started = performance.now();
        const decision = await first.client.policy.evaluate({ action: 'read', resource: 'vault' });
        const ms = Math.round(performance.now() - started);
        if ('failure' in decision && typeof decision.failure === 'string') return { ms, failure: `${decision.failure}: ${decision.reason}` };
        // The registered policy allows it: an Allow also shows the policy state was rebuilt from the ledger.
        return decision.decision === 'Allow' ? { ms } : { ms, failure: `${decision.decision}: ${JSON.stringify(decision)}` };
      },
      async decisionsOf(id, eventType = 'policy.decision') {
        const row = await db.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).where('agent_id', '=', id).where('event_type', '=', eventType).executeTakeFirstOrThrow();
        return Number(row.n);
      },
      async revokeFirstVersion(principal) {
        const view = await admin.keys.revoke(principal, 'superseded', 1);
        expect(view.versions.find((v) => v.version === 1)?.state).toBe('revoked');
        const bus = await b.connect(ADMIN, 'old-version');
        const thief = createBulwarkClient({ bus, sessions: { provider: b.provider, self: await loadIdentity(b.store, principal, 1), directory }, rejections: quiet(principal), adminTimeoutMs: 2000 });
        await expect(thief.keys.get(principal)).rejects.toThrow();
        await expect(b.connect(principal, 'old-user')).rejects.toThrow(/refused|revoked|Authorization/i);
      },
      serviceStore: async (principal = SERVICE) => {
        const name = (Object.keys(MAINS) as MainName[]).find((n) => MAINS[n].principal === principal)!;
        return FileKeyStore.open({ dir: await keysOf(name), wrapper: kek(), provider: b.provider });
      },
    };
  }, 180_000);

  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      }
    }
    for (const s of stops) await s();
  }, 60_000);

  return () => {
    if (made === undefined) throw new Error('the service world is not set up (useServiceWorld is called at the top of a test file, its world() inside tests)');
    return made;
  };
}

/** The policy rotation tests' world: the policy main under test, the key manager with `keyManager`'s rotation settings. */
export function usePolicyWorld(options: { readonly schema: string; readonly keyManager: Pick<KeyManagerOptions, 'rotationIntervalMs' | 'rotationOverdueGraceMs'> }): () => PolicyWorld {
  return useServiceWorld(options);
}
