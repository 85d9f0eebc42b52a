import type { Command } from 'commander';

/** Exit codes of every command (DESIGN §11). */
export const ExitCode = { ok: 0, negative: 1, failure: 1, usage: 2 } as const;

/** Where a command writes and what it reads, so tests can run commands in-process. */
export interface CommandIO {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

/**
 * A command module adds its `bulwark <area> ...` subcommands to the program. An action
 * reports a non-zero exit code through `setExitCode`; errors it throws are printed as one
 * line by `run`.
 */
export type RegisterCommand = (program: Command, io: CommandIO, setExitCode: (code: number) => void) => void;
