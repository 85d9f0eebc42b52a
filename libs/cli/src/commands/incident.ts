import { Commands, RejectionReporter, startStreamConsumer } from '@bulwark/bus';
import { BulwarkError } from '@bulwark/errors';
import { socConsumers, type TimingStats } from '@bulwark/incident-response';
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
  withCommon(soc.command('tail').description('follow the SOC stream: findings sealed to you (Ctrl-C to stop)').option('--severity <level>', 'least severity, e.g. high+', 'info').option('--category <name>', 'only this category')).action(
    async (o: Common & { severity: string; category?: string }) => {
      const floor = parseSeverityFloor(o.severity);
      const a = await connectAnalyst(io, o);
      const rejections = new RejectionReporter({ reporter: a.id, publish: async () => undefined });
      // The analyst's own durables (the only ones the bus grants it): a later tail resumes where this one stopped.
      const consumers = await Promise.all(
        socConsumers(a.id, floor).map(({ durable, filterSubject }) =>
          startStreamConsumer(a.bus, a.receiver, { stream: 'incidents', durable, filterSubject }, async (d) => {
            const category = d.subject.split('.')[3];
            if (o.category !== undefined && category !== o.category) return;
            const finding = JSON.parse(new TextDecoder().decode(d.plaintext)) as { severity?: string; message?: string; finding_info?: { uid?: string } };
            if (o.json === true) io.stdout(`${JSON.stringify({ ce: { id: d.header('ce-id'), type: d.header('ce-type'), time: d.header('ce-time') }, finding })}\n`);
            else io.stdout(`${d.header('ce-time') ?? ''} ${(finding.severity ?? '').padEnd(13)} ${category ?? ''}  ${finding.finding_info?.uid ?? ''}  ${finding.message ?? ''}\n`);
          }, rejections),
        ),
      );
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
      });
      await Promise.all(consumers.map((c) => c.stop()));
      await a.close();
    },
  );
};
