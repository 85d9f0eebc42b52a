// The world of the tests in which the real policy service rotates its own identity (issue 12,
// "Rotation"): `bulwark init` (root namespace), nats-server in operator mode with exactly its
// configuration, PostgreSQL and the real ledger (control batches sealed to the key manager and the
// policy service), the key manager in this process, an administrator and an enrolled agent, and the
// policy service's own key directory (`bulwark principal export`) for the real `bulwark-policy`
// main, started as a child process by each test with the environment it needs.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { migrateLedger, type LedgerDatabase, type LedgerService } from '@bulwark/audit-ledger';
import { KvDirectory, LEDGER_PRINCIPAL, RejectionReporter, ServicePrincipals } from '@bulwark/bus';
import { createBulwarkClient, type BulwarkClient } from '@bulwark/client';
import { NatsRevoker, startKeyManager, type KeyManager, type KeyManagerOptions } from '@bulwark/key-manager';
import { FileKeyStore, loadIdentity, SoftwareKek } from '@bulwark/keystore';
import { loadNatsCredentials, OPERATOR_USER } from '@bulwark/nats-auth';
import { closeDatabase, createDatabase, type Kysely } from '@bulwark/store';
import { databaseUrl, withTestSchema } from '@bulwark/testkit';
import { startLedgerOn, startPrivateBulwark, type PrivateBulwark } from './attack/private-bulwark.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
export const SERVICE = ServicePrincipals.policy;

/** A rejection reporter that reports nowhere (the tests' clients). */
export const quiet = (id: string): RejectionReporter => new RejectionReporter({ reporter: id, publish: async () => undefined });

export interface PolicyMain {
  readonly proc: ChildProcess;
  output(): string;
}

export interface PolicyWorld {
  readonly b: PrivateBulwark;
  readonly db: Kysely<LedgerDatabase>;
  readonly km: KeyManager;
  /** The tests' own directory (root-verified). */
  readonly directory: KvDirectory;
  readonly admin: BulwarkClient;
  readonly agentId: string;
  /** The enrolled agent asking the policy service (decisions time out after 2 s). */
  readonly agent: BulwarkClient;
  /** The real policy main on the service's own key directory, with `extra` environment (NATS_URL in it: another way to the server). */
  startPolicy(extra: Record<string, string>): PolicyMain;
  /** `signal` (default SIGTERM), and its exit. */
  stop(m: PolicyMain, signal?: NodeJS.Signals): Promise<void>;
  /** Until the service answers `$SRV.PING` (30 s at most). */
  serving(m: PolicyMain): Promise<void>;
  /** One decision for the agent: how long it took, or why there was none (a policy allowing read(vault) is registered). */
  decide(): Promise<{ ms: number; failure?: string }>;
  /** How many of the agent's decisions the ledger holds. */
  decisionsOf(id: string): Promise<number>;
  /** The service's own key store (where it stores its new versions). */
  serviceStore(): Promise<FileKeyStore>;
}

/** The versions the service's log says it rotated to, in order. */
export const rotatedTo = (output: string): number[] => [...output.matchAll(/identity rotated to version (\d+)/g)].map((m) => Number(m[1]));

/**
 * Sets the world up in `beforeAll` and takes it down in `afterAll` of the calling test file;
 * `world()` gives it once set up. `keyManager`: the key manager's rotation settings.
 */
