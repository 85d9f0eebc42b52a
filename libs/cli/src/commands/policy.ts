import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { InputError } from '@bulwark/errors';
import {
  checkExpectation,
  compilePolicySet,
  decisionToJson,
  parsePolicies,
  parsePolicyTestFile,
  permits,
  PolicyParseError,
  requestProblem,
  type PolicyEntry,
  type PolicySet,
  type PolicySetOptions,
} from '@bulwark/policy-language';
import { ExitCode, type CommandIO, type RegisterCommand } from '../io.js';

interface LevelsOption {
  readonly levels?: string;
}

export interface PolicyCommandDeps {
  /** Reads standard input for `--request -`; injectable so tests need no process. */
  readonly readStdin: () => Promise<string>;
}

const LEVELS_HELP = 'classification levels, lowest first, comma separated (default public,internal,confidential,secret,top_secret)';

/**
 * `bulwark policy check FILES...`, `bulwark policy eval --policies PATH --request FILE|-`,
 * `bulwark policy test DIR` (libs/policy-language README "Command line").
 */
export function createPolicyCommand(deps: PolicyCommandDeps = { readStdin }): RegisterCommand {
  return (program, io, setExitCode) => {
    const policy = program.command('policy').description('check, evaluate and test policies written in the policy language');
    policy
      .command('check')
      .description('parse and compile policy files (or directories of *.policy); print file:line:col errors, exit 1 if any')
      .argument('<files...>', 'policy files or directories')
      .option('--levels <list>', LEVELS_HELP)
      .action((files: string[], options: LevelsOption) => setExitCode(check(io, files, options)));
    policy
      .command('eval')
      .description('decide one request; print the decision as JSON; exit 0 Allow/AllowWithConditions, 1 Deny/RequireApproval, 2 bad input')
      .requiredOption('--policies <path>', 'a policy file or a directory of *.policy files')
      .requiredOption('--request <file>', "a JSON request file, or '-' for standard input")
      .option('--levels <list>', LEVELS_HELP)
      .action(async (options: LevelsOption & { policies: string; request: string }) => setExitCode(await evaluate(io, options, deps)));
    policy
      .command('test')
      .description('run the *.test.json cases under DIR against the *.policy files under DIR; exit 1 on any failure')
      .argument('<dir>', 'directory of policies and test files')
      .option('--levels <list>', LEVELS_HELP)
      .action((dir: string, options: LevelsOption) => setExitCode(runTests(io, dir, options)));
  };
}

export const registerPolicyCommand: RegisterCommand = createPolicyCommand();

function check(io: CommandIO, paths: readonly string[], options: LevelsOption): number {
  const files = paths.flatMap((path) => expand(io, path, '.policy'));
  const entries: PolicyEntry[] = [];
  let errors = 0;
  for (const file of files) {
    try {
      for (const ast of parsePolicies(readText(file.absolute), { file: file.shown }).policies) entries.push({ ast });
    } catch (err) {
      if (!(err instanceof PolicyParseError)) throw err;
      io.stderr(`${err.message}\n`);
      errors++;
    }
  }
  if (errors > 0) return ExitCode.negative;
  // Compiling finds what parsing one file cannot: names used twice across files, unknown levels.
  try {
    compilePolicySet(entries, setOptions(options));
  } catch (err) {
    if (!(err instanceof PolicyParseError)) throw err;
    io.stderr(`${err.message}\n`);
    return ExitCode.negative;
  }
  const rules = entries.reduce((sum, entry) => sum + entry.ast.rules.length, 0);
  io.stdout(`ok: ${entries.length} policies, ${rules} rules in ${files.length} file(s)\n`);
  return ExitCode.ok;
}

async function evaluate(io: CommandIO, options: LevelsOption & { policies: string; request: string }, deps: PolicyCommandDeps): Promise<number> {
  const set = loadSet(io, options.policies, options);
  const from = options.request === '-' ? 'standard input' : options.request;
  const text = options.request === '-' ? await deps.readStdin() : readText(resolve(io.cwd, options.request));
  let request: unknown;
  try {
    request = JSON.parse(text);
  } catch (err) {
    throw new InputError('E_POLICY_REQUEST', `request ${from}: not JSON (${oneLine(err)})`, { from });
  }
  const problem = requestProblem(request);
  if (problem !== null) throw new InputError('E_POLICY_REQUEST', `request ${from}: ${problem}`, { from });
  const decision = set.evaluate(request);
  io.stdout(`${JSON.stringify(decisionToJson(decision))}\n`);
  return permits(decision) ? ExitCode.ok : ExitCode.negative;
}

function runTests(io: CommandIO, dir: string, options: LevelsOption): number {
  const set = loadSet(io, dir, options);
  const files = expand(io, dir, '.test.json');
  if (files.length === 0) throw new InputError('E_POLICY_TEST', `policy test ${dir}: no *.test.json files under it`, { dir });
  let passed = 0;
  let failed = 0;
  for (const file of files) {
    const tests = parsePolicyTestFile(readText(file.absolute), file.shown);
    for (const testCase of tests.cases) {
      const problems = checkExpectation(set.evaluate(testCase.request), testCase.expect);
      if (problems.length === 0) {
        passed++;
        io.stdout(`PASS ${file.shown} › ${testCase.name}\n`);
      } else {
        failed++;
        io.stdout(`FAIL ${file.shown} › ${testCase.name}: ${problems.join('; ')}\n`);
      }
    }
  }
  io.stdout(`${passed} passed, ${failed} failed, ${passed + failed} total\n`);
  return failed === 0 ? ExitCode.ok : ExitCode.negative;
}

/** A policy file, or every *.policy file under a directory (sorted, so the order is stable); errors exit 2. */
function loadSet(io: CommandIO, path: string, options: LevelsOption): PolicySet {
  const files = expand(io, path, '.policy');
  if (files.length === 0) throw new InputError('E_POLICY_LOAD', `policies ${path}: no *.policy files there`, { path });
  try {
    const entries = files.flatMap((file) => parsePolicies(readText(file.absolute), { file: file.shown }).policies.map((ast) => ({ ast })));
    return compilePolicySet(entries, setOptions(options));
  } catch (err) {
    if (err instanceof PolicyParseError) throw new InputError(err.code, err.message, err.context);
    throw err;
  }
}

function setOptions(options: LevelsOption): PolicySetOptions {
  if (options.levels === undefined) return {};
  return { levels: options.levels.split(',').map((level) => level.trim()) };
}

interface FoundFile {
  readonly absolute: string;
  /** As errors print it: relative to the working directory. */
  readonly shown: string;
}

function expand(io: CommandIO, path: string, suffix: string): FoundFile[] {
  const absolute = resolve(io.cwd, path);
  const show = (file: string): FoundFile => ({ absolute: file, shown: relative(io.cwd, file) || file });
  let isDirectory: boolean;
  try {
    isDirectory = statSync(absolute).isDirectory();
  } catch (err) {
    throw new InputError('E_POLICY_LOAD', `${path}: cannot read (${oneLine(err)})`, { path });
  }
  if (!isDirectory) return [show(absolute)];
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith(suffix)) found.push(full);
    }
  };
  walk(absolute);
  return found.sort().map(show);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError('E_POLICY_LOAD', `${path}: cannot read (${oneLine(err)})`, { path });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
