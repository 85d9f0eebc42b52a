/**
 * `bulwark soc export --since T [--until T] [--severity s] [--out file]`: OCSF 1.8.0 Detection
 * Findings as JSON lines for a SIEM. The source is the incident service's state, rebuilt from
 * the verified ledger (its reader checks each event's signature, chain and producer), through
 * `bulwark.incident.list {export}` as the analyst: analysts may not read the ledger itself, and
 * nothing is taken unchecked from the bus (the SOC stream's copies are not read back).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Commands } from '@bulwark/bus';
import { InputError } from '@bulwark/errors';
import type { DetectionFinding } from '@bulwark/incident-response';
import type { CommandIO } from '../io.js';
import { asAnalyst, parseSeverityFloor, withCommon, type Common } from './analyst-session.js';

const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** An ISO 8601 time (with a date) or a duration back from now (`90s`, `30m`, `24h`, `7d`, `2w`), in ms. */
export function parseTimeArg(flag: string, text: string, now: number): number {
  const d = /^(\d{1,6})([smhdw])$/.exec(text.trim());
  if (d !== null) return now - Number(d[1]) * UNIT_MS[d[2]!]!;
  const t = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim()) ? Date.parse(text.trim()) : Number.NaN;
  if (!Number.isFinite(t)) throw new InputError('E_USAGE', `${flag} ${JSON.stringify(text.slice(0, 60))}: an ISO 8601 time (2026-01-31T12:00:00Z) or a duration back from now (30m, 24h, 7d)`);
  return t;
}

export function registerSocExport(soc: Command, io: CommandIO, setExitCode: (code: number) => void): void {
  withCommon(
    soc
      .command('export')
      .description('OCSF Detection Findings (JSON lines) of the incidents created in a time range, from the verified ledger state')
      .requiredOption('--since <time>', 'ISO 8601 time or duration back from now (24h, 7d)')
      .option('--until <time>', 'ISO 8601 time or duration back from now (default: now)')
      .option('--severity <level>', 'least severity, e.g. high+', 'info')
      .option('--out <file>', 'write the lines to this file (default: stdout)'),
  ).action(async (o: Common & { since: string; until?: string; severity: string; out?: string }) => {
    const now = Date.now();
    const since = parseTimeArg('--since', o.since, now);
    const until = o.until === undefined ? now : parseTimeArg('--until', o.until, now);
    if (until <= since) throw new InputError('E_USAGE', `--until (${new Date(until).toISOString()}) must be after --since (${new Date(since).toISOString()})`);
    const severity = parseSeverityFloor(o.severity);
    await asAnalyst(io, o, setExitCode, async (a) => {
      const reply = (await a.call(Commands.incident.list, { export: { since, until, severity } })) as { findings: DetectionFinding[] };
      const text = reply.findings.map((f) => `${JSON.stringify(f)}\n`).join('');
      if (o.out === undefined) io.stdout(text);
      else {
        writeFileSync(resolve(io.cwd, o.out), text, { mode: 0o600 });
        io.stderr(`${reply.findings.length} findings written to ${o.out}\n`);
      }
      return 0;
    });
  });
}
