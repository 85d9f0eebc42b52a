import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from './errors.js';
import { readConfigFile } from './file.js';
import { showValue } from './display.js';
import { closest } from './suggest.js';
import { secretEnvVars, settingEntries, type BulwarkConfig, type ConfigKey, type SettingEntry } from './settings.js';

/** Where a value came from: its default, the TOML file at a path, or an environment variable. */
export type ConfigSource = 'default' | `file:${string}` | `env:${string}`;

type Env = Readonly<Record<string, string | undefined>>;

export interface LoadConfigOptions {
  /** Environment to read `SYMBIONT_*`, `NATS_URL`, `DATABASE_URL` from; defaults to `process.env`. */
  readonly env?: Env;
  /** The TOML file to read; it must exist. Overrides `SYMBIONT_CONFIG` and `./bulwark.toml`. */
  readonly configPath?: string;
  /** Directory that relative paths (and the default `./bulwark.toml`) are resolved against. */
  readonly cwd?: string;
}

export interface LoadedConfig {
  readonly config: BulwarkConfig;
  /** The source of every value, by dotted key. */
  readonly sources: Readonly<Record<ConfigKey, ConfigSource>>;
  /** Absolute path of the TOML file that was read, if any. */
  readonly file: string | undefined;
}

const DEFAULT_FILE = 'bulwark.toml';

/** The file named by the caller or SYMBIONT_CONFIG (which must exist), else `./bulwark.toml` if present. */
function locateFile(options: LoadConfigOptions, env: Env, cwd: string): string | undefined {
  if (options.configPath !== undefined) return resolve(cwd, options.configPath);
  const named = env.SYMBIONT_CONFIG;
  if (named !== undefined && named !== '') return resolve(cwd, named);
  const fallback = resolve(cwd, DEFAULT_FILE);
  return existsSync(fallback) && statSync(fallback).isFile() ? fallback : undefined;
}

interface Resolved {
  readonly value: unknown;
  readonly source: ConfigSource;
}

function fromEnv({ setting }: SettingEntry, env: Env, cwd: string, problems: string[]): Resolved | undefined {
  const binding = setting.env;
  const raw = binding === undefined ? undefined : env[binding.name];
  // An empty variable counts as unset, as docker-compose writes `${VAR}` for an unset VAR.
  if (binding === undefined || raw === undefined || raw === '') return undefined;
  const parsed = setting.schema.safeParse(binding.parse(raw));
  if (!parsed.success) {
    const expected = binding.expected ?? setting.expected('env');
    problems.push(`${binding.name}=${showValue(raw, 'env', setting.kind === 'url')} is not allowed; expected ${expected}`);
    return undefined;
  }
  return { value: setting.kind === 'path' ? resolve(cwd, parsed.data as string) : parsed.data, source: `env:${binding.name}` };
}

const knownEnvVars = ['SYMBIONT_CONFIG', ...secretEnvVars, ...settingEntries.flatMap(({ setting }) => (setting.env ? [setting.env.name] : []))];

/**
 * A variable one or two letters away from a known one (`SYMBIONT_AUDIT_RETENTION_DAY`) is
 * almost surely a typo that would otherwise leave a security setting at a value the
 * operator did not choose. Other SYMBIONT_* variables are left alone: other components
 * may read them.
 */
function checkMisspeltVariables(env: Env, problems: string[]): void {
  for (const name of Object.keys(env)) {
    if (!name.startsWith('SYMBIONT_') || knownEnvVars.includes(name)) continue;
    const meant = closest(name, knownEnvVars, 2);
    if (meant !== undefined) problems.push(`${name} is not a known variable; did you mean ${meant}?`);
  }
}

/** Checks between values: each names both keys and where the offending value came from. */
function crossCheck(config: BulwarkConfig, sources: Record<ConfigKey, ConfigSource>, problems: string[]): void {
  if (config.security.hsm_enabled && config.security.hsm_config_path === undefined) {
    problems.push(
      `security.hsm_enabled = true (${sources['security.hsm_enabled']}) requires security.hsm_config_path; set SYMBIONT_HSM_CONFIG_PATH or hsm_config_path in [security]`,
    );
  }
  // A stream whose largest message exceeds its byte limit could never store that message.
  const bus = config.bus;
  for (const [size, bytes] of [
    ['events_max_message_size', 'events_max_bytes'],
    ['ledger_max_message_size', 'ledger_max_bytes'],
    ['incidents_max_message_size', 'incidents_max_bytes'],
    ['directory_max_value_size', 'directory_max_bytes'],
  ] as const) {
    if (bus[size] > bus[bytes]) {
      problems.push(`bus.${size} = ${bus[size]} (${sources[`bus.${size}`]}) is larger than bus.${bytes} = ${bus[bytes]} (${sources[`bus.${bytes}`]})`);
    }
  }
}

/**
 * Loads the configuration: defaults, then the TOML file, then the environment (each
 * overrides the one before). Every problem is collected; if there is any, throws a
 * `ConfigError` naming the first. The result and every section in it are frozen.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const cwd = resolve(options.cwd ?? process.cwd());
  const env = options.env ?? process.env;
  const problems: string[] = [];

  const file = locateFile(options, env, cwd);
  const fromFile = file === undefined ? undefined : readConfigFile(file);
  problems.push(...(fromFile?.problems ?? []));

  const sections: Record<string, Record<string, unknown>> = {};
  const sources = {} as Record<ConfigKey, ConfigSource>;
  for (const entry of settingEntries) {
    let resolved: Resolved = {
      value: entry.setting.kind === 'path' && typeof entry.setting.fallback === 'string' ? resolve(cwd, entry.setting.fallback) : entry.setting.fallback,
      source: 'default',
    };
    if (file !== undefined && fromFile?.values.has(entry.key)) {
      const value = fromFile.values.get(entry.key);
      resolved = { value: entry.setting.kind === 'path' ? resolve(dirname(file), value as string) : value, source: `file:${file}` };
    }
    resolved = fromEnv(entry, env, cwd, problems) ?? resolved;
    (sections[entry.section] ??= {})[entry.name] = resolved.value;
    sources[entry.key] = resolved.source;
  }
  checkMisspeltVariables(env, problems);
  const config = Object.freeze(Object.fromEntries(Object.entries(sections).map(([name, values]) => [name, Object.freeze(values)]))) as BulwarkConfig;

  crossCheck(config, sources, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ config, sources: Object.freeze(sources), file });
}
