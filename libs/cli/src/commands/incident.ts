import { Commands } from '@bulwark/bus';
import { BulwarkError } from '@bulwark/errors';
import type { TimingStats } from '@bulwark/incident-response';
import type { RegisterCommand } from '../io.js';
import { asAnalyst, connectAnalyst, parseSeverityFloor, withCommon, type Common } from './analyst-session.js';
import { formatDuration, listLine, showText, statsText, type View } from './incident-format.js';
import { registerIncidentResolve } from './incident-resolve.js';
import { registerSocExport } from './soc-export.js';

/** `bulwark incident list|show|stats|ack|resolve`, `bulwark soc tail|export` (services/incident-response README). */
export const registerIncidentCommand: RegisterCommand = (program, io, setExitCode) => {
  const incident = program.command('incident').description('incidents of the incident response service (enrolled analysts)');
  const listBody = (o: { severity?: string; status?: string }) => ({ ...(o.severity === undefined ? {} : { severity: parseSeverityFloor(o.severity) }), ...(o.status === undefined ? {} : { status: o.status }) });
  withCommon(incident.command('list').description('list incidents with their time to acknowledge and to contain').option('--severity <level>', 'least severity, e.g. high+').option('--status <status>', 'open, acknowledged or resolved')).action(
    async (o: Common & { severity?: string; status?: string }) =>
      asAnalyst(io, o, setExitCode, async (a) => {
        const reply = (await a.call(Commands.incident.list, listBody(o))) as { incidents: View[] };
        if (o.json === true) io.stdout(`${JSON.stringify(reply.incidents)}\n`);
        else for (const i of reply.incidents) io.stdout(listLine(i));
        return 0;
      }),
  );
  withCommon(incident.command('stats').description('MTTA and MTTC (mean, p50) over the incidents').option('--severity <level>', 'least severity, e.g. high+').option('--status <status>', 'open, acknowledged or resolved')).action(
    async (o: Common & { severity?: string; status?: string }) =>
      asAnalyst(io, o, setExitCode, async (a) => {
        const reply = (await a.call(Commands.incident.list, listBody(o))) as { stats: TimingStats };
        io.stdout(o.json === true ? `${JSON.stringify(reply.stats)}\n` : statsText(reply.stats));
        return 0;
      }),
  );
  withCommon(incident.command('show').description('one incident with its evidence, actions and times').argument('<id>')).action(async (id: string, o: Common) =>
    asAnalyst(io, o, setExitCode, async (a) => {
      const reply = (await a.call(Commands.incident.list, { id })) as { incidents: View[] };
      const i = reply.incidents[0];
      if (i === undefined) throw new BulwarkError('E_INCIDENT_UNKNOWN', `no incident ${id}`);
      io.stdout(o.json === true ? `${JSON.stringify(i)}\n` : showText(i));
      return 0;
    }),
  );
  withCommon(incident.command('ack').description('acknowledge an incident (a ledger event naming you, with the time to acknowledge)').argument('<id>').option('--note <text>', 'why')).action(async (id: string, o: Common & { note?: string }) =>
    asAnalyst(io, o, setExitCode, async (a) => {
      const reply = (await a.call(Commands.incident.ack, { id, ...(o.note === undefined ? {} : { note: o.note }) })) as { id: string; status: string; eventId: string; times: { ttaMs?: number } };
      io.stdout(o.json === true ? `${JSON.stringify(reply)}\n` : `${reply.id} ${reply.status} (event ${reply.eventId}), time to acknowledge ${formatDuration(reply.times.ttaMs)}\n`);
      return 0;
    }),
  );
  registerIncidentResolve(incident, io, setExitCode);
  const soc = program.commands.find((c) => c.name() === 'soc') ?? program.command('soc').description('the SOC incident stream');
  registerSocExport(soc, io, setExitCode);
  withCommon(soc.command('tail').description('follow the SOC stream on its channel: every finding confirmed by the incident service (Ctrl-C to stop)').option('--severity <level>', 'least severity, e.g. high+', 'info').option('--category <name>', 'only this category')).action(
    async (o: Common & { severity: string; category?: string }) => {
      const floor = parseSeverityFloor(o.severity);
      const a = await connectAnalyst(io, o);
      let reader;
      try {
        // The analyst's own durables (the only ones the bus grants it): a later tail resumes where this one stopped.
        reader = await a.readSoc({
          floor,
          onFinding: ({ category, ce, finding, incident }) => {
            if (o.category !== undefined && category !== o.category) return;
            if (o.json === true) io.stdout(`${JSON.stringify({ ce, finding })}\n`);
            else io.stdout(`${ce.time ?? ''} ${String(finding['severity'] ?? '').padEnd(13)} ${category}  ${incident.id}  ${incident.description}\n`);
          },
          onRefused: (why) => io.stderr(`bulwark soc tail: refused: ${why}\n`),
        });
      } catch (e) {
        await a.close();
        throw e;
      }
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
      });
      await reader.stop();
      await a.close();
    },
  );
};
