import { Command, CommanderError } from 'commander';
import { isBulwarkError, InputError } from '@bulwark/errors';
import { commands } from './commands/index.js';
import { withHome } from './home/home-io.js';
import { ExitCode, type CommandIO } from './io.js';

/**
 * Runs `bulwark <area> <verb> ...` and returns the exit code (DESIGN §11): 0 success,
 * 1 a negative result (deny, invalid, tampered), 2 bad usage or input. Errors are one
 * line on stderr naming what, where and why; never a stack trace.
 */
export async function run(argv: readonly string[], outer: CommandIO = processIO()): Promise<number> {
  let io = outer;
  const program = new Command('bulwark')
    .description('Bulwark: zero-trust security control plane for AI agents')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError(false);
  let exitCode: number = ExitCode.ok;
  try {
    // `principal`, `keys`, `incident` and `soc` (which have no home option of their own) take the
    // keys, KEK and NATS URL of the running home ($SYMBIONT_HOME, or ./.bulwark when it is one) that
    // the caller left unset: the administrator's, except the backup and the KEK rotation of the key
    // manager's store.
    const custodian = argv[0] === 'keys' && (argv[1] === 'backup' || argv[1] === 'rekek') ? 'key-manager' : 'admin';
    if (argv[0] === 'principal' || argv[0] === 'keys' || argv[0] === 'incident' || argv[0] === 'soc') io = withHome(outer, undefined, custodian);
  } catch (err) {
    return reportError(err, outer);
  }
  for (const register of commands) {
    register(program, io, (code) => {
      exitCode = code;
    });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    return reportError(err, io);
  }
}

function reportError(err: unknown, io: CommandIO): number {
  if (err instanceof CommanderError) {
    // Help and version output are successes; commander already printed the usage error.
    if (err.exitCode === 0) return ExitCode.ok;
    return ExitCode.usage;
  }
  if (isBulwarkError(err)) {
    io.stderr(`bulwark: ${err.message}\n`);
    return err instanceof InputError ? ExitCode.usage : ExitCode.failure;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr(`bulwark: internal error: ${message.split('\n')[0]}\n`);
  return ExitCode.failure;
}

function processIO(): CommandIO {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    env: process.env,
    cwd: process.cwd(),
  };
}
