import { Commands } from '@bulwark/bus';
import { redactUrl } from '@bulwark/config';
import type { CheckpointReply } from '@bulwark/audit-ledger';
import { maskDatabaseUrl } from '@bulwark/store';
import { ADMIN_PRINCIPAL } from '../home/admin.js';
import { runningHome } from '../home/running.js';
import { callJson, connectAsOperator, openKeyStore, openSession } from '../home/session.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { probeServices, statusTable, type ServiceStatus } from '../run/probe.js';

interface StatusOptions {
  readonly dir?: string;
  readonly json?: boolean;
}

interface LedgerStatus {
  readonly size: number | null;
  readonly checkpoint: { readonly size: number; readonly rootHash: string } | null;
  readonly error?: string;
}

/** The ledger's size (its health endpoint) and last signed checkpoint (`bulwark.audit.checkpoint`, as the administrator). */
async function ledgerStatus(io: CommandIO, env: NodeJS.ProcessEnv, url: string, services: readonly ServiceStatus[]): Promise<LedgerStatus> {
  const health = services.find((s) => s.name === 'audit-ledger')?.health;
  const size = typeof health?.['size'] === 'number' ? health['size'] : null;
  try {
    const session = await openSession({ env, cwd: io.cwd, principal: ADMIN_PRINCIPAL, name: 'bulwark-status', natsUrl: url });
    try {
      const reply = await callJson<CheckpointReply>(session, Commands.audit.checkpoint, {});
      return { size, checkpoint: { size: reply.size, rootHash: reply.rootHash } };
    } finally {
      await session.close();
    }
  } catch (error) {
    return { size, checkpoint: null, error: error instanceof Error ? error.message.split('\n')[0]! : String(error) };
  }
}

async function status(io: CommandIO, options: StatusOptions): Promise<number> {
  const { state, env } = runningHome(io, options.dir);
  // $SRV is the operator's to ask (DESIGN §3a).
  const { store } = await openKeyStore(env, io.cwd);
  const bus = await connectAsOperator(store, state.nats.url, 'bulwark-status');
  let services: ServiceStatus[];
  try {
    services = await probeServices(bus, state);
  } finally {
    await bus.close();
  }
  const ledger = await ledgerStatus(io, env, state.nats.url, services);
  const ready = services.every((s) => s.ready);
  if (options.json) {
    const report = {
      ready,
      nats: { url: redactUrl(state.nats.url), managed: state.nats.managed },
      database: { kind: state.database.kind, ...(state.database.kind === 'postgres' ? { url: maskDatabaseUrl(state.database.url) } : { url: state.database.url }) },
      services: services.map((s) => ({ name: s.name, instances: s.instances, ready: s.ready, ...(s.ready ? {} : { reason: s.reason }), subjects: s.subjects, ...(s.metrics === undefined ? {} : { metrics: s.metrics }) })),
      ledger,
    };
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    io.stdout(`NATS      ${redactUrl(state.nats.url)} (${state.nats.managed ? 'started by bulwark up' : 'NATS_URL'})\n`);
    io.stdout(`database  ${state.database.kind} ${maskDatabaseUrl(state.database.url)}\n`);
    io.stdout(
      `ledger    ${ledger.size === null ? 'size unknown' : `${ledger.size} events`}; last checkpoint ${ledger.checkpoint === null ? `none${ledger.error === undefined ? '' : ` (${ledger.error})`}` : `size ${ledger.checkpoint.size}, root ${ledger.checkpoint.rootHash}`}\n\n`,
    );
    io.stdout(statusTable(services));
  }
  if (!ready) io.stderr(`bulwark: status: not ready: ${services.filter((s) => !s.ready).map((s) => `${s.name} (${s.reason})`).join('; ')}\n`);
  return ready ? ExitCode.ok : ExitCode.negative;
}

/** `bulwark status [--dir D] [--json]`. */
export const registerStatusCommand: RegisterCommand = (program, io, setExitCode) => {
  program
    .command('status')
    .description("every service's instances and readiness ($SRV.INFO/STATS and health endpoints), NATS, the database, the ledger's size and last checkpoint; exit 1 if any service is not ready")
    .option('--dir <home>', 'the home of the running system (default: $SYMBIONT_HOME, else ./.bulwark)')
    .option('--json', 'print { nats: { url }, database: { kind, url }, services: [{ name, instances, ready }], ledger: { size, checkpoint } }')
    .action(async (options: StatusOptions) => setExitCode(await status(io, options)));
};
