/** The analyst's side of the incident commands: its session to svc.incident-response and the options every such command takes. */
import { join, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { CommandClient, Commands, connectBus, KvDirectory, RejectionReporter, ROOT_NAMESPACE, type Bus, type CommandSubject } from '@bulwark/bus';
import { loadConfig, type BulwarkConfig } from '@bulwark/config';
import { createCryptoProvider } from '@bulwark/crypto';
import type { LocalIdentity } from '@bulwark/envelope';
import { InputError } from '@bulwark/errors';
import { SEVERITIES, type Severity } from '@bulwark/incident-response';
import { DEFAULT_KEY_DIR, FileKeyStore, loadIdentity, loadKek, parseRootPublicKey, ROOT_PIN_FILE } from '@bulwark/keystore';
import type { CommandIO } from '../io.js';
import { namespaceFromName } from './init.js';
import { PUBLIC_KEY_FILE, resolveLedgerKey } from './audit-source.js';
import { credentialsOf } from './keys.js';
import { readSocStream, x25519Versions, type SocStreamReader, type SocStreamReaderOptions } from './soc-channel.js';

export interface Common {
  readonly as?: string;
  readonly nats?: string;
  readonly namespace?: string;
  readonly file?: string;
  readonly json?: boolean;
}

export interface Analyst {
  readonly bus: Bus;
  readonly id: string;
  call(subject: CommandSubject, body: unknown): Promise<unknown>;
  /** The SOC stream on its channel, as this analyst reads it (soc-channel.ts). */
  readSoc(options: Pick<SocStreamReaderOptions, 'floor' | 'onFinding' | 'onRefused'>): Promise<SocStreamReader>;
  close(): Promise<void>;
}

/** The ledger's genesis key: BULWARK_LEDGER_PUBLIC_KEY, else the audit-ledger.vkey `bulwark init` / `up` left in the key directory; undefined: the directory entry's while version 1 (soc-channel.ts). */
function ledgerGenesis(io: CommandIO, keyDir: string, config: BulwarkConfig): Uint8Array | undefined {
  const pinned = io.env['BULWARK_LEDGER_PUBLIC_KEY'];
  if (pinned !== undefined && pinned !== '') return parseRootPublicKey(pinned, 'BULWARK_LEDGER_PUBLIC_KEY');
  const file = join(keyDir, PUBLIC_KEY_FILE);
  if (!existsSync(file)) return undefined;
  return resolveLedgerKey(io, { publicKey: file }, () => config).logKey.publicKey;
}

export async function connectAnalyst(io: CommandIO, options: Common): Promise<Analyst> {
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
  const bus = await connectBus({ url: options.nats ?? config.nats.url, name: 'bulwark-soc', namespace, maxReconnectAttempts: 0, connectTimeoutMs: 3000, ...(await credentialsOf(store, identity.id)) });
  try {
    const directory = await KvDirectory.open(bus, { provider, rootPublicKey });
    const self: LocalIdentity = { id: identity.id, x25519: identity.x25519 };
    const x25519SecretKey = await x25519Versions(store, identity.id);
    const ledgerPublicKey = ledgerGenesis(io, store.dir, config);
    const rejections = new RejectionReporter({ reporter: identity.id, publish: async () => undefined });
    const commands = new CommandClient(bus, { sessions: { provider, self, directory }, rejections });
    const call = async (subject: CommandSubject, body: unknown): Promise<unknown> => {
      const reply = await commands.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeoutMs: 10_000, idempotent: subject === Commands.incident.list });
      return JSON.parse(new TextDecoder().decode(reply)) as unknown;
    };
    return {
      bus,
      id: identity.id,
      call,
      readSoc: (o) => readSocStream({ ...o, bus, provider, identity: self, x25519SecretKey, directory, call, ...(ledgerPublicKey === undefined ? {} : { ledgerPublicKey }) }),
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

export const withCommon = <T extends { option: (...a: string[]) => T }>(cmd: T): T =>
  cmd
    .option('--as <principal>', 'the analyst principal (default $BULWARK_PRINCIPAL)')
    .option('--nats <url>', 'NATS server')
    .option('--namespace <ns>', 'subject and stream namespace')
    .option('--file <path>', 'configuration file')
    .option('--json', 'print JSON');

/** Runs one command as the analyst: connects, runs, closes; the exit code is the function's. */
export function asAnalyst(io: CommandIO, options: Common, setExitCode: (code: number) => void, fn: (a: Analyst) => Promise<number>): Promise<void> {
  return (async () => {
    const analyst = await connectAnalyst(io, options);
    try {
      setExitCode(await fn(analyst));
    } finally {
      await analyst.close();
    }
  })();
}