export function usePolicyWorld(options: { readonly schema: string; readonly keyManager: Pick<KeyManagerOptions, 'rotationIntervalMs' | 'rotationOverdueGraceMs'> }): () => PolicyWorld {
  const schema = withTestSchema(options.schema);
  const children: ChildProcess[] = [];
  let made: PolicyWorld | undefined;
  let operator: NatsConnection | undefined;
  let ledger: LedgerService | undefined;
  let revoker: NatsRevoker | undefined;
  let db: Kysely<LedgerDatabase> | undefined;
  let b: PrivateBulwark | undefined;

  beforeAll(async () => {
    const bulwark = await startPrivateBulwark({ namespace: false });
    b = bulwark;
    const creds = (await loadNatsCredentials(bulwark.store, OPERATOR_USER))!;
    const op = await connect({ servers: bulwark.url, authenticator: jwtAuthenticator(creds.jwt, creds.seed), inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: 0 });
    operator = op;
    const database = await createDatabase<LedgerDatabase>({ url: databaseUrl(), schema: schema.name });
    db = database;
    await migrateLedger(database);
    ledger = await startLedgerOn(bulwark, database, { schema: schema.name, checkpointMs: 0, controlTo: [ServicePrincipals.keys, ServicePrincipals.policy] });
    revoker = await NatsRevoker.open({ store: bulwark.store, provider: bulwark.provider, url: bulwark.url });
    const km = await startKeyManager({
      bus: await bulwark.connect(ServicePrincipals.keys, 'key-manager'),
      provider: bulwark.provider,
      identity: await loadIdentity(bulwark.store, ServicePrincipals.keys),
      directory: await KvDirectory.open(await bulwark.connect(OPERATOR_USER, 'km-directory'), { provider: bulwark.provider, rootPublicKey: bulwark.rootPublicKey }),
      store: bulwark.store,
      ledgerPublicKey: (await loadIdentity(bulwark.store, LEDGER_PRINCIPAL)).ed25519.publicKey,
      admins: ['analyst.admin'],
      revoker,
      ...options.keyManager,
    });
    const directory = await bulwark.directory();
    const adminId = await bulwark.identity('analyst.admin');
    const admin = createBulwarkClient({ bus: await bulwark.connect(adminId.id), sessions: { provider: bulwark.provider, self: adminId, directory }, rejections: quiet(adminId.id), adminTimeoutMs: 10_000 });
    const agentId = await bulwark.addAgent();
    const agentIdentity = await bulwark.identity(agentId);
    const agent = createBulwarkClient({ bus: await bulwark.connect(agentId), sessions: { provider: bulwark.provider, self: agentIdentity, directory }, rejections: quiet(agentId), decisionTimeoutMs: 2000 });
    // The policy service's own keys only (`bulwark principal export`): where it stores its new versions.
    const keysDir = join(bulwark.home, 'policy-keys');
    const exported = await bulwark.bulwark(['principal', 'export', SERVICE, '--out', keysDir]);
    expect(exported.code, exported.stderr).toBe(0);

    const answers = async (): Promise<boolean> => {
      try {
        await op.request('$SRV.PING.bulwark-policy', '', { timeout: 500 });
        return true;
      } catch {
        return false;
      }
    };
    made = {
      b: bulwark,
      db: database,
      km,
      directory,
      admin,
      agentId,
      agent,
      startPolicy(extra) {
        const env = {
          PATH: process.env['PATH'] ?? '',
          ...bulwark.env,
          NATS_URL: bulwark.url,
          SYMBIONT_KEY_DIR: keysDir,
          SYMBIONT_ROOT_PUBLIC_KEY: Buffer.from(bulwark.rootPublicKey).toString('base64'),
          SYMBIONT_LOG_LEVEL: 'info',
          SYMBIONT_POLICY_ADMINS: 'analyst.admin',
          ...extra,
        };
        const proc = spawn(process.execPath, [join(repoRoot, 'services/policy/dist/main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(proc);
        let output = '';
        proc.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
        proc.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
        return { proc, output: () => output };
      },
      async stop(m, signal = 'SIGTERM') {
        if (m.proc.exitCode !== null || m.proc.signalCode !== null) return;
        const exited = new Promise((r) => m.proc.once('exit', r));
        m.proc.kill(signal);
        await exited;
      },
      async serving(m) {
        const deadline = Date.now() + 30_000;
        while (!(await answers())) {
          if (Date.now() > deadline || m.proc.exitCode !== null) throw new Error(`bulwark-policy (exit ${m.proc.exitCode}, pid ${m.proc.pid}) does not answer: ${m.output()}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
      // No retry here: the service's one reconnect to its new NATS user leaves its subscriptions
      // away for a moment, and the bus client itself retries no responders within the call's
      // timeout (libs/bus rpc-client).
      async decide() {
        const started = performance.now();
        const decision = await agent.policy.evaluate({ action: 'read', resource: 'vault' });
        const ms = Math.round(performance.now() - started);
        if ('failure' in decision && typeof decision.failure === 'string') return { ms, failure: `${decision.failure}: ${decision.reason}` };
        // The registered policy allows it: an Allow also shows the policy state was rebuilt from the ledger.
        return decision.decision === 'Allow' ? { ms } : { ms, failure: `${decision.decision}: ${JSON.stringify(decision)}` };
      },
      async decisionsOf(id) {
        const row = await database.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).where('agent_id', '=', id).where('event_type', '=', 'policy.decision').executeTakeFirstOrThrow();
        return Number(row.n);
      },
      serviceStore: () => FileKeyStore.open({ dir: keysDir, wrapper: new SoftwareKek(bulwark.provider, new Uint8Array(Buffer.from(bulwark.env['SYMBIONT_KEK']!, 'base64')), 'SYMBIONT_KEK'), provider: bulwark.provider }),
    };
  }, 120_000);

  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      }
    }
    await operator?.close();
    await made?.km.stop();
    await revoker?.close();
    await ledger?.stop();
    if (db !== undefined) await closeDatabase(db);
    await schema.drop();
    await b?.stop();
  }, 30_000);

  return () => {
    if (made === undefined) throw new Error('the policy world is not set up (usePolicyWorld is called at the top of a test file, its world() inside tests)');
    return made;
  };
}
