/**
 * `bulwark recover [--dir D] [--apply] [--json]` (operator's guide §7): puts a running system
 * back after a lost stream or directory entry, from the sources of truth.
 *
 * - A lost stream (BULWARK_EVENTS, BULWARK_LEDGER, BULWARK_INCIDENTS) is created again, as the
 *   operator, with the configured limits. What BULWARK_EVENTS held that the ledger had not
 *   committed is gone with it: the report says up to where the ledger holds everything.
 * - An empty BULWARK_LEDGER is refilled by the ledger itself (`bulwark.audit.republish`, as the
 *   administrator): it verifies the whole ledger first and re-publishes every committed event,
 *   control batches included, so the verified readers end on the same state.
 * - A deleted, purged or edited directory entry is put back from the signed entries kept beside
 *   the keys (`<keys>/entries`), each one checked against the pinned root first, never one the
 *   ledger says is revoked, never over a newer entry the key manager published.
 * - Services whose view the loss broke (the ledger's consumer of a re-created BULWARK_EVENTS, the
 *   readers of a refilled BULWARK_LEDGER, directory watchers that saw an entry go, which count a
 *   deleted entry as revoked) are restarted through `bulwark up`'s supervisor.
 *
 * Without `--apply` nothing is changed: it says what it would do, and exits 1 if anything is lost.
 */
import { Commands, ensureStreams, firstMessageId, openDirectoryBucket, purgeStream, streamSpecs, streamState, type Bus, type StreamKey } from '@bulwark/bus';
import type { RepublishReply } from '@bulwark/audit-ledger';
import { busLimits, loadConfig } from '@bulwark/config';
import type { CryptoProvider } from '@bulwark/crypto';
import { verifyDirectoryEntry, decodeSignedDirectoryEntry } from '@bulwark/envelope';
import { BulwarkError } from '@bulwark/errors';
import { checkProducer, checkSealedEvent } from '@bulwark/events';
import { parseRootPublicKey } from '@bulwark/keystore';
import { ledgerEventOfJson } from '@bulwark/ledger-reader';
import { ADMIN_PRINCIPAL } from '../home/admin.js';
import { latestStoredEntries, type StoredEntry } from '../home/entries.js';
import { ledgerKeySchedule } from '../home/ledger-keys.js';
import { runningHome, type RunningHome } from '../home/running.js';
import { callJson, connectAsOperator, openKeyStore, openSession, type Session } from '../home/session.js';
import { readRunState } from '../home/state.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { commandLineOf, isServiceProcess } from '../run/leftovers.js';
import { probeServices } from '../run/probe.js';
import { SERVICES, serviceEntryPoint } from '../run/services.js';
import { resolveLedgerKey } from './audit-source.js';

interface RecoverOptions {
  readonly dir?: string;
  readonly apply?: boolean;
  readonly json?: boolean;
}

export class RecoverError extends BulwarkError {}

const STREAMS: readonly StreamKey[] = ['events', 'ledger', 'incidents'];

interface StreamFinding {
  readonly stream: string;
  readonly lost: boolean;
  readonly action: 'none' | 'create';
  readonly note?: string;
}

interface LedgerFinding {
  readonly size: number;
  readonly action: 'none' | 'republish';
  readonly reason: string;
  readonly republished?: number;
}

type EntryAction = 'none' | 'republish' | 'refuse';

interface EntryFinding {
  readonly principal: string;
  readonly version: number;
  /** What the bucket holds: `missing` (never written, deleted or purged), `same`, `edited` (does not verify or older), `newer` (a later or revoked entry). */
  readonly bucket: 'missing' | 'same' | 'edited' | 'newer';
  readonly action: EntryAction;
  readonly reason: string;
}

interface RecoverReport {
  readonly applied: boolean;
  readonly streams: StreamFinding[];
  ledger: LedgerFinding | null;
  readonly directory: EntryFinding[];
  readonly restarted: string[];
  /** Services restarted that were not ready again in time (their log says why). */
  readonly notReady: { readonly service: string; readonly error: string }[];
}

