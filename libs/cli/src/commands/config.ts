import { configEntries, loadConfig, type ConfigEntry } from '@bulwark/config';
import type { CommandIO, RegisterCommand } from '../io.js';

interface ShowOptions {
  readonly json?: boolean;
  readonly file?: string;
}

function formatValue(value: ConfigEntry['value']): string {
  if (value === undefined) return '(unset)';
  // Strings and lists as TOML writes them; numbers and booleans bare.
  return typeof value === 'string' || Array.isArray(value) ? JSON.stringify(value) : String(value);
}

/** Prints the effective configuration; a bad value throws a ConfigError, which `run` prints as one line (exit 2). */
function showConfig(io: CommandIO, options: ShowOptions): void {
  const loaded = loadConfig({ env: io.env, cwd: io.cwd, ...(options.file === undefined ? {} : { configPath: options.file }) });
  const entries = configEntries(loaded);
  if (options.json) {
    const byKey = Object.fromEntries(entries.map(({ key, value, source }) => [key, { value: value ?? null, source }]));
    io.stdout(`${JSON.stringify(byKey, null, 2)}\n`);
    return;
  }
  io.stdout(entries.map(({ key, value, source }) => `${key} = ${formatValue(value)}  (${source})\n`).join(''));
}

/** `bulwark config [show] [--json] [--file PATH]`. */
export const registerConfigCommand: RegisterCommand = (program, io) => {
  program
    .command('config')
    .description('show the effective configuration: defaults < TOML file < SYMBIONT_* environment (options: bulwark config show --help)')
    .command('show', { isDefault: true })
    .description('print every value and where it came from (default, file:<path>, env:<VAR>)')
    .option('--json', 'print { "<key>": { "value": ..., "source": "..." } }')
    .option('--file <path>', 'TOML file to read (default: $SYMBIONT_CONFIG, else ./bulwark.toml if present)')
    .action((options: ShowOptions) => showConfig(io, options));
};
