import { createReadStream, createWriteStream, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BUILTIN_FRAMEWORKS,
  LedgerError,
  LedgerReader,
  archiveBefore,
  effectiveRetentionDays,
  generateComplianceReport,
  loadFramework,
  verifyExport,
  verifyLedger,
  type ComplianceFramework,
  type ReportFormat,
} from '@bulwark/audit-ledger';
import { toBase64, toHex } from '@bulwark/crypto';
import { InputError } from '@bulwark/errors';
import { withHome } from '../home/home-io.js';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';
import { terminalProgress, type ProgressFactory } from './audit-progress.js';
import { loadCliConfig, openLedgerDatabase, parseDate, resolveLedgerKey, type DatabaseFlags, type KeyFlags, type LedgerConnection, type LedgerKey } from './audit-source.js';

type LedgerFlags = DatabaseFlags & KeyFlags & { readonly dir?: string };

interface VerifyFlags extends LedgerFlags {
  readonly file?: string;
  readonly checkpoint: string[];
  readonly json?: boolean;
  readonly progress: boolean;
}

export interface AuditCommandDeps {
  /** Where a progress bar goes (a terminal bar by default; tests pass none). */
  readonly progress: ProgressFactory;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function withLedgerOptions<T extends { option(flags: string, description: string): T }>(command: T): T {
  return command
    .option('--dir <home>', 'the home whose database, keys and verifier key to use (default: $SYMBIONT_HOME, else ./.bulwark when it is one)')
    .option('--database <url>', 'the ledger database (default $DATABASE_URL, then [database] url)')
    .option('--schema <name>', 'the ledger schema (default $SYMBIONT_LEDGER_SCHEMA, then audit_ledger)')
    .option('--public-key <key|file>', 'the ledger verifier key <origin>+<key id>+<base64>, or a file holding it (default $BULWARK_AUDIT_PUBLIC_KEY, then <keys.dir>/audit-ledger.vkey)')
    .option('--origin <name>', "the ledger's checkpoint origin (default: the key's name)");
}

/**
 * `bulwark audit verify|export|proof|checkpoint|report|archive` (services/audit-ledger
 * README "Command line"). Exit 0 ok, 1 a negative result (tampered, truncated,
 * non-compliant, refused), 2 bad usage or input.
 */
export function createAuditCommand(deps: AuditCommandDeps = { progress: terminalProgress }): RegisterCommand {
  return (program, outerIO, setExitCode) => {
    // Each action runs with its home's environment (--dir), resolved when it runs.
    let io = outerIO;
    const config = () => loadCliConfig(io);
    const inHome = <F extends { dir?: string }>(action: (flags: F) => Promise<void>) => (flags: F) => {
      io = withHome(outerIO, flags.dir);
      return action(flags);
    };
    const audit = program.command('audit').description('verify, export, prove, report on and archive the audit ledger');

    withLedgerOptions(
      audit
        .command('verify')
        .description('re-verify every hash, link, signature, tree node and checkpoint (or an export file with --file); exit 1 naming the first bad seq')
        .option('--file <export>', 'verify a JSONL export offline instead of the database')
        .option('--checkpoint <file>', 'a signed checkpoint you kept (from `bulwark audit checkpoint`): the ledger must not be truncated or rewritten behind it (repeatable)', collect, [])
        .option('--json', 'print the result as JSON')
        .option('--no-progress', 'no progress bar even on a terminal'),
    ).action(inHome(async (flags: VerifyFlags) => setExitCode(await verify(io, flags, config, deps))));

    withLedgerOptions(
      audit
        .command('export')
        .description('write every event with its hash and signature as JSONL, up to the latest signed checkpoint (streamed)')
        .option('--format <format>', 'jsonl (the only format)', 'jsonl')
        .option('--out <file>', 'write to this file instead of standard output'),
    ).action(inHome(async (flags: LedgerFlags & { format: string; out?: string }) => setExitCode(await exportCommand(io, flags, config))));

    withLedgerOptions(
      audit
        .command('proof')
        .description('print, as JSON, the inclusion proof of an event (--seq) or the consistency proof between two signed checkpoints (--from), each checked against the signed roots')
        .option('--seq <n>', 'inclusion of this event')
        .option('--size <n>', 'with --seq: against the stored checkpoint of this size (default: the latest)')
        .option('--from <size>', 'consistency from the stored checkpoint of this size')
        .option('--to <size>', 'with --from: to the stored checkpoint of this size (default: the latest)'),
    ).action(inHome(async (flags: ProofFlags) => setExitCode(await proof(io, flags, config))));

    withLedgerOptions(
      audit.command('checkpoint').description('print the latest signed checkpoint (keep it to pass to `audit verify --checkpoint`)').option('--json', 'print { tree_size, root_hash, note }'),
    ).action(inHome(async (flags: LedgerFlags & { json?: boolean }) => setExitCode(await checkpoint(io, flags, config))));

    withLedgerOptions(
      audit
        .command('report')
        .description('check a period against a compliance framework; print the report; exit 1 if non-compliant')
        .requiredOption('--framework <name|file>', `${BUILTIN_FRAMEWORKS.join(', ')}, or a framework .toml/.json file`)
        .requiredOption('--from <date>', 'start of the period (YYYY-MM-DD or ISO 8601), inclusive')
        .requiredOption('--to <date>', 'end of the period, exclusive')
        .option('--format <format>', 'json or markdown', 'markdown')
        .option('--out <file>', 'write the report to this file'),
    ).action(inHome(async (flags: LedgerFlags & { framework: string; from: string; to: string; format: string; out?: string }) => setExitCode(await report(io, flags, config))));

    withLedgerOptions(
      audit
        .command('archive')
        .description('export events older than a date (and the retention period) to a verified JSONL file, then prune them from the database')
        .requiredOption('--before <date>', 'archive events before this date (YYYY-MM-DD or ISO 8601)')
        .requiredOption('--out <file>', 'the archive file (never overwritten)')
        .option('--framework <name|file>', 'a framework in force: its retention also applies (repeatable)', collect, []),
    ).action(inHome(async (flags: LedgerFlags & { before: string; out: string; framework: string[] }) => setExitCode(await archive(io, flags, config))));
  };
}

export const registerAuditCommand: RegisterCommand = createAuditCommand();

type ConfigThunk = Parameters<typeof resolveLedgerKey>[2];

async function withLedger<T>(io: CommandIO, flags: LedgerFlags, config: ConfigThunk, body: (connection: LedgerConnection, key: LedgerKey) => Promise<T>): Promise<T> {
  const key = resolveLedgerKey(io, flags, config);
  const connection = await openLedgerDatabase(io, flags, config);
  try {
    return await body(connection, key);
  } finally {
    await connection.close();
  }
}

function readHeld(io: CommandIO, files: readonly string[]): string[] {
  return files.map((file) => {
    try {
      return readFileSync(resolve(io.cwd, file), 'utf8');
    } catch (cause) {
      throw new InputError('E_USAGE', `--checkpoint ${file}: cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, { file }, { cause });
    }
  });
}

async function verify(io: CommandIO, flags: VerifyFlags, config: ConfigThunk, deps: AuditCommandDeps): Promise<number> {
  const bar = flags.json || !flags.progress ? undefined : deps.progress(flags.file === undefined ? 'verify' : 'verify file', flags.file === undefined ? 'events' : 'bytes');
  try {
    return flags.file === undefined ? await verifyDatabase(io, flags, config, bar) : await verifyFile(io, flags, config, bar);
  } finally {
    bar?.stop();
  }
}

async function verifyDatabase(io: CommandIO, flags: VerifyFlags, config: ConfigThunk, bar: ReturnType<ProgressFactory>): Promise<number> {
  const held = readHeld(io, flags.checkpoint);
  return withLedger(io, flags, config, async ({ db, where }, key) => {
    const result = await verifyLedger(db, { ...key, heldCheckpoints: held, ...(bar === undefined ? {} : { onProgress: (done: number, total: number) => bar.update(done, total) }) });
    bar?.stop();
    if (!result.ok) {
      if (flags.json) io.stdout(`${JSON.stringify({ ok: false, ...(result.seq === undefined ? {} : { seq: result.seq }), problem: result.problem, message: result.message })}\n`);
      io.stderr(`bulwark: audit verify: ${result.message}\n`);
      return ExitCode.negative;
    }
    const first = await new LedgerReader(db, key).firstSeq();
    const archived = first === 0 ? undefined : { archived_before: first, anchor_checkpoint: first };
    if (flags.json) {
      io.stdout(
        `${JSON.stringify({ ok: true, size: result.size, root_hash: toBase64(result.rootHash), checkpoints_checked: result.checkpointsChecked, held_checkpoints_checked: result.heldCheckpointsChecked, ...archived })}\n`,
      );
    } else {
      const events = first === 0 ? `${result.size} events` : `${result.size - first} events (seq ${first}..${result.size - 1}; 0..${first - 1} archived, anchored by checkpoint ${first})`;
      io.stdout(
        `ok: ${events} verified in ${where}: hashes, links, signatures, tree nodes, ${result.checkpointsChecked} stored and ${result.heldCheckpointsChecked} held checkpoints; root ${toBase64(result.rootHash)}\n`,
      );
    }
    return ExitCode.ok;
  });
}

async function verifyFile(io: CommandIO, flags: VerifyFlags, config: ConfigThunk, bar: ReturnType<ProgressFactory>): Promise<number> {
  if (flags.checkpoint.length > 0) throw new InputError('E_USAGE', '--checkpoint applies to the database, not to --file (an export carries its own signed checkpoint)');
  const key = resolveLedgerKey(io, flags, config);
  const path = resolve(io.cwd, flags.file!);
  let size: number;
  try {
    size = statSync(path).size;
  } catch (cause) {
    throw new InputError('E_USAGE', `--file ${flags.file}: cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, {}, { cause });
  }
  const input = createReadStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  async function* counted(): AsyncGenerator<string> {
    let n = 0;
    for await (const line of lines) {
      if (bar !== undefined && ++n % 1000 === 0) bar.update(input.bytesRead, size);
      yield line;
    }
  }
  const result = await verifyExport(counted(), key);
  input.destroy();
  bar?.stop();
  if (!result.ok) {
    if (flags.json) io.stdout(`${JSON.stringify({ ok: false, ...(result.seq === undefined ? {} : { seq: result.seq }), line: result.line, problem: result.problem, message: result.message })}\n`);
    io.stderr(`bulwark: audit verify: ${flags.file}: ${result.message}\n`);
    return ExitCode.negative;
  }
  if (flags.json) io.stdout(`${JSON.stringify({ ok: true, from_seq: result.fromSeq, size: result.size, events: result.events, root_hash: toBase64(result.rootHash) })}\n`);
  else io.stdout(`ok: ${flags.file}: ${result.events} events (seq ${result.fromSeq}..${result.size - 1}) verified against the signed checkpoint of size ${result.size}; root ${toBase64(result.rootHash)}\n`);
  return ExitCode.ok;
}

async function latestOrFail(reader: LedgerReader): Promise<NonNullable<Awaited<ReturnType<LedgerReader['latestCheckpoint']>>>> {
  const latest = await reader.latestCheckpoint();
  if (latest === undefined) throw new LedgerError('E_CHECKPOINT', 'the ledger has no signed checkpoint yet');
  return latest;
}

async function exportCommand(io: CommandIO, flags: LedgerFlags & { format: string; out?: string }, config: ConfigThunk): Promise<number> {
  if (flags.format !== 'jsonl') throw new InputError('E_USAGE', `--format ${JSON.stringify(flags.format)}: the only export format is jsonl`);
  return withLedger(io, flags, config, async ({ db }, key) => {
    const reader = new LedgerReader(db, key);
    const latest = await latestOrFail(reader);
    const from = await reader.firstSeq();
    const lines = reader.exportLines(latest, from);
    if (flags.out === undefined) {
      for await (const line of lines) io.stdout(line);
    } else {
      // A temporary file beside it, renamed at the end: a failed export leaves no truncated file.
      const out = resolve(io.cwd, flags.out);
      const temporary = `${out}.${process.pid}.partial`;
      try {
        await pipeline(Readable.from(lines), createWriteStream(temporary, { mode: 0o600, flags: 'wx' }));
        renameSync(temporary, out);
      } catch (error) {
        rmSync(temporary, { force: true });
        throw error;
      }
      io.stderr(`exported seq ${from}..${latest.size - 1} (${latest.size - from} events) up to the signed checkpoint of size ${latest.size} to ${flags.out}\n`);
    }
    return ExitCode.ok;
  });
}

type ProofFlags = LedgerFlags & { seq?: string; size?: string; from?: string; to?: string };

function count(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InputError('E_USAGE', `${option} ${JSON.stringify(value)}: not a ${option === '--seq' ? 'sequence number' : 'tree size'}`);
  return n;
}

async function proof(io: CommandIO, flags: ProofFlags, config: ConfigThunk): Promise<number> {
  const [seq, size, from, to] = [count('--seq', flags.seq), count('--size', flags.size), count('--from', flags.from), count('--to', flags.to)];
  if ((seq === undefined) === (from === undefined)) throw new InputError('E_USAGE', 'bulwark audit proof: give --seq N (inclusion) or --from SIZE (consistency), not both');
  if (seq === undefined && size !== undefined) throw new InputError('E_USAGE', '--size goes with --seq; a consistency proof takes --from and --to');
  if (from === undefined && to !== undefined) throw new InputError('E_USAGE', '--to goes with --from');
  if (from !== undefined) {
    return withLedger(io, flags, config, async ({ db }, key) => {
      const c = await new LedgerReader(db, key).consistencyProof(from, to);
      io.stdout(
        `${JSON.stringify(
          { size1: c.size1, size2: c.size2, root_hash1: toBase64(c.rootHash1), root_hash2: toBase64(c.rootHash2), proof: c.proof.map(toHex), checkpoint1: c.checkpoint1, checkpoint2: c.checkpoint2 },
          null,
          2,
        )}\n`,
      );
      return ExitCode.ok;
    });
  }
  return withLedger(io, flags, config, async ({ db }, key) => {
    const p = await new LedgerReader(db, key).inclusionProof(seq!, size);
    io.stdout(
      `${JSON.stringify(
        {
          seq: p.seq,
          event_id: p.eventId,
          tree_size: p.treeSize,
          leaf_hash: toHex(p.leafHash),
          root_hash: toBase64(p.rootHash),
          proof: p.proof.map(toHex),
          checkpoint: p.checkpoint,
        },
        null,
        2,
      )}\n`,
    );
    return ExitCode.ok;
  });
}

async function checkpoint(io: CommandIO, flags: LedgerFlags & { json?: boolean }, config: ConfigThunk): Promise<number> {
  return withLedger(io, flags, config, async ({ db }, key) => {
    const latest = await latestOrFail(new LedgerReader(db, key));
    io.stdout(flags.json ? `${JSON.stringify({ tree_size: latest.size, root_hash: toBase64(latest.rootHash), note: latest.note })}\n` : latest.note);
    return ExitCode.ok;
  });
}

async function loadFrameworks(names: readonly string[], io: CommandIO): Promise<ComplianceFramework[]> {
  return Promise.all(names.map((name) => loadFramework(name.includes('.') ? resolve(io.cwd, name) : name)));
}

async function report(io: CommandIO, flags: LedgerFlags & { framework: string; from: string; to: string; format: string; out?: string }, config: ConfigThunk): Promise<number> {
  if (flags.format !== 'json' && flags.format !== 'markdown') throw new InputError('E_USAGE', `--format ${JSON.stringify(flags.format)}: use json or markdown`);
  const format: ReportFormat = flags.format;
  const period = { from: parseDate('--from', flags.from), to: parseDate('--to', flags.to) };
  if (period.from.getTime() >= period.to.getTime()) throw new InputError('E_USAGE', `--from ${flags.from} is not before --to ${flags.to}`);
  const [framework] = await loadFrameworks([flags.framework], io);
  const retentionDays = config().security.audit_retention_days;
  return withLedger(io, flags, config, async ({ db }, key) => {
    const { report: result, text } = await generateComplianceReport({ db, ...key, retentionDays }, framework!, period, format);
    if (flags.out === undefined) io.stdout(text);
    else {
      await pipeline(Readable.from([text]), createWriteStream(resolve(io.cwd, flags.out)));
      io.stderr(`wrote the ${result.framework.name} report to ${flags.out}\n`);
    }
    if (!result.compliant) io.stderr(`bulwark: audit report: ${result.framework.name}: non-compliant, ${result.findings.length} finding${result.findings.length === 1 ? '' : 's'}\n`);
    return result.compliant ? ExitCode.ok : ExitCode.negative;
  });
}

async function archive(io: CommandIO, flags: LedgerFlags & { before: string; out: string; framework: string[] }, config: ConfigThunk): Promise<number> {
  const before = parseDate('--before', flags.before);
  const frameworks = await loadFrameworks(flags.framework, io);
  const retentionDays = effectiveRetentionDays(config().security.audit_retention_days, frameworks);
  return withLedger(io, flags, config, async ({ db }, key) => {
    const result = await archiveBefore(db, { ...key, before, retentionDays, out: resolve(io.cwd, flags.out) });
    if (!('fromSeq' in result)) {
      io.stdout(`nothing to archive: ${result.reason}\n`);
      return ExitCode.ok;
    }
    io.stdout(
      `archived seq ${result.fromSeq}..${result.toSeq - 1} (${result.archived} events) to ${flags.out}, verified, and pruned; the ledger now starts at seq ${result.toSeq}, anchored by checkpoint ${result.toSeq} (retention ${retentionDays} days)\n`,
    );
    return ExitCode.ok;
  });
}
