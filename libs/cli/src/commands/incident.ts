import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { CommandClient, Commands, connectBus, KvDirectory, RejectionReporter, ROOT_NAMESPACE, startStreamConsumer, type Bus, type CommandSubject } from '@bulwark/bus';
import { loadConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import { SealedReceiver } from '@bulwark/envelope';
import { BulwarkError, InputError } from '@bulwark/errors';
import { SEVERITIES, socConsumers, type Severity } from '@bulwark/incident-response';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey, ROOT_PIN_FILE } from '@bulwark/keystore';
import { busCredentialsFor } from '@bulwark/nats-auth';
import type { CommandIO, RegisterCommand } from '../io.js';
import { namespaceFromName } from './init.js';

interface Common {
  readonly as?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly file?: string;
  readonly json?: boolean;
}

interface Analyst {
  readonly bus: Bus;
  readonly id: string;
  call(subject: CommandSubject, body: unknown): Promise<unknown>;
  receiver: SealedReceiver;
  close(): Promise<void>;
}

async function connectAnalyst(io: CommandIO, options: Common): Promise<Analyst> {
  const as = options.as ?? io.env['BULWARK_PRINCIPAL'];
  if (as === undefined || as === '') throw new InputError('E_USAGE', 'name the analyst with --as <principal> or $BULWARK_PRINCIPAL');
  const { config } = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const provider = createCryptoProvider(config.security.crypto_provider);
  const store = await FileKeyStore.open({ dir: resolve(io.cwd, config.keys.dir ?? DEFAULT_KEY_DIR), wrapper: loadKek({ provider, env: io.env, kekFile: config.keys.kek_file, cwd: io.cwd }), provider });
  const identity = await loadIdentity(store, as);
  // root.pub labels its lines (`base64: ...`, `hex: ...`): take the base64 one (as `bulwark keys` does).
  const pinText = config.keys.root_public_key === undefined ? readFileSync(join(store.dir, ROOT_PIN_FILE), 'utf8') : undefined;
  const pin = config.keys.root_public_key ?? (/^base64:\s*(\S+)$/m.exec(pinText!)?.[1] ?? pinText!.trim());
  const rootPublicKey = parseRootPublicKey(pin, 'keys.root_public_key');
  const namespace = options.namespace === undefined ? ROOT_NAMESPACE : namespaceFromName(options.namespace);
  const bus = await connectBus({ url: options.nats ?? config.nats.url, name: 'bulwark-soc', namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...(await busCredentialsFor(store, identity.id)) });
  try {
    const directory = await KvDirectory.open(bus, { provider, rootPublicKey });
    const self = { id: identity.id, x25519: identity.x25519 };
    const rejections = new RejectionReporter({ reporter: identity.id, publish: async () => undefined });
    const commands = new CommandClient(bus, { sessions: { provider, self, directory }, rejections });
    return {
      bus,
      id: identity.id,
      receiver: new SealedReceiver({ provider, self, directory, staleAfterMs: 90 * 24 * 3600 * 1000 }),
      async call(subject, body) {
        const reply = await commands.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 10_000, idempotent: subject === Commands.incident.list });
        return JSON.parse(new TextDecoder().decode(reply)) as unknown;
      },
      close: () => bus.close(),
    };
  } catch (e) {
    await bus.close();
    throw e;
  }
}

/** `high+` or `high`: the least severity shown. */
export function parseSeverityFloor(text: string): Severity {
  const s = text.replace(/\+$/, '').toLowerCase();
  if (!(SEVERITIES as readonly string[]).includes(s)) throw new InputError('E_USAGE', `--severity ${text}: one of ${SEVERITIES.join(', ')} (with an optional +)`);
  return s as Severity;
}

const withCommon = <T extends { option: (...a: string[]) => T }>(cmd: T): T =>
  cmd
    .option('--as <principal>', 'the analyst principal (default $BULWARK_PRINCIPAL)')
    .option('--nats <url>', 'NATS server')
    .option('--namespace <ns>', 'subject and stream namespace')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON');

interface View {
  id: string;
  timestamp: string;
  severity: string;
  category: string;
  status: string;
  rule: string;
  description: string;
  evidence: { count: number };
  actions: { action: string; outcome: string; attempts: number; detail: string }[];
}

/** `bulwark incident list|show|ack|resolve` and `bulwark soc tail` (services/incident-response README). */
export const registerIncidentCommand: RegisterCommand = (program, io, setExitCode) => {
  const run = (fn: (a: Analyst) => Promise<number>, options: Common) => async () => {
    const analyst = await connectAnalyst(io, options);
    try {
      setExitCode(await fn(analyst));
    } finally {
      await analyst.close();
    }
  };
  const incident = program.command('incident').description('incidents of the incident response service (enrolled analysts)');
  withCommon(incident.command('list').description('list incidents').option('--severity <level>', 'least severity, e.g. high+').option('--status <status>', 'open, acknowledged or resolved')).action(
    async (o: Common & { severity?: string; status?: string }) =>
      run(async (a) => {
        const reply = (await a.call(Commands.incident.list, { ...(o.severity === undefined ? {} : { severity: parseSeverityFloor(o.severity) }), ...(o.status === undefined ? {} : { status: o.status }) })) as { incidents: View[] };
        if (o.json === true) io.stdout(`${JSON.stringify(reply.incidents)}\n`);
        else for (const i of reply.incidents) io.stdout(`${i.id}  ${i.severity.padEnd(8)} ${i.status.padEnd(12)} ${i.category.padEnd(18)} ${String(i.evidence.count).padStart(6)} ev  ${i.description}\n`);
        return 0;
      }, o)(),
  );
  withCommon(incident.command('show').description('one incident with its evidence and actions').argument('<id>')).action(async (id: string, o: Common) =>
    run(async (a) => {
      const reply = (await a.call(Commands.incident.list, { id })) as { incidents: View[] };
      const i = reply.incidents[0];
      if (i === undefined) throw new BulwarkError('E_INCIDENT_UNKNOWN', `no incident ${id}`);
      if (o.json === true) io.stdout(`${JSON.stringify(i)}\n`);
      else {
        io.stdout(`${i.id}\n  ${i.severity} ${i.category} ${i.status}, rule ${i.rule}, since ${i.timestamp}\n  ${i.description}\n  evidence: ${i.evidence.count} ledger events\n`);
        for (const act of i.actions) io.stdout(`  ${act.action}: ${act.outcome} (attempt ${act.attempts}) ${act.detail}\n`);
      }
      return 0;
    }, o)(),
  );
  for (const [verb, subject] of [['ack', Commands.incident.ack], ['resolve', Commands.incident.resolve]] as const) {
    withCommon(incident.command(verb).description(`${verb === 'ack' ? 'acknowledge' : 'resolve'} an incident (a ledger event naming you)`).argument('<id>').option('--note <text>', 'why')).action(async (id: string, o: Common & { note?: string }) =>
      run(async (a) => {
        const reply = (await a.call(subject, { id, ...(o.note === undefined ? {} : { note: o.note }) })) as { id: string; status: string; eventId: string };
        io.stdout(o.json === true ? `${JSON.stringify(reply)}\n` : `${reply.id} ${reply.status} (event ${reply.eventId})\n`);
        return 0;
      }, o)(),
    );
  }
  const soc = program.commands.find((c) => c.name() === 'soc') ?? program.command('soc').description('the SOC incident stream');
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
