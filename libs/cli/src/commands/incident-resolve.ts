/**
 * `bulwark incident resolve ID [--reenroll] [--keep-policy | --rollback-policy] [--health-check]`:
 * the recovery plan of seed S7.4, run by svc.incident-response before it resolves the incident
 * (services/incident-response `recovery.ts`). The health check is the `$SRV` readiness that
 * `bulwark status` reads, asked as the operator of the running home (DESIGN §3a: `$SRV` is the
 * operator's), and sent with the plan. A failed step exits 1 naming the step and why.
 */
import type { Command } from 'commander';
import { Commands } from '@bulwark/bus';
import { InputError } from '@bulwark/errors';
import type { HealthReport, IncidentTimings, RecoveryResult } from '@bulwark/incident-response';
import { runningHome } from '../home/running.js';
import { connectAsOperator, openKeyStore } from '../home/session.js';
import { ExitCode, type CommandIO } from '../io.js';
import { healthReport, probeServices } from '../run/probe.js';
import { asAnalyst, withCommon, type Common } from './analyst-session.js';

export interface ResolveOptions extends Common {
  readonly note?: string;
  readonly reenroll?: boolean;
  readonly keepPolicy?: boolean;
  readonly rollbackPolicy?: boolean;
  readonly healthCheck?: boolean;
  readonly dir?: string;
}

/** The plan the options ask for; no option = resolve only (the containment policy kept). */
export function planOf(o: ResolveOptions): { reenroll?: boolean; policy?: 'keep' | 'rollback' } | undefined {
  if (o.keepPolicy === true && o.rollbackPolicy === true) throw new InputError('E_USAGE', '--keep-policy and --rollback-policy: choose one');
  if (o.reenroll !== true && o.keepPolicy !== true && o.rollbackPolicy !== true && o.healthCheck !== true) return undefined;
  return { ...(o.reenroll === true ? { reenroll: true } : {}), policy: o.rollbackPolicy === true ? 'rollback' : 'keep' };
}

/** The services' readiness, as `bulwark status` reads it, from the running home of `dir`. */
export async function checkHealth(io: CommandIO, dir: string | undefined): Promise<HealthReport> {
  const { state, env } = runningHome(io, dir);
  const { store } = await openKeyStore(env, io.cwd);
  const bus = await connectAsOperator(store, state.nats.url, 'bulwark-incident-health');
  try {
    return healthReport(await probeServices(bus, state));
  } finally {
    await bus.close();
  }
}

interface ResolveReply {
  id: string;
  status: string;
  eventId: string;
  recovery: RecoveryResult;
  times?: IncidentTimings;
}

export function registerIncidentResolve(incident: Command, io: CommandIO, setExitCode: (code: number) => void): void {
  withCommon(
    incident
      .command('resolve')
      .description('run a recovery plan, then resolve the incident (ledger events naming you); exit 1 if a step fails')
      .argument('<id>')
      .option('--note <text>', 'why')
      .option('--reenroll', 'a fresh one-time join invitation for the agent (its revoked keys stay revoked); printed once')
      .option('--keep-policy', 'keep the containment policy in force (the default)')
      .option('--rollback-policy', 'release the containment policy (a policy change by svc.incident-response)')
      .option('--health-check', "check every service's readiness first ($SRV, as bulwark status; needs the running home)")
      .option('--dir <home>', 'the running home for --health-check (default: $SYMBIONT_HOME, else ./.bulwark)'),
  ).action(async (id: string, o: ResolveOptions) => {
    const plan = planOf(o);
    const health = o.healthCheck === true ? await checkHealth(io, o.dir) : undefined;
    await asAnalyst(io, o, setExitCode, async (a) => {
      const body = { id, ...(o.note === undefined ? {} : { note: o.note }), ...(plan === undefined ? {} : { plan: { ...plan, ...(health === undefined ? {} : { health }) } }) };
      const reply = (await a.call(Commands.incident.resolve, body)) as ResolveReply;
      if (o.json === true) io.stdout(`${JSON.stringify(reply)}\n`);
      else {
        io.stdout(`${reply.id} ${reply.status} (event ${reply.eventId})\n`);
        for (const s of reply.recovery.steps) io.stdout(`  ${s.step}: ${s.outcome}  ${s.detail}\n`);
        const inv = reply.recovery.invitation;
        if (inv !== undefined) io.stdout(`  join bundle for ${inv.principal} (one use, expires ${inv.expires}; a secret, give it only to the agent's operator):\n${inv.join}\n`);
      }
      const failed = reply.recovery.steps.find((s) => s.outcome === 'failed');
      if (failed === undefined) return ExitCode.ok;
      io.stderr(`bulwark: incident resolve: recovery step ${failed.step} failed: ${failed.detail}; ${reply.id} stays ${reply.status} (recorded in event ${reply.eventId})\n`);
      return ExitCode.failure;
    });
  });
}