/** The highest revoked version of each principal, from `keys.revoked` events the ledger serves, each one's seal and producer checked. */
async function revokedVersions(session: Session, crypto: CryptoProvider, ledgerPublicKey: Uint8Array): Promise<Map<string, number>> {
  const revoked = new Map<string, number>();
  // Each revocation is checked under the ledger key in force at its seq (the ledger rotates its key in its chain).
  const keys = await ledgerKeySchedule(session, crypto, ledgerPublicKey);
  let cursor: string | undefined;
  do {
    const page = await callJson<{ events: unknown[]; nextCursor?: string }>(session, Commands.audit.query, { eventType: 'keys.revoked', limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    for (const json of page.events) {
      const event = ledgerEventOfJson(json);
      const problem = checkSealedEvent(crypto, keys.keyFor(event.seq), event) ?? checkProducer(event.producer, event.eventType, event.agentId);
      if (problem !== null) throw new RecoverError('E_RECOVER_LEDGER', `the ledger served a keys.revoked event that does not verify (seq ${event.seq}: ${problem}); nothing is republished`, { seq: event.seq });
      const version = (event.details as { version?: unknown }).version;
      if (typeof version !== 'number') continue;
      revoked.set(event.agentId, Math.max(revoked.get(event.agentId) ?? 0, version));
    }
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return revoked;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What to do with one stored entry, given the bucket and the ledger's revocations. */
async function entryFinding(kv: Awaited<ReturnType<typeof openDirectoryBucket>>, stored: StoredEntry, provider: CryptoProvider, root: Uint8Array, revoked: ReadonlyMap<string, number>): Promise<EntryFinding> {
  const base = { principal: stored.principal, version: stored.version };
  const current = await kv.get(stored.principal);
  const held = current !== null && current.operation === 'PUT' ? current.value : undefined;
  let bucket: EntryFinding['bucket'] = 'missing';
  if (held !== undefined && stored.bytes !== undefined && sameBytes(held, stored.bytes)) bucket = 'same';
  else if (held !== undefined) {
    try {
      const signed = decodeSignedDirectoryEntry(held);
      const verdict = verifyDirectoryEntry(provider, root, signed, Date.now());
      const revokedEntry = !verdict.ok && verdict.reason === 'E_ENTRY_REVOKED';
      // The same version and keys, certified again by the root (the key manager publishes its own entry for a key it entered in its book).
      const recertified =
        verdict.ok &&
        stored.signed !== undefined &&
        signed.entry.id === stored.principal &&
        signed.entry.keyVersion === stored.version &&
        sameBytes(signed.entry.ed25519PublicKey, stored.signed.entry.ed25519PublicKey) &&
        sameBytes(signed.entry.x25519PublicKey, stored.signed.entry.x25519PublicKey);
      bucket = recertified ? 'same' : (verdict.ok || revokedEntry) && signed.entry.id === stored.principal && (signed.entry.keyVersion > stored.version || (signed.entry.keyVersion === stored.version && revokedEntry)) ? 'newer' : 'edited';
    } catch {
      bucket = 'edited';
    }
  }
  if (bucket === 'same') return { ...base, bucket, action: 'none', reason: 'the bucket holds this entry' };
  if (bucket === 'newer') return { ...base, bucket, action: 'none', reason: 'the bucket holds a later (or revoked) entry signed by the root: left as it is' };
  if (stored.signed === undefined) return { ...base, bucket, action: 'refuse', reason: `the stored entry is unusable: ${stored.problem}` };
  const verdict = verifyDirectoryEntry(provider, root, stored.signed, Date.now());
  if (!verdict.ok) return { ...base, bucket, action: 'refuse', reason: `the stored entry does not verify against the pinned root (${verdict.reason}: ${verdict.detail})` };
  const revokedUpTo = revoked.get(stored.principal);
  if (revokedUpTo !== undefined && stored.version <= revokedUpTo) return { ...base, bucket, action: 'refuse', reason: `v${revokedUpTo} of ${stored.principal} is revoked in the ledger: a revoked key is never put back` };
  return { ...base, bucket, action: 'republish', reason: bucket === 'missing' ? 'the entry is missing from the bucket' : 'the bucket holds an entry that does not verify or is older' };
}

/**
 * Restarts one service `bulwark up` supervises: SIGTERM to its pid (only if that process is
 * still the service's entry point), then waits until the supervisor's new process is ready.
 */
async function restartService(running: RunningHome, bus: Bus, name: string, timeoutMs = 90_000): Promise<void> {
  const spec = SERVICES.find((s) => s.name === name)!;
  const pid = running.state.services.find((s) => s.name === name)?.pid;
  if (pid === undefined || !isServiceProcess(commandLineOf(pid), serviceEntryPoint(spec))) {
    throw new RecoverError('E_RECOVER_RESTART', `cannot restart ${name}: pid ${pid ?? 'unknown'} in ${running.home.stateFile} is not its process`, { service: name });
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = readRunState(running.home);
    const now = state?.services.find((s) => s.name === name)?.pid;
    if (state !== undefined && now !== undefined && now !== pid) {
      const [status] = await probeServices(bus, state, [spec]);
      if (status?.ready === true && status.instances === 1) return;
    }
    if (Date.now() > deadline) throw new RecoverError('E_RECOVER_RESTART', `${name} was not ready again within ${timeoutMs / 1000} s after its restart; see ${running.home.logsDir}/${name}.log`, { service: name });
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function recover(io: CommandIO, options: RecoverOptions): Promise<number> {
  const running = runningHome(io, options.dir);
  const { env, state } = running;
  const apply = options.apply === true;
  const { config } = loadConfig({ env, cwd: io.cwd });
  const { provider, store } = await openKeyStore(env, io.cwd);
  const pinned = config.keys.root_public_key;
  if (pinned === undefined) throw new RecoverError('E_CONFIG', `no pinned root key in ${running.home.adminDir} (root.pub)`, {});
  const root = parseRootPublicKey(pinned, 'keys.root_public_key');
  const ledgerKey = resolveLedgerKey({ ...io, env }, {}, () => config);
  const bus = await connectAsOperator(store, state.nats.url, 'bulwark-recover');
  const report: RecoverReport = { applied: apply, streams: [], ledger: null, directory: [], restarted: [], notReady: [] };
  const restart = new Set<string>();
  try {
    // 1. Streams: what is missing is created again; BULWARK_LEDGER in step 3, under the ledger's hold.
    const missing: StreamKey[] = [];
    for (const key of STREAMS) {
      const lost = (await streamState(bus, key)) === undefined;
      if (lost) missing.push(key);
      report.streams.push({ stream: bus.streamName(key), lost, action: lost ? 'create' : 'none' });
    }
    const specs = streamSpecs(busLimits(config).streams);
    if (apply) {
      await ensureStreams(bus, specs.filter((s) => missing.includes(s.key) && s.key !== 'ledger'));
      // The ledger's durable consumer went with BULWARK_EVENTS.
      if (missing.includes('events')) restart.add('audit-ledger');
    }

    // 2. The directory, from the stored entries; revocations from the ledger (fail secure: unreadable → nothing republished).
    const kv = await openDirectoryBucket(bus, busLimits(config).directory);
    const session = await openSession({ env, cwd: io.cwd, principal: ADMIN_PRINCIPAL, name: 'bulwark-recover', natsUrl: state.nats.url }).catch((error: unknown) => {
      throw new RecoverError('E_RECOVER_LEDGER', `cannot reach the ledger as ${ADMIN_PRINCIPAL} (${error instanceof Error ? error.message.split('\n')[0] : String(error)}): revocations cannot be checked, so nothing is republished; if ${ADMIN_PRINCIPAL}'s or svc.audit-ledger's own entry is the lost one, restart bulwark up (its init publishes them)`, {}, { cause: error });
    });
    try {
      const revoked = await revokedVersions(session, ledgerKey.crypto, ledgerKey.logKey.publicKey);
      const stored = latestStoredEntries(store.dir);
      for (const entry of stored) report.directory.push(await entryFinding(kv, entry, provider, root, revoked));
      if (apply) {
        for (const finding of report.directory.filter((f) => f.action === 'republish')) await kv.put(finding.principal, stored.find((s) => s.principal === finding.principal)!.bytes!);
        // Directory watchers count a deleted entry as revoked until they start again.
        if (report.directory.some((f) => f.action === 'republish')) for (const s of SERVICES) restart.add(s.name);
      }

      // 3. BULWARK_LEDGER: lost when missing, empty, or without its first chunk (`0-…`); the ledger refills it.
      const size = (await callJson<RepublishReply>(session, Commands.audit.republish, { apply: false })).size;
      const head = await firstMessageId(bus, 'ledger');
      const ledgerLost = missing.includes('ledger') || head === undefined || !head.startsWith('0-');
      report.streams.forEach((s, i) => {
        if (s.stream === bus.streamName('events') && s.lost) report.streams[i] = { ...s, note: `messages it held that the ledger had not committed are lost; the ledger holds every committed event (${size})` };
      });
      if (!ledgerLost || size === 0) {
        report.ledger = { size, action: 'none', reason: size === 0 ? 'the ledger is empty' : `${bus.streamName('ledger')} starts at the ledger's first event (readers fill any later gap from the ledger)` };
        if (apply && missing.includes('ledger')) await ensureStreams(bus, specs.filter((s) => s.key === 'ledger'));
      } else if (!apply) {
        report.ledger = { size, action: 'republish', reason: `${bus.streamName('ledger')} ${missing.includes('ledger') ? 'is lost' : head === undefined ? 'is empty' : 'lost its first events'}: the ledger would re-publish its ${size} events after verifying them` };
      } else {
        // The ledger holds its own publication while the stream is made empty, then re-publishes from seq 0.
        await callJson<RepublishReply>(session, Commands.audit.republish, { hold: true });
        if (missing.includes('ledger')) await ensureStreams(bus, specs.filter((s) => s.key === 'ledger'));
        else await purgeStream(bus, 'ledger');
        const done = await callJson<RepublishReply>(session, Commands.audit.republish, { apply: true }, 120_000);
        report.ledger = { size: done.size, action: done.applied ? 'republish' : 'none', reason: done.reason, ...(done.republished === undefined ? {} : { republished: done.republished }) };
        // Readers that replayed the old stream: each starts again on the refilled one.
        if (done.applied) for (const s of SERVICES) if (s.name !== 'audit-ledger') restart.add(s.name);
      }
    } finally {
      await session.close();
    }

    if (apply) {
      // Together: each one's supervisor restarts it at once, and readiness is awaited for all.
      const names = SERVICES.map((s) => s.name).filter((name) => restart.has(name));
      const outcomes = await Promise.allSettled(names.map((name) => restartService(running, bus, name)));
      outcomes.forEach((outcome, i) => {
        if (outcome.status === 'fulfilled') report.restarted.push(names[i]!);
        else report.notReady.push({ service: names[i]!, error: outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason) });
      });
    }
  } finally {
    await bus.close();
  }

  const needed = report.streams.some((s) => s.action !== 'none') || report.ledger?.action === 'republish' || report.directory.some((f) => f.action === 'republish');
  const refused = report.directory.filter((f) => f.action === 'refuse');
  if (options.json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout(humanReport(report));
  for (const f of refused) io.stderr(`bulwark: recover: ${f.principal} v${f.version}: not republished: ${f.reason}\n`);
  for (const n of report.notReady) io.stderr(`bulwark: recover: ${n.error}\n`);
  if (refused.length > 0 || report.notReady.length > 0) return ExitCode.failure;
  return !apply && needed ? ExitCode.negative : ExitCode.ok;
}

function humanReport(r: RecoverReport): string {
  const verb = (action: string): string => (r.applied ? { create: 'created', republish: 'republished', refuse: 'refused', none: 'ok' }[action]! : { create: 'would create', republish: 'would republish', refuse: 'refuses', none: 'ok' }[action]!);
  const lines = [r.applied ? 'bulwark recover (applied):' : 'bulwark recover (dry run: nothing changed; --apply to do it):'];
  for (const s of r.streams) lines.push(`  stream ${s.stream}: ${s.lost ? 'lost' : 'present'} — ${verb(s.action)}${s.note === undefined ? '' : ` (${s.note})`}`);
  if (r.ledger !== null) lines.push(`  ledger re-publication: ${verb(r.ledger.action)} — ${r.ledger.reason}${r.ledger.republished === undefined ? '' : ` (${r.ledger.republished} events)`}`);
  for (const f of r.directory) lines.push(`  directory ${f.principal} v${f.version}: bucket ${f.bucket} — ${verb(f.action)}: ${f.reason}`);
  if (r.restarted.length > 0) lines.push(`  restarted: ${r.restarted.join(', ')}`);
  for (const n of r.notReady) lines.push(`  not ready after its restart: ${n.service}`);
  return `${lines.join('\n')}\n`;
}

/** `bulwark recover [--dir D] [--apply] [--json]`. */
export const registerRecoverCommand: RegisterCommand = (program, io, setExitCode) => {
  program
    .command('recover')
    .description('after a lost stream or directory entry: re-create the streams, have the ledger re-publish its verified events, put back signed directory entries (never a revoked one); dry run unless --apply')
    .option('--dir <home>', 'the home of the running system (default: $SYMBIONT_HOME, else ./.bulwark)')
    .option('--apply', 'do it (default: only say what would be done; exit 1 if anything is lost)')
    .option('--json', 'print { applied, streams, ledger, directory, restarted, notReady } as JSON')
    .action(async (options: RecoverOptions) => setExitCode(await recover(io, options)));
};
