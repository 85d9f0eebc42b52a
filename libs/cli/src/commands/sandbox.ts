import { loadConfig } from '@bulwark/config';
import { InputError } from '@bulwark/errors';
import {
  DEFAULT_SANDBOX_ROOT,
  floorTier,
  hostDrivers,
  parseAllowEntry,
  parseTierRequest,
  Scheduler,
  temporaryRootfs,
  dockerDrivers,
  KUBERNETES_STATUS,
  type DriverStatus,
} from '@bulwark/sandbox-scheduler';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';

/** Without an assessment, a workload is taken as the worst case: secret data, untrusted code. */
const WORST_CASE = { data_sensitivity: 1, code_trust_level: 0, network_access: false, filesystem_access: false, external_apis: false };

function parseJsonArg(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new InputError('E_USAGE', `sandbox: ${what} is not JSON: ${(e as Error).message}`, {});
  }
}

function scheduler(io: CommandIO, rootfs: string, root: string): Scheduler {
  const { config } = loadConfig({ env: io.env, cwd: io.cwd });
  const drivers = hostDrivers(root);
  return new Scheduler({ drivers: { 1: drivers.runc, 2: drivers.runsc }, rootfs, floor: floorTier(config.security.default_sandbox_tier) });
}

function printDrivers(io: CommandIO, statuses: readonly DriverStatus[], json: boolean | undefined): void {
  if (json) {
    io.stdout(`${JSON.stringify(statuses, null, 2)}\n`);
    return;
  }
  for (const s of statuses) {
    io.stdout(`${s.driver.padEnd(10)} tier ${s.tier}  ${s.available ? `available  ${s.version ?? ''}` : `unavailable: ${s.reason ?? ''}`}\n`);
    for (const limit of s.knownLimits) io.stdout(`    known limit: ${limit}\n`);
  }
}

/** `bulwark sandbox assess|run|drivers|ps`: the scheduler's parts, run on this host. */
export const registerSandboxCommand: RegisterCommand = (program, io, setExitCode) => {
  const sandbox = program.command('sandbox').description('risk-scored sandboxes: assess a workload, run it isolated under runc (Tier 1) or gVisor runsc (Tier 2), list drivers and sandboxes');

  sandbox
    .command('assess <assessment>')
    .description('score an assessment JSON (data_sensitivity, code_trust_level, network_access, filesystem_access, external_apis) and name its tier; SYMBIONT_DEFAULT_SANDBOX_TIER is the floor')
    .option('--json', 'print { assessment, decision }')
    .action((text: string, options: { json?: boolean }) => {
      const { config } = loadConfig({ env: io.env, cwd: io.cwd });
      const s = new Scheduler({ drivers: {}, rootfs: '/', floor: floorTier(config.security.default_sandbox_tier) });
      const result = s.assess(parseJsonArg(text, 'the assessment'));
      if (options.json) {
        io.stdout(`${JSON.stringify(result)}\n`);
        return;
      }
      const d = result.decision;
      io.stdout(`risk ${d.score.toFixed(3)} (${d.level}) -> Tier ${d.tier}${d.raisedBy === undefined ? '' : ` (raised from Tier ${d.riskTier} by the ${d.raisedBy === 'floor' ? `default tier ${config.security.default_sandbox_tier}` : 'request'})`}\n`);
    });

  sandbox
    .command('drivers')
    .description('which drivers work on this host, and what each runtime does not enforce')
    .option('--json', 'print the statuses as JSON')
    .action(async (options: { json?: boolean }) => {
      const d = hostDrivers();
      printDrivers(io, [await d.runc.detect(), await d.runsc.detect(), ...(await Promise.all(dockerDrivers().map((x) => x.detect()))), KUBERNETES_STATUS], options.json);
    });

  sandbox
    .command('run')
    .description('run CMD in a sandbox on this host (needs root): its output, then its exit code as ours')
    .option('--tier <tier>', 'auto | 1 | 2 (a tier only raises the one the assessment gives)', 'auto')
    .option('--assessment <json>', 'the workload assessment (default: secret data, untrusted code)')
    .option('--allow <host:port...>', 'reachable through the egress proxy at http://127.0.0.1:3128 inside (HTTP CONNECT; Tier 1 only); every attempt is printed')
    .option('--json', 'print the run record as JSON instead of the output')
    .argument('<cmd...>', 'the command, after --')
    .action(async (cmd: string[], options: { tier: string; assessment?: string; allow?: string[]; json?: boolean }) => {
      const egress = options.allow === undefined ? undefined : { rules: options.allow.map(parseAllowEntry) };
      const tier = parseTierRequest(options.tier);
      const assessment = options.assessment === undefined ? WORST_CASE : parseJsonArg(options.assessment, '--assessment');
      const fs = temporaryRootfs();
      try {
        const result = await scheduler(io, fs.rootfs, DEFAULT_SANDBOX_ROOT).schedule({ assessment, tier, args: cmd, ...(egress === undefined ? {} : { egress }) });
        if (options.json) {
          io.stdout(`${JSON.stringify({ decision: result.decision, run: result.run, egress: result.egress ?? [] })}\n`);
        } else {
          io.stdout(result.run.stdout);
          if (result.run.stderr !== '') io.stderr(result.run.stderr);
          for (const a of result.egress ?? []) io.stderr(`egress ${a.allowed ? 'allowed' : 'refused'} ${a.host}:${a.port}${a.address === undefined ? '' : ` (${a.address})`}: ${a.reason}\n`);
          io.stderr(`sandbox ${result.run.id}: Tier ${result.run.tier} (${result.run.driver}), risk ${result.decision.score.toFixed(3)}, exit ${result.run.exitCode}${result.run.limitsExceeded.length > 0 ? `, limits exceeded: ${result.run.limitsExceeded.join(', ')}` : ''}\n`);
        }
        setExitCode(result.run.exitCode === 0 ? ExitCode.ok : result.run.exitCode);
      } finally {
        fs.cleanup();
      }
    });

  sandbox
    .command('ps')
    .description('sandboxes running on this host (runc and runsc state under /run/bulwark-sandbox)')
    .option('--json', 'print [{ id, driver }]')
    .option('--root <dir>', 'the scheduler\'s runtime state (its BULWARK_SANDBOX_ROOT)', DEFAULT_SANDBOX_ROOT)
    .action(async (options: { json?: boolean; root: string }) => {
      const d = hostDrivers(options.root);
      const rows = [...(await d.runc.list()).map((id) => ({ id, driver: 'runc' })), ...(await d.runsc.list()).map((id) => ({ id, driver: 'runsc' }))];
      if (options.json) io.stdout(`${JSON.stringify(rows)}\n`);
      else io.stdout(rows.length === 0 ? 'no sandboxes running\n' : rows.map((r) => `${r.id}  ${r.driver}\n`).join(''));
    });
};
